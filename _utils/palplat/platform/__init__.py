"""The platform stage beside the Helm releases: the objects palplat creates for them and
the order they go in.

- :mod:`.database`: :func:`cnpg_cluster`, a CloudNativePG Cluster and the reference to the
  Secret CNPG makes for it (reused by service onboarding for services' databases).
- :mod:`.access`: a Tailscale (Funnel) Ingress to a chart's Service and a blackbox Probe
  of its URL.
- :mod:`.objects`: what the pillar asks for (``database`` and ``expose`` of releases) as
  groups of manifests, and :func:`layout`: which releases go before the databases.
- :mod:`.checks`: the pillar checks of those settings.
- :mod:`.converge` (imported on its own: it needs :mod:`palplat.helm`): one run of the
  platform stage, releases and objects in order; a no-op run costs one plan.

This module re-exports the pure pieces only.
"""

from palplat.platform.access import blackbox_probe, hostname, tailscale_ingress
from palplat.platform.database import CNPG_API, CnpgDatabase, cnpg_cluster

__all__ = [
    "CNPG_API",
    "CnpgDatabase",
    "blackbox_probe",
    "cnpg_cluster",
    "hostname",
    "tailscale_ingress",
]
