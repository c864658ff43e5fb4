"""The ledger's facts as Prometheus metrics, in the text format node_exporter's textfile
collector reads, written atomically with the official client (``prometheus-client``:
a custom collector, ``write_to_textfile``: a temporary file renamed over the old one).

Per ``scope`` (platform, service) and ``component``, totals over the whole ledger:

- counters ``palplat_dora_{deployments,failures,reworks,changes,recoveries}_total`` and
  ``palplat_dora_runs_total{outcome=...}``;
- histograms ``palplat_dora_lead_time_seconds`` and ``palplat_dora_recovery_time_seconds``
  with bucket edges on the band limits (1 h, 1 day, 1 week, 30 days, 180 days), so the
  number of observations in a band is exact;
- gauges ``palplat_dora_last_deployment_timestamp_seconds``,
  ``palplat_dora_last_success_timestamp_seconds`` and ``palplat_dora_failed`` (1 while the
  component is failed);
- ``palplat_dora_write_timestamp_seconds`` and ``palplat_dora_ledger_records``: the writer
  is alive.

Every series of every known component is written, at zero when nothing happened, so a
missing series means a dead writer, never "no deployments". No label per commit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from palplat.dora.bands import TIME_EDGES
from palplat.dora.records import PLATFORM, SERVICE
from palplat.dora.timeline import Timeline

FILENAME = "palplat_dora.prom"
LABELS = ["scope", "component"]
OUTCOMES = {
    PLATFORM: ("deployed", "failed", "drift_repair", "noop", "skipped"),
    SERVICE: ("deployed", "failed", "resync", "resync_failed", "progressing"),
}
COUNTERS = ("deployments", "failures", "reworks", "changes", "recoveries")


def _go(v: float) -> str:
    from prometheus_client.utils import floatToGoString

    return floatToGoString(v)


def _buckets(values: list[float]) -> list[tuple[str, float]]:
    out = []
    for edge in TIME_EDGES:
        out.append((_go(edge), float(sum(1 for v in values if v <= edge))))
    out.append(("+Inf", float(len(values))))
    return out


class DoraCollector:
    """A ``prometheus_client`` collector over timelines (computed once, at creation)."""

    def __init__(
        self,
        tls: Iterable[Timeline],
        known: Iterable[tuple[str, str]] = (),
        records: int = 0,
        now: float | None = None,
    ):
        self.tls = {(t.scope, t.component): t for t in tls}
        for scope, comp in known:
            self.tls.setdefault((scope, comp), Timeline(scope, comp))
        self.records = records
        self.now = time.time() if now is None else now

    def collect(self):
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        counters = {
            n: CounterMetricFamily(f"palplat_dora_{n}", _HELP[n], labels=LABELS) for n in COUNTERS
        }
        runs = CounterMetricFamily(
            "palplat_dora_runs", "Runs (syncs) by outcome", labels=[*LABELS, "outcome"]
        )
        lead = HistogramMetricFamily(
            "palplat_dora_lead_time_seconds", "Change lead time, one per change", labels=LABELS
        )
        recovery = HistogramMetricFamily(
            "palplat_dora_recovery_time_seconds",
            "Failed deployment recovery time, one per recovery",
            labels=LABELS,
        )
        last_dep = GaugeMetricFamily(
            "palplat_dora_last_deployment_timestamp_seconds",
            "Time of the last successful deployment (0: none yet)",
            labels=LABELS,
        )
        last_ok = GaugeMetricFamily(
            "palplat_dora_last_success_timestamp_seconds",
            "Time of the last successful run: deployment, drift repair or no-op (0: none yet)",
            labels=LABELS,
        )
        failed = GaugeMetricFamily(
            "palplat_dora_failed", "1 while the component is failed (not recovered)", labels=LABELS
        )
        for (scope, comp), tl in sorted(self.tls.items()):
            labels = [scope, comp]
            ok = tl.ok_deployments
            values = {
                "deployments": len(ok),
                "failures": sum(1 for d in tl.deployments if d.failed),
                "reworks": sum(1 for d in ok if d.rework),
                "changes": sum(len(d.changes) for d in ok),
                "recoveries": sum(1 for d in tl.deployments if d.recovery is not None),
            }
            for n, fam in counters.items():
                fam.add_metric(labels, float(values[n]))
            by_outcome = dict.fromkeys(OUTCOMES.get(scope, ()), 0)
            by_outcome.update(tl.outcome_counts())
            for o, n in sorted(by_outcome.items()):
                runs.add_metric([*labels, o], float(n))
            leads = [x for d in ok for x in d.lead_times]
            recs = [d.recovery for d in tl.deployments if d.recovery is not None]
            lead.add_metric(labels, _buckets(leads), float(sum(leads)))
            recovery.add_metric(labels, _buckets(recs), float(sum(recs)))
            last_dep.add_metric(labels, float(tl.last_deployment or 0))
            last_ok.add_metric(labels, float(tl.last_success or 0))
            failed.add_metric(labels, 1.0 if tl.failed_since is not None else 0.0)
        yield from counters.values()
        yield from (runs, lead, recovery, last_dep, last_ok, failed)
        g = GaugeMetricFamily("palplat_dora_write_timestamp_seconds", "When palplat wrote this")
        g.add_metric([], float(self.now))
        yield g
        g = GaugeMetricFamily("palplat_dora_ledger_records", "Records in the DORA ledger")
        g.add_metric([], float(self.records))
        yield g


_HELP = {
    "deployments": "Successful deployments",
    "failures": "Failed deployments (failed attempts and deployments that failed later)",
    "reworks": "Deployments made while the component was failed, or reverts",
    "changes": "Changes (commits) deployed",
    "recoveries": "Recoveries from a failed deployment",
}


def registry(collector: DoraCollector) -> Any:
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


def text(collector: DoraCollector) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry(collector)).decode()


def write(directory: str, collector: DoraCollector) -> str:
    """Write ``<directory>/palplat_dora.prom`` atomically; its path."""
    from prometheus_client import write_to_textfile

    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = os.path.join(directory, FILENAME)
    write_to_textfile(path, registry(collector))
    os.chmod(path, 0o644)
    return path
