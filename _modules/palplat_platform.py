"""Execution module: the objects the platform stage creates beside the Helm releases.

Thin: the logic is in the ``palplat`` library (``_utils/palplat/platform/``).
"""

from palplat import config, loaderkit, redact
from palplat.platform import converge as platform
from palplat.platform import objects


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


@loaderkit.translate
def manifests():
    """
    The objects palplat creates beside the releases, by group (``databases``: namespaces
    and CloudNativePG Clusters; ``access``: Tailscale ingresses and blackbox Probes), and
    the order: ``first`` (releases before the databases) and ``second`` (after).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_platform.manifests
    """
    cfg = _env().config()
    rels = config.releases(cfg)
    first, second = objects.layout(rels)
    out = {name: g.manifests for name, g in objects.groups(cfg, rels).items()}
    return redact.mask({"first": first, "second": second, **out})


@loaderkit.translate
def plan():
    """
    The platform stage's plan: releases (manifest-level diffs) and objects (field diffs),
    secrets masked. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_platform.plan
    """
    e = _env()
    cfg = e.config()
    with e.helm_context(cfg) as ctx:
        res = platform.converge(cfg, ctx, test=True)
    return redact.mask({k: res[k] for k in ("changes", "errors", "unchanged", "objects")})
