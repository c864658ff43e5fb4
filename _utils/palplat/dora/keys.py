"""The five keys of a component (or of a whole scope) over a window, with the count
behind each and its band.

Window ``[now - days, now]``; what falls in it:

- deployments: successful deployments whose time is in the window; frequency is their
  number per day;
- lead time: the median (the lower middle one of an even count) of the lead times (one
  per change) of those deployments;
- change fail rate: failed deployments (failed attempts, and deployments that failed
  later) over all attempts (deployments + failed attempts), both in the window;
- recovery time: the median of the recoveries that ended in the window;
- rework rate: deployments made while failed, or reverts, over deployments.

"No deployments" (runs were seen in the window: the writer works) is told apart from
"no data" (nothing at all in the window).
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from palplat.dora import bands
from palplat.dora.timeline import Timeline

NO_DATA, NO_DEPLOYMENTS, MEASURED = "no data", "no deployments", "measured"


@dataclass
class Keys:
    scope: str
    component: str
    days: float
    state: str = NO_DATA
    deployments: int = 0
    attempts: int = 0
    failures: int = 0
    reworks: int = 0
    changes: int = 0
    lead_times: list[float] = field(default_factory=list)
    recoveries: list[float] = field(default_factory=list)
    runs: dict[str, int] = field(default_factory=dict)
    failed_now: bool = False
    stages: dict[str, list[float]] = field(default_factory=dict)

    @property
    def frequency(self) -> float | None:
        return self.deployments / self.days if self.state != NO_DATA else None

    @property
    def lead_time(self) -> float | None:
        return statistics.median_low(self.lead_times) if self.lead_times else None

    @property
    def change_fail_rate(self) -> float | None:
        return self.failures / self.attempts if self.attempts else None

    @property
    def recovery_time(self) -> float | None:
        return statistics.median_low(self.recoveries) if self.recoveries else None

    @property
    def rework_rate(self) -> float | None:
        return self.reworks / self.deployments if self.deployments else None

    def values(self) -> dict[str, float | None]:
        return {
            "deployment_frequency": self.frequency,
            "lead_time": self.lead_time,
            "change_fail_rate": self.change_fail_rate,
            "recovery_time": self.recovery_time,
            "rework_rate": self.rework_rate,
        }

    def counts(self) -> dict[str, int]:
        return {
            "deployment_frequency": self.deployments,
            "lead_time": len(self.lead_times),
            "change_fail_rate": self.attempts,
            "recovery_time": len(self.recoveries),
            "rework_rate": self.deployments,
        }

    def as_dict(self, year: int = 2024) -> dict[str, Any]:
        vals = self.values()
        counts = self.counts()
        return {
            "scope": self.scope,
            "component": self.component,
            "days": self.days,
            "state": self.state,
            "failed_now": self.failed_now,
            "deployments": self.deployments,
            "attempts": self.attempts,
            "failures": self.failures,
            "reworks": self.reworks,
            "changes": self.changes,
            "runs": dict(sorted(self.runs.items())),
            "keys": {
                k: {"value": vals[k], "count": counts[k], "band": bands.grade(k, vals[k], year)}
                for k in bands.KEYS
            },
            "stages": {k: statistics.median_low(v) for k, v in sorted(self.stages.items()) if v},
        }


STAGE_PAIRS = (
    ("commit_to_ci", None, "ci_created"),
    ("ci", "ci_created", "ci_finished"),
    ("ci_to_sync", "ci_finished", "sync_started"),
    ("sync_to_healthy", "sync_started", "healthy"),
)


def of(tl: Timeline, now: float, days: float) -> Keys:
    start = now - days * 86400
    k = Keys(tl.scope, tl.component, days)
    k.failed_now = tl.failed_since is not None
    seen = False
    for t, outcome in tl.runs:
        if start <= t <= now:
            k.runs[outcome] = k.runs.get(outcome, 0) + 1
            seen = True
    if tl.observed and bisect.bisect_right(tl.observed, now) > bisect.bisect_left(
        tl.observed, start
    ):
        seen = True  # palplat looked at the service in the window: "no deployments"
    for outcome, times in tl.quiet.items():
        n = bisect.bisect_right(times, now) - bisect.bisect_left(times, start)
        if n:
            k.runs[outcome] = k.runs.get(outcome, 0) + n
            seen = True
    for d in tl.deployments:
        if d.recovery is not None and start <= d.t <= now:
            k.recoveries.append(d.recovery)
        if not start <= d.t <= now:
            continue
        seen = True
        k.attempts += 1
        k.failures += d.failed
        if not d.ok:
            continue
        k.deployments += 1
        k.reworks += d.rework
        k.changes += len(d.changes)
        k.lead_times.extend(d.lead_times)
        commits = [c for _, c in d.changes if c is not None]
        for name, a, b in STAGE_PAIRS:
            t0 = min(commits) if a is None and commits else d.stages.get(a) if a else None
            t1 = d.stages.get(b)
            if t0 is not None and t1 is not None:
                k.stages.setdefault(name, []).append(max(0.0, t1 - t0))
    if seen:
        k.state = MEASURED if k.deployments or k.attempts else NO_DEPLOYMENTS
    return k


def total(scope: str, parts: Iterable[Keys], days: float) -> Keys:
    """One row for a whole scope: counts added, medians over every observation."""
    k = Keys(scope, "(all)", days)
    states = set()
    for p in parts:
        states.add(p.state)
        k.deployments += p.deployments
        k.attempts += p.attempts
        k.failures += p.failures
        k.reworks += p.reworks
        k.changes += p.changes
        k.lead_times += p.lead_times
        k.recoveries += p.recoveries
        k.failed_now = k.failed_now or p.failed_now
        for o, n in p.runs.items():
            k.runs[o] = k.runs.get(o, 0) + n
        for s, v in p.stages.items():
            k.stages.setdefault(s, []).extend(v)
    if MEASURED in states:
        k.state = MEASURED
    elif NO_DEPLOYMENTS in states:
        k.state = NO_DEPLOYMENTS
    return k
