"""The plan and the status for people: Markdown for a pull-request comment (Forgejo and
GitHub render it, Mermaid included) and plain tables for a terminal."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from palplat import redact
from palplat.report.plan import KINDS, Report

MARKER = "<!-- palplat-plan -->"  # palplat-ci finds its own comment by this line
FOLD_LINES = 12  # longer details fold into <details>


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def _node(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def mermaid(graph: dict[str, dict], changed: set[str]) -> list[str]:
    """The releases' ``needs`` graph, changed releases marked."""
    if not graph:
        return []
    out = ["```mermaid", "graph LR"]
    for name in sorted(graph):
        label = f"{name} (changed)" if name in changed else name
        out.append(f'  {_node(name)}["{label}"]')
    for name in sorted(graph):
        for need in sorted(graph[name].get("needs") or ()):
            out.append(f"  {_node(need)} --> {_node(name)}")
    marked = sorted(n for n in changed if n in graph)
    if marked:
        out.append("  classDef changed fill:#fde68a,stroke:#b45309")
        out.append(f"  class {','.join(_node(n) for n in marked)} changed")
    out.append("```")
    return out


def _detail(changes: dict) -> list[str]:
    body = json.dumps(redact.mask(changes), indent=2, sort_keys=True, default=str)
    return ["```json", *body.splitlines(), "```"]


def plan_markdown(report: Report, title: str = "palplat plan") -> str:
    totals = report.totals()
    code = report.exit_code
    verdict = {0: "no changes", 1: "errors", 2: "changes"}[code]
    out = [MARKER, f"## {title}: {verdict}", ""]
    out.append(
        f"{len(report.minions)} minion(s); "
        + ", ".join(
            f"{totals[k]} to {k}" if k != "orphaned" else f"{totals[k]} orphaned" for k in KINDS
        )
    )
    out.append("")
    if report.errors:
        out += ["### Errors", ""] + [f"- {redact.mask_text(e)}" for e in report.errors] + [""]
    items = report.changed_items
    if items:
        out += ["### Summary", ""]
        out += table(
            ["stage", "item", "minion", *KINDS],
            ([i.stage, i.item, i.minion, *(i.counts[k] or "" for k in KINDS)] for i in items),
        )
        out.append("")
    diagram = mermaid(report.graph, report.changed_releases())
    if diagram and (items or report.errors):
        out += ["### Releases", "", *diagram, ""]
    if items:
        out += ["### Details", ""]
        for i in items:
            out.append(f"#### {i.stage} / {i.item} ({i.minion})")
            out.append("")
            for k in KINDS:
                names = i.kinds.get(k)
                if names:
                    out.append(f"- {k}: " + ", ".join(f"`{n}`" for n in names))
            if i.comment:
                out += ["", "> " + redact.mask_text(i.comment).replace("\n", "\n> ")]
            if i.changes:
                body = _detail(i.changes)
                if len(body) > FOLD_LINES:
                    out += ["", "<details><summary>diff</summary>", "", *body, "", "</details>"]
                else:
                    out += ["", *body]
            out.append("")
    if report.timings:
        out.append(
            "<sub>" + ", ".join(f"{k} {v:.1f}s" for k, v in report.timings.items()) + "</sub>"
        )
    return redact.mask_text("\n".join(out).rstrip() + "\n")
