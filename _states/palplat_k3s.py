"""State module: k3s installed, configured, running, kubeconfig, absent.

``salt/palplat/k3s.sls`` applies them in this order. Each one validates the pillar first
(unknown config keys, join settings) and fails naming the pillar path before anything
changes. ``running`` restarts k3s only when the binary, config or unit changed since the
last successful start; ``configured`` and ``running`` check the join token against the
running cluster first, so a wrong token changes and restarts nothing.
"""

import os

from palplat import k3s, loaderkit
from palplat.errors import PalplatError

__virtualname__ = "palplat_k3s"


def __virtual__():
    return __virtualname__


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _load(name):
    """``(env, cfg, done)``: ``done`` is the return for ``mode: external`` (nothing is
    managed here), else None."""
    e = _env()
    cfg = e.k3s_config()
    if cfg.k3s.mode == "external":
        return e, cfg, loaderkit.state_ret(name, {}, True, "mode external: k3s is not managed here")
    return e, cfg, None


@loaderkit.state
def installed(name="k3s", ordered_upgrade=True):
    """The pinned k3s binary (``palplat:k3s:version``) from ``palplat:k3s:source``.

    sha256 verified (pillar or the release's checksum file), installed atomically. A
    downgrade is refused unless ``palplat:k3s:allow_downgrade``. With
    ``ordered_upgrade`` (the default), replacing an installed version is left to
    ``salt-run palplat_k3s.upgrade`` (servers one at a time, agents drained), which sets
    the pillar key ``palplat_k3s_upgrade``.
    """
    e, cfg, done = _load(name)
    if done:
        return done
    plan = k3s.plan_binary(cfg)
    changes = plan.changes
    if not changes:
        return loaderkit.state_ret(name, {}, True, f"k3s {plan.current} is installed")
    upgrading = plan.current is not None and plan.current != plan.desired
    if upgrading and ordered_upgrade and not __pillar__.get(k3s.UPGRADE_PILLAR):
        return loaderkit.state_ret(
            name,
            {},
            False,
            f"k3s {plan.current} is installed and the pillar wants {plan.desired}: run "
            "`salt-run palplat_k3s.upgrade` (or `salt-run state.orchestrate "
            "palplat.k3s_upgrade`) so servers upgrade one at a time and agents are drained; "
            "nothing was changed",
        )
    if e.test:
        return loaderkit.state_ret(
            name, changes, None, f"would install k3s {plan.desired} (installed: {plan.current})"
        )
    changes = k3s.install_binary(cfg, plan, e.fetch_salt, e.progress("k3s"))
    return loaderkit.state_ret(name, changes, True, f"installed k3s {plan.desired} (verified)")


@loaderkit.state
def configured(name="k3s"):
    """``config.yaml`` and ``registries.yaml`` (0600) from ``palplat:k3s``; when they would
    change, the token is checked against the running cluster before anything is written
    (``running`` checks it again before any restart)."""
    e, cfg, done = _load(name)
    if done:
        return done
    changes = k3s.plan_files(cfg)
    if not changes:
        return loaderkit.state_ret(name, {}, True, "k3s config is up to date")
    # only a change can lead to a restart: check the token before writing anything
    try:
        checked = k3s.check_token(cfg, e.guard() if e.planning else None)
    except k3s.SourceError as exc:
        # the plan of a bare cluster: the server this node joins is set up earlier in the
        # same run; the real run checks the token before it writes anything
        if not e.test or k3s.installed_version(k3s.paths(cfg).binary) is not None:
            raise
        checked = f"join token checked once the server runs; now: {exc}"
    if e.test:
        return loaderkit.state_ret(
            name, changes, None, f"would write {', '.join(changes)} ({checked})"
        )
    changes = k3s.write_files(cfg)
    return loaderkit.state_ret(name, changes, True, f"wrote {', '.join(changes)} (verified)")


@loaderkit.state
def running(name="k3s"):
    """The k3s unit for the node's role, enabled and running; restarted only when the
    binary, config or unit changed; waits for the API /readyz and the node Ready."""
    e, cfg, done = _load(name)
    if done:
        return done
    pending = e.test and bool(k3s.plan_binary(cfg).changes or k3s.plan_files(cfg))
    plan = k3s.plan_service(cfg, pending=pending)
    changes = plan.changes
    if e.test:
        if not changes:
            return loaderkit.state_ret(name, {}, True, f"{plan.unit} is running")
        return loaderkit.state_ret(
            name,
            changes,
            None,
            f"would {plan.action} {plan.unit}"
            if plan.action != "nothing"
            else f"would update {plan.unit}",
        )
    try:
        changes = k3s.apply_service(cfg, plan, e.progress("k3s"))
    except PalplatError as exc:
        return loaderkit.failed(name, exc, changes if plan.unit_changed else None)
    if not changes:
        return loaderkit.state_ret(name, {}, True, f"{plan.unit} is running and Ready")
    return loaderkit.state_ret(
        name, changes, True, f"{plan.unit}: {plan.action or 'updated'}; Ready"
    )


@loaderkit.state
def kubeconfig(name="k3s"):
    """The kubeconfig every Kubernetes/Helm state uses reaches a ready API server.

    ``mode: external`` checks only this (nothing is installed). Agents have none.
    """
    e = _env()
    cfg = e.k3s_config()
    path = k3s.kubeconfig_path(cfg)
    if cfg.k3s.mode == "install" and cfg.k3s.role == "agent":
        return loaderkit.state_ret(name, {}, True, "agents have no admin kubeconfig")
    if e.test and cfg.k3s.mode == "install" and not os.path.exists(path):
        return loaderkit.state_ret(name, {}, None, f"k3s would write {path} when it starts")
    return loaderkit.state_ret(name, {}, True, k3s.verify_kubeconfig(cfg))


@loaderkit.state
def absent(name="k3s", purge=False):
    """Uninstall k3s: stop and remove the unit, the binary and the config files
    (``purge=True`` also removes the data directory)."""
    e = _env()
    cfg = e.k3s_config()
    changes = k3s.plan_uninstall(cfg, purge)
    if not changes:
        return loaderkit.state_ret(name, {}, True, "k3s is not installed")
    if e.test:
        return loaderkit.state_ret(name, changes, None, "would uninstall k3s")
    changes = k3s.uninstall(cfg, purge)
    return loaderkit.state_ret(name, changes, True, "uninstalled k3s")
