"""Reports for people and machines: the pull-request plan (``salt-run palplat.plan``) and
the platform status (``salt-run palplat.status``).

- :mod:`palplat.report.plan`: the plan as data, from ``state.sls`` test-mode returns
- :mod:`palplat.report.markdown`: Markdown (pull-request comment) and text tables
- :mod:`palplat.report.status`: the status as data, from what the minions report
"""

from palplat.report.markdown import MARKER, mermaid, plan_markdown, table, text_table
from palplat.report.plan import (
    CHANGES,
    ERRORS,
    KINDS,
    OK,
    Item,
    Report,
    add_state_returns,
    item_from,
    kinds_of,
    stage_of,
)
from palplat.report.status import CALLS, Status
from palplat.report.status import build as build_status
from palplat.report.status import render as render_status

__all__ = [
    "CALLS",
    "CHANGES",
    "ERRORS",
    "KINDS",
    "MARKER",
    "OK",
    "Item",
    "Report",
    "Status",
    "add_state_returns",
    "build_status",
    "item_from",
    "kinds_of",
    "mermaid",
    "plan_markdown",
    "render_status",
    "stage_of",
    "table",
    "text_table",
]
