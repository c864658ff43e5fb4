"""State module: Helm releases of the ``palplat:platform:releases`` pillar.

``palplat_helm.platform`` converges every release (one helm listing per run);
``palplat_helm.release`` converges one. A no-op run calls ``helm list`` once, reads the
stored fingerprints once and LISTs the kinds the releases own (drift check): nothing else.
Test mode returns the manifest-level diff of every release that would change.
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

from palplat import config, helm, helm_install, loaderkit, redact  # noqa: E402
from palplat.errors import PalplatError  # noqa: E402

__virtualname__ = "palplat_helm"


def __virtual__():
    return __virtualname__


def _context(cfg):
    return helm.context_for(
        cfg,
        helm_bin=__salt__["config.get"]("palplat.helm_bin", None),
        kubeconfig=__salt__["config.get"]("palplat.kubeconfig", None),
        fire=loaderkit.salt_fire(__salt__, __opts__),
    )


def _converge(name, only=None):
    redact.install_log_filter()
    try:
        cfg = config.load(__pillar__)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    rels = config.releases(cfg)
    if only is not None:
        missing = [n for n in only if n not in rels]
        if missing:
            return loaderkit.state_ret(
                name,
                {},
                False,
                f"palplat:platform:releases:{missing[0]}: no such release; define it under "
                f"palplat:platform:releases (defined: {', '.join(sorted(rels)) or 'none'})",
            )
    test = bool(__opts__.get("test"))
    ctx = None
    try:
        ctx = _context(cfg)
        res = helm.converge(rels, ctx, test=test, only=only)
        changes, errors = res["changes"], res["errors"]
        comment = []
        for key, msg in sorted(errors.items()):
            comment.append(f"palplat:platform:releases:{key}: {msg}")
        if errors:
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
        if test:
            return loaderkit.state_ret(
                name,
                changes,
                None,
                f"would converge {len(changes)} release(s) ({verbs}); {n_same} unchanged",
            )
        # verify: a fresh plan must find nothing left to do
        again = helm.plan(rels, ctx, only=[k for k in changes])
        left = [
            f"{p.key} ({'; '.join(p.reasons) or p.error})" for p in again if p.changed or p.error
        ]
        if left:
            return loaderkit.state_ret(
                name, changes, False, f"verify failed: still not converged: {', '.join(left)}"
            )
        return loaderkit.state_ret(
            name,
            changes,
            True,
            f"converged {len(changes)} release(s) ({verbs}); {n_same} unchanged",
        )
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    finally:
        if ctx is not None:
            ctx.kube.close()


def platform(name="palplat-platform-releases"):
    """Converge every release of ``palplat:platform:releases`` (plus the GPU device plugin)
    in ``needs`` order."""
    return _converge(name)


def release(name):
    """Converge one release; ``name`` is its key under ``palplat:platform:releases``."""
    return _converge(name, only=[name])


def installed(name="helm"):
    """The helm binary pinned by ``palplat:platform:helm:version``: downloaded, sha256
    verified (pillar or the release's ``.sha256sum``), version checked, atomically
    installed at ``palplat:platform:helm:path``. Without a pinned version, nothing to do."""
    try:
        cfg = config.load(__pillar__)
        the_plan = helm_install.plan(cfg)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    if not the_plan.desired:
        return loaderkit.state_ret(
            name, {}, True, "palplat:platform:helm:version is not pinned: using helm from PATH"
        )
    changes = the_plan.changes
    if not changes:
        return loaderkit.state_ret(name, {}, True, f"helm {the_plan.current} is installed")
    if __opts__["test"]:
        return loaderkit.state_ret(
            name, changes, None, f"would install helm {the_plan.desired} at {the_plan.path}"
        )
    try:
        changes = helm_install.install(
            cfg,
            the_plan,
            fetch_salt=lambda url: __salt__["cp.cache_file"](url),
            progress=loaderkit.Progress(loaderkit.salt_fire(__salt__, __opts__), "helm"),
        )
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    return loaderkit.state_ret(
        name, changes, True, f"installed helm {the_plan.desired} at {the_plan.path} (verified)"
    )
