"""Execution module: inspect and plan the Helm releases of the ``palplat`` pillar.

Thin: the logic is in the ``palplat`` library (``_utils/palplat/helm/``).
"""

from palplat import config, helm, loaderkit, redact


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


@loaderkit.translate
def releases():
    """
    List every Helm release in the cluster (``helm list -A``), as helm reports it.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_helm.releases
    """
    e = _env()
    with e.helm_context(e.config()) as ctx:
        found = ctx.helm.list_releases().values()
        return redact.mask(sorted(found, key=lambda r: (r["namespace"], r["name"])))


@loaderkit.translate
def plan(name=None):
    """
    The plan for the pillar's releases (or only ``name``): what would change and the
    manifest-level diff, secrets masked. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_helm.plan
        salt '*' palplat_helm.plan name=ingress-nginx
    """
    e = _env()
    cfg = e.config()
    with e.helm_context(cfg) as ctx:
        res = helm.converge(config.releases(cfg), ctx, test=True, only=[name] if name else None)
    return redact.mask({k: res[k] for k in ("changes", "errors", "unchanged")})
