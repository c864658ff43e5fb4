"""``salt-run palplat.dora``: the five keys per platform component and per service over
a window, a row for each scope, as data and as a table (text or Markdown)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from palplat.dora import bands, keys, timeline
from palplat.dora.records import PLATFORM, SERVICE
from palplat.report.markdown import table, text_table


def timelines(
    records: Iterable[Mapping[str, Any]], window: float = 3600, within: float = 300
) -> list[timeline.Timeline]:
    recs = list(records)
    out = list(timeline.platform(recs, window).values())
    out += list(timeline.services(recs, window, within).values())
    return sorted(out, key=lambda t: (t.scope, t.component))


def build(
    records: Iterable[Mapping[str, Any]],
    *,
    now: float | None = None,
    days: float = 30,
    service: str | None = None,
    window: float = 3600,
    within: float = 300,
    year: int = 2024,
) -> dict[str, Any]:
    """The report as data: ``{"platform": [rows], "services": [rows], "bands": ...}``;
    each row is :meth:`palplat.dora.keys.Keys.as_dict`, the first of each scope the
    scope's total. ``service``: that service only (no platform rows)."""
    now = time.time() if now is None else now
    tls = timelines(records, window, within)
    out: dict[str, Any] = {"now": now, "days": days, "year": year}
    for scope, name in ((PLATFORM, "platform"), (SERVICE, "services")):
        if service and scope == PLATFORM:
            out[name] = []
            continue
        rows = [
            keys.of(t, now, days)
            for t in tls
            if t.scope == scope and (not service or t.component == service)
        ]
        out[name] = [keys.total(scope, rows, days).as_dict(year)] + [r.as_dict(year) for r in rows]
        if service and not rows:
            out[name] = []
    out["ignored_marks"] = [m for t in tls for m in t.ignored_marks]
    out["bands"] = bands.table(year)
    return out


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _cell(key: str, k: Mapping[str, Any]) -> str:
    v, n, band = k["value"], k["count"], k["band"]
    if v is None:
        return f"- (n={n})"
    if key == "deployment_frequency":
        text = f"{v:.2f}/day"
    elif key in ("change_fail_rate", "rework_rate"):
        text = f"{100 * v:.0f}%"
    else:
        text = _dur(v)
    return f"{text} (n={n}){' ' + band if band else ''}"


HEADERS = (
    "component",
    "state",
    "deployments",
    "lead time",
    "change fail rate",
    "recovery time",
    "rework rate",
    "failed now",
)


def rows_of(rows: list[Mapping[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        k = r["keys"]
        if r["state"] == keys.NO_DATA:
            out.append([r["component"], "no data", "-", "-", "-", "-", "-", "-"])
            continue
        out.append(
            [
                r["component"],
                r["state"],
                f"{r['deployments']}, {_cell('deployment_frequency', k['deployment_frequency'])}",
                _cell("lead_time", k["lead_time"]),
                _cell("change_fail_rate", k["change_fail_rate"]),
                _cell("recovery_time", k["recovery_time"]),
                _cell("rework_rate", k["rework_rate"]),
                "yes" if r["failed_now"] else "no",
            ]
        )
    return out


def render(rep: Mapping[str, Any], markdown: bool = False) -> str:
    days = rep["days"]
    lines = [f"palplat DORA: last {days:g} days, bands of {rep['year']}", ""]
    for name in ("platform", "services"):
        rows = rep.get(name) or []
        if not rows:
            continue
        lines.append(f"### {name}" if markdown else f"{name}:")
        lines.append("")
        if markdown:
            lines += table(HEADERS, rows_of(rows))
        else:
            lines.append(text_table(HEADERS, rows_of(rows)))
        lines.append("")
    if not rep.get("platform") and not rep.get("services"):
        lines += ["no data: nothing recorded yet", ""]
    for m in rep.get("ignored_marks") or ():
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(m["t"]))
        lines.append(
            f"note: the mark of {m.get('c')} at {when} UTC was not counted (no deployment "
            "within the failure window before it)"
        )
    lines.append(f"bands: {rep['bands']['source']} (see docs/dora.md)")
    return "\n".join(lines).rstrip() + "\n"
