"""What exists, read once per run: one LIST per Kubernetes kind for every service, one
Harbor listing of projects and of robots, one Woodpecker listing of repositories.

Every object the services stage makes carries ``palplat.io/part`` (and, per service,
``palplat.io/service``) with palplat's ownership labels, so :func:`take` finds all of
them with one label selector per kind and groups them by owner. A listing that fails
(Harbor down, 401, ...) is kept as an error: the parts that need it fail, the rest goes on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from palplat import kube
from palplat.services import bundle
from palplat.services.http import ApiError, Unreached
from palplat.services.resolve import PART_LABEL

NET = "networking.k8s.io/v1"
# every kind the services stage makes, in the order they are listed
KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("v1", "Secret"),
    (NET, "NetworkPolicy"),
    (NET, "Ingress"),
    (bundle.ARGO_API, "Application"),
    (bundle.MON_API, "PrometheusRule"),
    (bundle.MON_API, "ServiceMonitor"),
    (bundle.MON_API, "Probe"),
    (bundle.CNPG_API, "Cluster"),
    (bundle.CNPG_API, "ScheduledBackup"),
)
# never pruned or removed with a part: deleting them deletes data
DATA_KINDS = ("Namespace", "Cluster", "PersistentVolumeClaim")
SELECTOR = f"{kube.MANAGED_BY_LABEL}={kube.MANAGED_BY_VALUE},{PART_LABEL}"


@dataclass
class Inventory:
    by_owner: dict[str, dict[tuple[str, str], list[dict]]]
    unserved: set[tuple[str, str]] = field(default_factory=set)

    def listed_for(self, owner: str) -> dict[tuple[str, str], list[dict]]:
        """The owner's objects of every kind (empty lists too), for ``kube.converge``."""
        mine = self.by_owner.get(owner, {})
        return {k: list(mine.get(k, [])) for k in KINDS}

    def objects(self, owner: str) -> list[dict]:
        return [o for items in self.by_owner.get(owner, {}).values() for o in items]

    def owners(self) -> set[str]:
        return set(self.by_owner)


def take(k: kube.Kube) -> Inventory:
    """LIST every kind of :data:`KINDS` once (all namespaces), grouped by owner."""
    by_owner: dict[str, dict[tuple[str, str], list[dict]]] = defaultdict(dict)
    unserved = set()
    for api_version, kind in KINDS:
        try:
            items = k.list(api_version, kind, label_selector=SELECTOR)
        except kube.UnknownKind:
            unserved.add((api_version, kind))
            continue
        for obj in items:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            owner = labels.get(kube.OWNER_LABEL)
            if owner:
                by_owner[owner].setdefault((api_version, kind), []).append(obj)
    return Inventory(dict(by_owner), unserved)


def part_of(obj: dict[str, Any]) -> str:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(PART_LABEL, "")


@dataclass
class Listing:
    """The result of one API listing: ``items`` or the ``error`` that stopped it.
    ``unreached``: a pull request's plan did not contact the API (why): ``items`` is
    empty, planned as if the API held nothing yet."""

    items: Any = None
    error: str | None = None
    unreached: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def listing(fn: Callable[[], Any] | None, missing: str, empty: Any = None) -> Listing:
    """Call ``fn``; an API error becomes ``Listing(error=...)``; no ``fn``: ``missing``;
    an API a plan does not contact: ``Listing(empty, unreached=why)``."""
    if fn is None:
        return Listing(error=missing)
    api = getattr(getattr(fn, "__self__", None), "api", None)
    if isinstance(api, Unreached):
        return Listing(empty, unreached=api.reason)
    try:
        return Listing(fn())
    except ApiError as exc:
        return Listing(error=str(exc))
