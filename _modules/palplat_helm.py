"""Execution module: inspect and plan the Helm releases of the ``palplat`` pillar.

Thin: the logic is in the ``palplat`` library (``_utils/palplat/helm.py``).
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

from palplat import config, helm, loaderkit, redact  # noqa: E402
from palplat.errors import PalplatError  # noqa: E402

__virtualname__ = "palplat_helm"


def __virtual__():
    return __virtualname__


def _ctx():
    redact.install_log_filter()
    try:
        cfg = config.load(__pillar__)
        return cfg, helm.context_for(
            cfg,
            helm_bin=__salt__["config.get"]("palplat.helm_bin", None),
            kubeconfig=__salt__["config.get"]("palplat.kubeconfig", None),
        )
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None


def releases():
    """
    List every Helm release in the cluster (``helm list -A``), as helm reports it.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_helm.releases
    """
    _, ctx = _ctx()
    try:
        return redact.mask(
            sorted(ctx.helm.list_releases().values(), key=lambda r: (r["namespace"], r["name"]))
        )
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None
    finally:
        ctx.kube.close()


def plan(name=None):
    """
    The plan for the pillar's releases (or only ``name``): what would change and the
    manifest-level diff, secrets masked. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_helm.plan
        salt '*' palplat_helm.plan name=ingress-nginx
    """
    cfg, ctx = _ctx()
    try:
        res = helm.converge(config.releases(cfg), ctx, test=True, only=[name] if name else None)
        return redact.mask(
            {"changes": res["changes"], "errors": res["errors"], "unchanged": res["unchanged"]}
        )
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None
    finally:
        ctx.kube.close()
