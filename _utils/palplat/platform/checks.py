"""Pillar checks of what the platform stage creates beside releases (``database``,
``expose``), reported with every other pillar problem by :func:`palplat.config.load`."""

from __future__ import annotations

from palplat.errors import PillarProblem
from palplat.model import PalplatPillar
from palplat.platform.access import hostname
from palplat.platform.objects import BLACKBOX_CHART, blackbox, chart_name

CNPG_CHART = "cloudnative-pg"
BASE = "palplat:platform:releases"


def _needs_closure(cfg: PalplatPillar, key: str) -> set[str]:
    rels = cfg.platform.releases
    seen: set[str] = set()
    todo = list(rels[key].needs)
    while todo:
        n = todo.pop()
        if n in seen or n not in rels:
            continue
        seen.add(n)
        todo.extend(rels[n].needs)
    return seen


def check(cfg: PalplatPillar) -> list[PillarProblem]:
    rels = cfg.platform.releases
    out: list[PillarProblem] = []
    hosts: dict[str, str] = {}
    for key, rel in rels.items():
        if rel.database is not None:
            cnpg = [n for n in _needs_closure(cfg, key) if chart_name(rels[n]) == CNPG_CHART]
            if not cnpg:
                out.append(
                    PillarProblem(
                        f"{BASE}:{key}:database",
                        "needs the CloudNativePG operator, which serves the Cluster kind: add "
                        f"the release of chart {CNPG_CHART} to palplat:platform:releases:"
                        f"{key}:needs",
                    )
                )
            store = cfg.services.defaults.object_store
            if rel.database.backup is not None and (
                store is None or store.access_key is None or store.secret_key is None
            ):
                out.append(
                    PillarProblem(
                        f"{BASE}:{key}:database:backup",
                        "needs the object store the backups go to: set palplat:services:"
                        "defaults:object_store (endpoint, bucket, access_key, secret_key), "
                        "shared with the services' databases, or remove backup",
                    )
                )
        ex = rel.expose
        if ex is None:
            continue
        host = hostname(ex.url)
        if host in hosts:
            out.append(
                PillarProblem(
                    f"{BASE}:{key}:expose:url",
                    f"the tailnet name '{host}' is already used by release {hosts[host]}; "
                    "each exposed release needs its own",
                )
            )
        hosts.setdefault(host, key)
        if ex.probe and blackbox(rels) is None:
            out.append(
                PillarProblem(
                    f"{BASE}:{key}:expose:probe",
                    f"needs a blackbox exporter: add a release of chart {BLACKBOX_CHART}, or "
                    "set probe: false",
                )
            )
    return out
