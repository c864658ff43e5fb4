"""Execution module: service onboarding (``palplat:services``), read-only helpers.

Thin: the logic is in ``palplat.services``. The kubeconfig defaults to the pillar's
(``palplat:k3s:kubeconfig``, else k3s's own). Every secret is ``<hidden>`` in returns.
"""

from palplat import kube, loaderkit, redact
from palplat.services import api

__virtualname__ = "palplat_service"


def __virtual__():
    return loaderkit.needs_kubernetes(__virtualname__)


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


@loaderkit.translate
def plan(services=None, kubeconfig=None):
    """
    What ``state.apply palplat.service`` would change: ``changes`` per service, ``left``
    (what could not be planned, per service and part), ``orphans`` (entries that left the
    pillar, left alone) and the state ``comment``. Nothing is written (Kubernetes requests
    are ``dryRun=All``, Harbor and Woodpecker are only read).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_service.plan
        salt '*' palplat_service.plan services='[pal-e-docs]'
    """
    e = _env()
    cfg = e.config()
    only = [str(s) for s in services] if services else None
    out, _ = api.run(cfg, e.kube(kubeconfig, cfg=cfg), dry_run=True, only=only, verify=False)
    return redact.mask(
        {
            "changes": out.changes(),
            "left": out.left(),
            "orphans": out.orphans,
            "comment": out.comment(True),
        }
    )


@loaderkit.translate
def status(kubeconfig=None):
    """
    One row per service: ``converged``, ``N pending change(s)``, ``failed: <parts>``
    (what a run could not do, e.g. Harbor unreachable), ``absent`` or ``orphaned``, with
    ``healthy``. Read-only (a plan); ``salt-run palplat.status`` shows it.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_service.status
    """
    e = _env()
    cfg = e.config()
    out, _ = api.run(cfg, e.kube(kubeconfig, cfg=cfg), dry_run=True, verify=False)
    return redact.mask(out.status())


@loaderkit.translate
def render(name):
    """
    The Kubernetes objects palplat makes for service ``name``, by part (namespace,
    secrets, database, delivery, ingress, monitoring), with Secret values ``<hidden>``.
    Robot Secrets are not among them: they hold what Harbor answers.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_service.render pal-e-docs
    """
    return api.render(_env().config(), str(name))


@loaderkit.translate
def objects(name, kubeconfig=None):
    """
    The objects palplat made for service ``name`` on the cluster (found by their labels,
    also after the entry left the pillar), by part.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_service.objects pal-e-docs
    """
    return kube.masked(api.live(_env().kube(kubeconfig), str(name)))


@loaderkit.translate
def orphans(kubeconfig=None):
    """
    Services palplat made objects or Harbor robots for whose entries left the pillar:
    ``{name: [what]}``. They are never changed by palplat; add the entry back with
    ``absent: true`` to offboard one.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_service.orphans
    """
    return plan(kubeconfig=kubeconfig)["orphans"]
