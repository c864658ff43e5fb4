"""State module: service onboarding, one ``palplat:services`` entry at a time.

.. code-block:: yaml

    palplat-services:
      palplat_service.onboarded: []        # every service of the pillar
    one-service:
      palplat_service.onboarded:
        - services: [pal-e-docs]

Each entry, merged with ``services:defaults``, gets its namespace (quota, limits,
NetworkPolicies), Harbor project and robots, Woodpecker activation and secrets, Argo CD
Application, Tailscale ingress, monitoring, optional CloudNativePG database and its
secrets; ``absent: true`` offboards (data kept unless ``delete_data``); entries removed
from the pillar are reported as orphaned and left alone. Test mode is the same path with
``dryRun=All`` and no Harbor or Woodpecker write, and returns the same changes. A part
that fails (Harbor down, Woodpecker 401, ...) fails the state naming exactly what is left,
service by service and part by part; the rest still converges, and a re-run finishes it.
"""

from palplat import config, loaderkit
from palplat.services import api

__virtualname__ = "palplat_service"


def __virtual__():
    return loaderkit.needs_kubernetes(__virtualname__)


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


@loaderkit.state
def onboarded(name="palplat-services", services=None, kubeconfig=None):
    """
    Converge every service of ``palplat:services`` (or only ``services``, a list of names).

    name
        State ID.
    services
        Only these services (default: all, and entries that left the pillar are reported
        as orphaned).
    kubeconfig
        Default: ``palplat:k3s:kubeconfig`` from the pillar, else k3s's own.
    """
    e = _env()
    cfg = e.config()
    if not kubeconfig and not config.holds_the_cluster(cfg):
        return loaderkit.state_ret(name, {}, True, config.CLUSTER_STAGE_ELSEWHERE)
    only = [str(s) for s in services] if services else None
    k = e.kube(kubeconfig, cfg=cfg)
    out, problems = api.run(
        cfg, k, dry_run=e.test, only=only, progress=e.progress("service"), guard=e.guard()
    )
    changes, summary = out.changes(), out.summary()
    comment = out.comment(e.test) or ["no service is defined under palplat:services"]
    if not out.ok:
        return loaderkit.state_ret(name, changes, False, comment, summary)
    if problems:
        comment += ["verification failed (another controller may fight over these):"]
        comment += [f"  - {p}" for p in problems]
        return loaderkit.state_ret(name, changes, False, comment, summary)
    if changes and e.test:
        return loaderkit.state_ret(name, changes, None, comment, summary)
    return loaderkit.state_ret(name, changes, True, comment, summary)
