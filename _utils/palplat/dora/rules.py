"""Recording rules, alerts and a Grafana dashboard over the textfile metrics
(:mod:`palplat.dora.metrics`): the five keys per scope and component over the window,
their bands (4 Elite, 3 High, 2 Medium, 1 Low) and three alerts.

Counts over the window are exact differences of the counters (``x - x offset W``, or
``x`` itself while the series is younger than the window: every series starts at zero);
a time key's band is exact from the histogram buckets (their edges are the band limits):
the median is at or under a limit when at least half of the observations are.
"""

from __future__ import annotations

import json
import re
from typing import Any

from palplat.dora import bands

BY = "scope, component"
GROUP = "palplat-dora"
RULE_NAME = "palplat-dora"
DASHBOARD_NAME = "palplat-dora-dashboard"


def _window(x: str, w: str, by: str = BY) -> str:
    """The increase of counter ``x`` over ``w``, exactly, summed by ``by`` (scrape labels
    such as instance and job dropped)."""
    return f"sum by ({by}) ((({x}) - ({x} offset {w})) or ({x}))"


def _le(edge: float) -> str:
    """A matcher of the ``le`` label of one bucket edge, however the writer spelled it
    (``86400.0``; prometheus-client and Go write ``2.592e+06`` from a million up)."""
    e = float(edge)
    forms = {str(int(e)), f"{int(e)}.0", f"{e:g}", repr(e), f"{e:.6g}"}
    if e >= 1e6:
        mant, exp = f"{e:e}".split("e")
        forms.add(f"{mant.rstrip('0').rstrip('.')}e{exp}")
    alts = "|".join(sorted(re.escape(f) for f in forms))
    return f"le=~`{alts}`"


def _band_of_hist(name: str, w: str, edges: tuple[float, float, float]) -> str:
    parts = [
        f"(sum by ({BY}) ({name}:bucket:{w}{{{_le(e)}}}) / ({name}:count:{w} > 0) >= bool 0.5)"
        for e in edges
    ]
    return f"{name}:count:{w} * 0 + 1 + " + " + ".join(parts)


def recording(days: int = 30, year: int = 2024) -> list[dict[str, Any]]:
    w = f"{days}d"
    out: list[dict[str, Any]] = []

    def rec(name: str, expr: str) -> None:
        out.append({"record": name, "expr": expr})

    for n in ("deployments", "failures", "reworks", "changes", "recoveries"):
        rec(f"palplat_dora:{n}:{w}", _window(f"palplat_dora_{n}_total", w))
    rec(
        f"palplat_dora:failed_attempts:{w}",
        _window('palplat_dora_runs_total{outcome="failed"}', w),
    )
    rec(
        f"palplat_dora:attempts:{w}",
        f"palplat_dora:deployments:{w} + palplat_dora:failed_attempts:{w}",
    )
    for h in ("lead_time", "recovery_time"):
        m = f"palplat_dora_{h}_seconds"
        rec(f"palplat_dora:{h}:bucket:{w}", _window(f"{m}_bucket", w, f"{BY}, le"))
        rec(f"palplat_dora:{h}:count:{w}", _window(f"{m}_count", w))
        rec(
            f"palplat_dora:{h}:median:{w}",
            f"histogram_quantile(0.5, sum by ({BY}, le) (palplat_dora:{h}:bucket:{w}))",
        )
    # the five keys
    rec(f"palplat_dora:deployment_frequency:{w}", f"palplat_dora:deployments:{w} / {days}")
    rec(
        f"palplat_dora:change_fail_rate:{w}",
        f"palplat_dora:failures:{w} / (palplat_dora:attempts:{w} > 0)",
    )
    rec(
        f"palplat_dora:rework_rate:{w}",
        f"palplat_dora:reworks:{w} / (palplat_dora:deployments:{w} > 0)",
    )
    # bands: 4 Elite .. 1 Low
    # integer comparisons: frequency >= 1/k  <=>  deployments * k >= days
    _, f = bands.LIMITS[year]["deployment_frequency"]
    rec(
        f"palplat_dora:deployment_frequency:band:{w}",
        f"palplat_dora:deployments:{w} * 0 + 1"
        + "".join(
            f" + (palplat_dora:deployments:{w} * {round(1 / lim)} >= bool {days})"
            for lim in reversed(f)
        ),
    )
    _, c = bands.LIMITS[year]["change_fail_rate"]
    rec(
        f"palplat_dora:change_fail_rate:band:{w}",
        f"palplat_dora:change_fail_rate:{w} * 0 + 1"
        + "".join(
            f" + (palplat_dora:failures:{w} * 100 <= bool"
            f" (palplat_dora:attempts:{w} > 0) * {round(lim * 100)})"
            for lim in reversed(c)
        ),
    )
    for h in ("lead_time", "recovery_time"):
        _, lim = bands.LIMITS[year][h]
        rec(
            f"palplat_dora:{h}:band:{w}",
            _band_of_hist(f"palplat_dora:{h}", w, tuple(reversed(lim))),
        )
    # per scope
    for n in ("deployments", "attempts", "failures", "reworks"):
        rec(f"palplat_dora:scope_{n}:{w}", f"sum by (scope) (palplat_dora:{n}:{w})")
    rec(
        f"palplat_dora:scope_deployment_frequency:{w}",
        f"palplat_dora:scope_deployments:{w} / {days}",
    )
    rec(
        f"palplat_dora:scope_change_fail_rate:{w}",
        f"palplat_dora:scope_failures:{w} / (palplat_dora:scope_attempts:{w} > 0)",
    )
    return out


def alerts(stale_after: int = 7200) -> list[dict[str, Any]]:
    return [
        {
            "alert": "PalplatDoraWriterStale",
            "expr": f"time() - palplat_dora_write_timestamp_seconds > {stale_after}"
            " or absent(palplat_dora_write_timestamp_seconds)",
            "for": "15m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "palplat has not written its DORA metrics for a while",
                "description": "No real run, palplat.status or palplat.drift has written "
                "palplat_dora.prom recently: the numbers are old, not zero. Check the drift "
                "schedule (ci/master.d) and salt-run palplat.dora.",
            },
        },
        {
            "alert": "PalplatDoraComponentFailed",
            "expr": "palplat_dora_failed == 1",
            "for": "15m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.scope }} {{ $labels.component }} is in a failed state",
                "description": "Its last deployment failed (or was rolled back, reverted or "
                "marked) and no successful deployment followed yet.",
            },
        },
        {
            "alert": "PalplatDoraTextfileScrapeError",
            "expr": "node_textfile_scrape_error == 1",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "node_exporter cannot read a textfile metrics file",
                "description": "On {{ $labels.instance }} the textfile collector fails: "
                "palplat_dora.prom (or another file) is unreadable or malformed.",
            },
        },
    ]


def groups(days: int = 30, year: int = 2024, stale_after: int = 7200) -> list[dict[str, Any]]:
    return [
        {"name": f"{GROUP}.rules", "interval": "1m", "rules": recording(days, year)},
        {"name": f"{GROUP}.alerts", "rules": alerts(stale_after)},
    ]


def prometheus_rule(namespace: str, days: int = 30, year: int = 2024) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": RULE_NAME, "namespace": namespace},
        "spec": {"groups": groups(days, year)},
    }


# ------------------------------------------------------------------------- dashboard

KEY_PANELS = (
    ("Deployment frequency (per day)", "deployment_frequency", "short"),
    ("Change lead time (median)", "lead_time:median", "s"),
    ("Change fail rate", "change_fail_rate", "percentunit"),
    ("Failed deployment recovery time (median)", "recovery_time:median", "s"),
    ("Deployment rework rate", "rework_rate", "percentunit"),
)
BAND_KEYS = ("deployment_frequency", "lead_time", "change_fail_rate", "recovery_time")
BAND_MAPPING = [
    {"type": "value", "options": {str(4 - i): {"text": b, "index": i}}}
    for i, b in enumerate(bands.BANDS)
]


def dashboard_queries(days: int = 30) -> list[str]:
    """Every PromQL expression of the dashboard (tests check each with promtool)."""
    return [t["expr"] for p in dashboard(days)["panels"] for t in p.get("targets", [])]


def dashboard(days: int = 30) -> dict[str, Any]:
    w = f"{days}d"
    panels: list[dict[str, Any]] = []
    y = 0
    for i, (title, key, unit) in enumerate(KEY_PANELS):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": f"{title}, last {days} days",
                "gridPos": {"x": (i % 2) * 12, "y": y + (i // 2) * 8, "w": 12, "h": 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {
                        "refId": "A",
                        "expr": f"palplat_dora:{key}:{w}",
                        "legendFormat": "{{scope}} {{component}}",
                    }
                ],
            }
        )
    y += 24
    for j, key in enumerate(BAND_KEYS):
        panels.append(
            {
                "id": 10 + j,
                "type": "stat",
                "title": f"Band: {key.replace('_', ' ')}",
                "gridPos": {"x": j * 6, "y": y, "w": 6, "h": 6},
                "fieldConfig": {"defaults": {"mappings": BAND_MAPPING}, "overrides": []},
                "options": {"reduceOptions": {"calcs": ["lastNotNull"]}},
                "targets": [
                    {
                        "refId": "A",
                        "expr": f"palplat_dora:{key}:band:{w}",
                        "legendFormat": "{{scope}} {{component}}",
                    }
                ],
            }
        )
    y += 6
    panels.append(
        {
            "id": 20,
            "type": "table",
            "title": f"Per component, last {days} days",
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 10},
            "targets": [
                {"refId": r, "expr": e, "format": "table", "instant": True}
                for r, e in (
                    ("A", f"palplat_dora:deployments:{w}"),
                    ("B", f"palplat_dora:failures:{w}"),
                    ("C", f"palplat_dora:changes:{w}"),
                    ("D", "palplat_dora_failed"),
                    ("E", "time() - palplat_dora_last_deployment_timestamp_seconds"),
                )
            ],
        }
    )
    panels.append(
        {
            "id": 21,
            "type": "stat",
            "title": "Writer: seconds since the last write",
            "gridPos": {"x": 0, "y": y + 10, "w": 8, "h": 4},
            "fieldConfig": {"defaults": {"unit": "s"}, "overrides": []},
            "targets": [{"refId": "A", "expr": "time() - palplat_dora_write_timestamp_seconds"}],
        }
    )
    return {
        "uid": "palplat-dora",
        "title": "palplat DORA",
        "tags": ["palplat", "dora"],
        "timezone": "browser",
        "schemaVersion": 39,
        "time": {"from": f"now-{w}", "to": "now"},
        "panels": panels,
    }


def dashboard_configmap(namespace: str, days: int = 30) -> dict[str, Any]:
    """The dashboard as the ConfigMap kube-prometheus-stack's Grafana sidecar loads
    (label ``grafana_dashboard: "1"``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": DASHBOARD_NAME,
            "namespace": namespace,
            "labels": {"grafana_dashboard": "1"},
        },
        "data": {"palplat-dora.json": json.dumps(dashboard(days), indent=1, sort_keys=True)},
    }


DORA_KINDS = (("monitoring.coreos.com/v1", "PrometheusRule"), ("v1", "ConfigMap"))
