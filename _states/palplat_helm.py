"""State module: Helm releases of the ``palplat:platform:releases`` pillar.

``palplat_helm.platform`` converges every release (one helm listing per run);
``palplat_helm.release`` converges one. A no-op run calls ``helm list`` once, reads the
stored fingerprints once and LISTs the kinds the releases own (drift check): nothing else.
Test mode returns the manifest-level diff of every release that would change; a real run
is verified by the library (a fresh plan must find nothing left to do).
"""

from palplat import config, helm, loaderkit
from palplat.errors import InputError


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _converge(name, only=None):
    e = _env()
    cfg = e.config()
    rels = config.releases(cfg)
    missing = [n for n in only or () if n not in rels]
    if missing:
        raise InputError(
            f"palplat:platform:releases:{missing[0]}: no such release; define it under "
            f"palplat:platform:releases (defined: {', '.join(sorted(rels)) or 'none'})"
        )
    with e.helm_context(cfg) as ctx:
        res = helm.converge(rels, ctx, test=e.test, only=only)
    changes, errors = res["changes"], res["errors"]
    if errors:
        comment = [f"palplat:platform:releases:{k}: {msg}" for k, msg in sorted(errors.items())]
        return loaderkit.state_ret(name, changes, False, comment)
    n_same = len(res["unchanged"])
    if not changes:
        return loaderkit.state_ret(
            name,
            {},
            True,
            f"{n_same} release(s) already converged (fingerprints and live objects match)",
        )
    verbs = ", ".join(f"{k}: {v['action']}" for k, v in sorted(changes.items()))
    if e.test:
        return loaderkit.state_ret(
            name,
            changes,
            None,
            f"would converge {len(changes)} release(s) ({verbs}); {n_same} unchanged",
        )
    return loaderkit.state_ret(
        name, changes, True, f"converged {len(changes)} release(s) ({verbs}); {n_same} unchanged"
    )


@loaderkit.state
def platform(name="palplat-platform-releases"):
    """Converge every release of ``palplat:platform:releases`` (plus the GPU device plugin)
    in ``needs`` order."""
    return _converge(name)


@loaderkit.state
def release(name):
    """Converge one release; ``name`` is its key under ``palplat:platform:releases``."""
    return _converge(name, only=[name])


@loaderkit.state
def installed(name="helm"):
    """The helm binary pinned by ``palplat:platform:helm:version``: downloaded, sha256
    verified (pillar or the release's ``.sha256sum``), version checked, atomically
    installed at ``palplat:platform:helm:path``. Without a pinned version, nothing to do."""
    e = _env()
    cfg = e.config()
    the_plan = helm.install.plan(cfg)
    if not the_plan.desired:
        return loaderkit.state_ret(
            name, {}, True, "palplat:platform:helm:version is not pinned: using helm from PATH"
        )
    changes = the_plan.changes
    if not changes:
        return loaderkit.state_ret(name, {}, True, f"helm {the_plan.current} is installed")
    if e.test:
        return loaderkit.state_ret(
            name, changes, None, f"would install helm {the_plan.desired} at {the_plan.path}"
        )
    changes = helm.install.install(
        cfg, the_plan, fetch_salt=e.fetch_salt, progress=e.progress("helm")
    )
    return loaderkit.state_ret(
        name, changes, True, f"installed helm {the_plan.desired} at {the_plan.path} (verified)"
    )
