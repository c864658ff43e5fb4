"""What the ``palplat_dora`` execution module does on the minion that holds the cluster:
append records (spooling them while the cluster cannot be reached), observe the
services' Argo CD Applications and Woodpecker pipelines, write the metrics file, and
compute the report. The loader module only builds the arguments."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from palplat import kube as k8s
from palplat.dora import metrics, records, report
from palplat.dora.ledger import Ledger, Spool
from palplat.errors import PalplatError
from palplat.model import PalplatPillar

log = logging.getLogger("palplat.dora")

ARGO_API = "argoproj.io/v1alpha1"
SPOOL_NAME = "dora-spool.jsonl"
PIPELINE_PAGES = 4  # 200 pipelines per repository and observation (newest first)


def spool_path(cachedir: str) -> str:
    return os.path.join(cachedir, "palplat", SPOOL_NAME)


def ledger_of(cfg: PalplatPillar, kube: k8s.Kube) -> Ledger:
    return Ledger(kube, cfg.dora.namespace, cfg.dora.max_records)


def known_components(cfg: PalplatPillar) -> list[tuple[str, str]]:
    """The components the pillar names, so their series exist (at zero) from the start."""
    out = [(records.PLATFORM, c) for c in ("host", "firewall", "k3s", "gpu", "helm")]
    out += [(records.PLATFORM, f"release/{k}") for k, r in cfg.platform.releases.items()
            if r.enabled]  # fmt: skip
    for name, svc in cfg.services.items():
        if svc.enabled:
            out += [(records.PLATFORM, f"onboarding/{name}"), (records.SERVICE, name)]
    return out


def append(
    cfg: PalplatPillar,
    kube_factory: Callable[[], k8s.Kube],
    spool: Spool,
    recs: Iterable[Mapping[str, Any]],
    now: float | None = None,
) -> dict[str, Any]:
    """Append ``recs`` (and what the spool holds) to the ledger, then write the metrics
    file. When the cluster cannot be reached the records go to the spool: nothing is lost,
    and the answer says so."""
    recs = [dict(r) for r in recs]
    out: dict[str, Any] = {"given": len(recs), "added": 0, "spooled": 0}
    try:
        kube = kube_factory()
        led = ledger_of(cfg, kube)
        out["from_spool"] = spool.drain(lambda waiting: led.append(waiting))
        out["added"] = led.append(recs)
        out["conflicts"] = led.stats["conflicts"]
    except (PalplatError, OSError) as exc:
        if recs:
            spool.add(recs)
        out["spooled"] = len(recs)
        out["comment"] = (
            f"the ledger could not be written ({exc}); {len(recs)} record(s) wait in "
            f"{spool.path} and go to the ledger with the next run"
        )
        return out
    out.update(write_metrics(cfg, led, now=now))
    return out


def write_metrics(cfg: PalplatPillar, led: Ledger, now: float | None = None) -> dict[str, Any]:
    if not cfg.dora.textfile_dir:
        return {"metrics": None}
    recs = led.cached if led.cached is not None else led.read()
    d = cfg.dora
    tls = report.timelines(recs, d.failure_window, d.healthy_within)
    col = metrics.DoraCollector(tls, known_components(cfg), len(recs), now=now)
    try:
        return {"metrics": metrics.write(d.textfile_dir, col)}
    except OSError as exc:
        return {"metrics": None, "metrics_error": f"{d.textfile_dir}: {exc}"}


# ---------------------------------------------------------------------- observing


def observe_argo(cfg: PalplatPillar, kube: k8s.Kube, now: float) -> list[dict[str, Any]]:
    """One ``argo`` record per service Application palplat made (a kind not served yet:
    none)."""
    names = {n for n, s in cfg.services.items() if s.enabled}
    if not names:
        return []
    try:
        apps = kube.list(ARGO_API, "Application", None, f"{k8s.MANAGED_BY_LABEL}=palplat")
    except k8s.UnknownKind:
        return []
    return [
        records.argo_observation(a, now, a["metadata"]["name"])
        for a in apps
        if a["metadata"]["name"] in names
    ]


def observe_pipelines(cfg: PalplatPillar, woodpecker) -> list[dict[str, Any]]:
    """The finished pipelines of each service's repository (Woodpecker's newest first)."""
    if woodpecker is None:
        return []
    wanted = {s.repo.lower(): name for name, s in cfg.services.items() if s.enabled and s.repo}
    out = []
    for full, repo in woodpecker.repos().items():
        name = wanted.get(full)
        if name is None or not repo.get("id"):
            continue
        for p in woodpecker.pipelines(int(repo["id"]), pages=PIPELINE_PAGES):
            rec = records.pipeline_record(name, p)
            if rec is not None:
                out.append(rec)
    return out


def observe(
    cfg: PalplatPillar,
    kube_factory: Callable[[], k8s.Kube],
    spool: Spool,
    woodpecker_factory: Callable[[], Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """What the services show now (Argo CD Applications, Woodpecker pipelines) into the
    ledger; the ledger dedupes what it already holds."""
    now = time.time() if now is None else now
    found: list[dict[str, Any]] = []
    notes = []
    try:
        found += observe_argo(cfg, kube_factory(), now)
    except k8s.KubeError as exc:
        notes.append(f"Argo CD Applications: {exc}")
    wp = None
    try:
        wp = woodpecker_factory() if woodpecker_factory else None
        found += observe_pipelines(cfg, wp)
    except Exception as exc:  # noqa: BLE001 - a CI outage must not stop the observation
        notes.append(f"Woodpecker pipelines: {type(exc).__name__}: {exc}")
    finally:
        if wp is not None:
            wp.close()
    out = append(cfg, kube_factory, spool, found, now=now)
    out["observed"] = len(found)
    if notes:
        out["notes"] = notes
    return out


def deliver(
    send: Callable[[list[dict[str, Any]]], bool], spool: Spool, recs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Master side: ``send`` the records (and those the master's spool kept) to the minion
    that holds the ledger; kept in the master's spool when no minion took them."""
    waiting = spool.pending()
    try:
        taken = send(waiting + list(recs))
    except Exception as exc:  # noqa: BLE001 - recording must never fail a run
        log.warning("palplat dora: could not send the records: %s", exc)
        taken = False
    if taken:
        if waiting:
            spool.drain(lambda _w: None)
        return {"sent": len(waiting) + len(recs), "spooled": 0}
    spool.add(recs)
    return {"sent": 0, "spooled": len(waiting) + len(recs), "spool": spool.path}


def build_report(
    cfg: PalplatPillar,
    kube: k8s.Kube,
    days: float | None = None,
    service: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    d = cfg.dora
    recs = ledger_of(cfg, kube).read()
    rep = report.build(
        recs,
        now=now,
        days=float(days or d.window_days),
        service=service,
        window=d.failure_window,
        within=d.healthy_within,
        year=d.year,
    )
    rep["records"] = len(recs)
    return rep
