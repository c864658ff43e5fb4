"""State module: k3s installed, configured, running, kubeconfig, absent.

``salt/palplat/k3s.sls`` applies them in this order. Each one validates the pillar first
(unknown config keys, join settings) and fails naming the pillar path before anything
changes. ``running`` restarts k3s only when the binary, config or unit changed since the
last successful start; ``configured`` and ``running`` check the join token against the
running cluster first, so a wrong token changes and restarts nothing.
"""

import os as _os
import sys as _sys

_sys.path[:0] = [
    _p
    for _p in (
        _os.path.join(_os.path.dirname(_os.path.dirname(__file__)), _d)
        for _d in ("utils", "_utils")
    )
    if _os.path.isdir(_os.path.join(_p, "palplat")) and _p not in _sys.path
]

from palplat import config, k3s, loaderkit, redact  # noqa: E402
from palplat.errors import PalplatError, PillarError  # noqa: E402
from palplat.k3s_upgrade import UPGRADE_PILLAR  # noqa: E402

__virtualname__ = "palplat_k3s"


def __virtual__():
    return __virtualname__


def _load(name):
    """(cfg, None) or (None, failed ret)."""
    redact.install_log_filter()
    try:
        cfg = config.load(__pillar__)
        problems = k3s.check(cfg)
        if problems:
            raise PillarError(problems)
    except PalplatError as exc:
        return None, loaderkit.failed(name, exc)
    return cfg, None


def _progress():
    return loaderkit.Progress(loaderkit.salt_fire(__salt__, __opts__), "k3s")


def _fetch_salt(url):
    return __salt__["cp.cache_file"](url)


def _external(name, cfg):
    if cfg.k3s.mode == "external":
        return loaderkit.state_ret(name, {}, True, "mode external: k3s is not managed here")
    return None


def installed(name="k3s", ordered_upgrade=True):
    """The pinned k3s binary (``palplat:k3s:version``) from ``palplat:k3s:source``.

    sha256 verified (pillar or the release's checksum file), installed atomically. A
    downgrade is refused unless ``palplat:k3s:allow_downgrade``. With
    ``ordered_upgrade`` (the default), replacing an installed version is left to
    ``salt-run palplat_k3s.upgrade`` (servers one at a time, agents drained), which sets
    the pillar key ``palplat_k3s_upgrade``.
    """
    cfg, ret = _load(name)
    if ret:
        return ret
    ret = _external(name, cfg)
    if ret:
        return ret
    try:
        plan = k3s.plan_binary(cfg)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    changes = plan.changes
    if not changes:
        return loaderkit.state_ret(name, {}, True, f"k3s {plan.current} is installed")
    upgrading = plan.current is not None and plan.current != plan.desired
    if upgrading and ordered_upgrade and not __pillar__.get(UPGRADE_PILLAR):
        return loaderkit.state_ret(
            name,
            {},
            False,
            f"k3s {plan.current} is installed and the pillar wants {plan.desired}: run "
            "`salt-run palplat_k3s.upgrade` (or `salt-run state.orchestrate "
            "palplat.k3s_upgrade`) so servers upgrade one at a time and agents are drained; "
            "nothing was changed",
        )
    if __opts__["test"]:
        return loaderkit.state_ret(
            name, changes, None, f"would install k3s {plan.desired} (installed: {plan.current})"
        )
    try:
        changes = k3s.install_binary(cfg, plan, _fetch_salt, _progress())
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    return loaderkit.state_ret(name, changes, True, f"installed k3s {plan.desired} (verified)")


def configured(name="k3s"):
    """``config.yaml`` and ``registries.yaml`` (0600) from ``palplat:k3s``; when they would
    change, the token is checked against the running cluster before anything is written
    (``running`` checks it again before any restart)."""
    cfg, ret = _load(name)
    if ret:
        return ret
    ret = _external(name, cfg)
    if ret:
        return ret
    try:
        changes = k3s.plan_files(cfg)
        if not changes:
            return loaderkit.state_ret(name, {}, True, "k3s config is up to date")
        # only a change can lead to a restart: check the token before writing anything
        checked = k3s.check_token(cfg)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    if __opts__["test"]:
        return loaderkit.state_ret(
            name, changes, None, f"would write {', '.join(changes)} ({checked})"
        )
    try:
        changes = k3s.write_files(cfg)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    return loaderkit.state_ret(name, changes, True, f"wrote {', '.join(changes)} (verified)")


def running(name="k3s"):
    """The k3s unit for the node's role, enabled and running; restarted only when the
    binary, config or unit changed; waits for the API /readyz and the node Ready."""
    cfg, ret = _load(name)
    if ret:
        return ret
    ret = _external(name, cfg)
    if ret:
        return ret
    try:
        pending = False
        if __opts__["test"]:
            pending = bool(k3s.plan_binary(cfg).changes or k3s.plan_files(cfg))
        plan = k3s.plan_service(cfg, pending=pending)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    changes = plan.changes
    if __opts__["test"]:
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
        changes = k3s.apply_service(cfg, plan, _progress())
    except PalplatError as exc:
        return loaderkit.failed(name, exc, changes if plan.unit_changed else None)
    if not changes:
        return loaderkit.state_ret(name, {}, True, f"{plan.unit} is running and Ready")
    return loaderkit.state_ret(
        name, changes, True, f"{plan.unit}: {plan.action or 'updated'}; Ready"
    )


def kubeconfig(name="k3s"):
    """The kubeconfig every Kubernetes/Helm state uses reaches a ready API server.

    ``mode: external`` checks only this (nothing is installed). Agents have none.
    """
    cfg, ret = _load(name)
    if ret:
        return ret
    path = config.kubeconfig_path(cfg)
    if cfg.k3s.mode == "install" and cfg.k3s.role == "agent":
        return loaderkit.state_ret(name, {}, True, "agents have no admin kubeconfig")
    if __opts__["test"] and cfg.k3s.mode == "install" and not _os.path.exists(path):
        return loaderkit.state_ret(name, {}, None, f"k3s would write {path} when it starts")
    try:
        msg = k3s.verify_kubeconfig(cfg)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    return loaderkit.state_ret(name, {}, True, msg)


def absent(name="k3s", purge=False):
    """Uninstall k3s: stop and remove the unit, the binary and the config files
    (``purge=True`` also removes the data directory)."""
    cfg, ret = _load(name)
    if ret:
        return ret
    try:
        changes = k3s.plan_uninstall(cfg, purge)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    if not changes:
        return loaderkit.state_ret(name, {}, True, "k3s is not installed")
    if __opts__["test"]:
        return loaderkit.state_ret(name, changes, None, "would uninstall k3s")
    try:
        changes = k3s.uninstall(cfg, purge)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    return loaderkit.state_ret(name, changes, True, "uninstalled k3s")
