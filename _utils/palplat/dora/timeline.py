"""From ledger records to what happened to each component: its deployments (with their
changes, lead times, failure, rework, recovery), failed attempts and runs by outcome.

One :class:`Timeline` per ``(scope, component)``: a platform component from the ``run``,
``apply`` and ``mark`` records (:func:`platform`), an onboarded service from its ``argo``,
``pipe`` and ``mark`` records (:func:`services`). The definitions are in docs/dora.md;
:mod:`palplat.dora.keys` turns timelines into the five keys over a window.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from palplat.dora.records import PLATFORM, SERVICE, UNHEALTHY, component_stage

_HEX = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass
class Deployment:
    t: float  # deployed: apply finished / sync finished
    key: Any  # pillar revision / (revision, images)
    healthy: float  # platform: = t; service: first seen Healthy
    ok: bool = True  # False: a failed attempt (apply failed, sync failed)
    first: bool = False  # the component's first: recorded, not measured
    changes: list[tuple[str, float | None]] = field(default_factory=list)
    lead_times: list[float] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    failed: bool = False
    failed_at: float | None = None
    why: str = ""
    rolled_back: bool = False
    rework: bool = False
    recovery: float | None = None  # seconds: the failure this deployment recovered
    run: str | None = None


@dataclass
class Timeline:
    scope: str
    component: str
    deployments: list[Deployment] = field(default_factory=list)
    runs: list[tuple[float, str]] = field(default_factory=list)  # (t, outcome)
    # runs of the component's stage that had nothing for it (sorted times): no-op, skipped
    quiet: dict[str, list[float]] = field(default_factory=dict)
    failed_since: float | None = None  # the component is failed now, since
    last_success: float | None = None
    ignored_marks: list[dict] = field(default_factory=list)
    observed: list[float] = field(default_factory=list)  # service: when palplat looked

    @property
    def ok_deployments(self) -> list[Deployment]:
        return [d for d in self.deployments if d.ok]

    def outcome_counts(self) -> dict[str, int]:
        out: dict[str, int] = {o: len(ts) for o, ts in self.quiet.items() if ts}
        for _, o in self.runs:
            out[o] = out.get(o, 0) + 1
        return out

    @property
    def last_deployment(self) -> float | None:
        ok = self.ok_deployments
        return ok[-1].t if ok else None


def _fail(tl: Timeline, d: Deployment, why: str, window: float, when: float) -> bool:
    """Deployment ``d`` failed (``when``: when that was seen): within the window only."""
    if d.failed or when - d.t > window:
        return False
    d.failed, d.failed_at, d.why = True, d.t, why
    if tl.failed_since is None:
        tl.failed_since = d.t
    return True


def _recover(tl: Timeline, d: Deployment, at: float) -> None:
    if tl.failed_since is not None:
        d.rework = True
        d.recovery = max(0.0, at - tl.failed_since)
        tl.failed_since = None


# ------------------------------------------------------------------------ platform


def platform(records: Iterable[Mapping[str, Any]], window: float = 3600) -> dict[str, Timeline]:
    runs: dict[str, Mapping] = {}
    events: dict[str, list[tuple[float, int, Mapping]]] = defaultdict(list)
    for r in records:
        k = r.get("k")
        if k == "run":
            runs[r["run"]] = r
        elif k == "apply":
            events[r["c"]].append((r["t"], 1, r))
        elif k == "mark" and r.get("scope") == PLATFORM:
            events[r["c"]].append((r["t"], 2, r))
    # a run whose stage ran without a record of the component: a no-op (or skipped) run
    # for it; kept as sorted times, shared work per stage (components x runs is large)
    by_stage: dict[str, dict[str, list[tuple[float, str, Any]]]] = {}
    for run in sorted(runs.values(), key=lambda r: r["t"]):
        for st, res in (run.get("stages") or {}).items():
            kind = "noop" if res in ("ok", "changed") else "skipped" if res == "skipped" else None
            if kind:
                by_stage.setdefault(st, {}).setdefault(kind, []).append(
                    (run["t"], run["run"], run.get("rev"))
                )
    out: dict[str, Timeline] = {}
    for comp, evs in events.items():
        first_t = min(t for t, _, _ in evs)
        own = {r["run"] for _, kind, r in evs if kind == 1}
        kept = {
            kind: [(t, rev) for t, rid, rev in rows if t >= first_t and rid not in own]
            for kind, rows in by_stage.get(component_stage(comp), {}).items()
        }
        noops = kept.get("noop", [])
        tl = _platform_one(comp, sorted(evs, key=lambda e: (e[0], e[1])), runs, window, noops)
        tl.quiet = {kind: [t for t, _ in rows] for kind, rows in kept.items()}
        if noops:
            tl.last_success = max(tl.last_success or 0.0, noops[-1][0])
        out[comp] = tl
    return out


def _changes_since(commits: list, last_rev: str | None) -> list[tuple[str, float | None]]:
    out = []
    for sha, when, *rest in commits or ():
        if last_rev is not None and sha == last_rev:
            break
        out.append((sha, when, bool(rest and rest[0])))
    return out


def _in_sync_before(t: float, own: list[tuple[float, Any]], noops: list[tuple[float, Any]]):
    """The pillar revision of the last run before ``t`` after which the component was
    known to match the pillar (a no-op run, a drift repair, a deployment): the commits
    after it are the ones that changed it."""
    best = own[-1] if own else None
    i = bisect.bisect_left(noops, (t,)) - 1
    if i >= 0 and (best is None or noops[i][0] > best[0]) and noops[i][1] is not None:
        best = noops[i]
    return best[1] if best else None


def _platform_one(
    comp: str, evs: list, runs: Mapping[str, Mapping], window: float, noops: list
) -> Timeline:
    tl = Timeline(PLATFORM, comp)
    last: Deployment | None = None
    synced: list[tuple[float, Any]] = []  # (t, rev) of own deployments and drift repairs
    for t, _, r in evs:
        k = r.get("k")
        if r.get("o") == "skipped":
            tl.runs.append((t, "skipped"))
            continue
        if k == "mark":
            if last is None or not _fail(tl, last, r.get("why") or "marked failed", window, t):
                tl.ignored_marks.append(dict(r))
            continue
        run = runs.get(r.get("run"), {})
        rev = r.get("rev")
        if r.get("o") == "failed":
            d = Deployment(t, rev, t, ok=False, failed=True, failed_at=t, run=r.get("run"))
            d.why, d.rolled_back = r.get("why") or "apply failed", bool(r.get("rb"))
            tl.deployments.append(d)
            tl.runs.append((t, "failed"))
            if tl.failed_since is None:
                tl.failed_since = t
            continue
        acts = r.get("act") or []
        if (rev is not None and last is not None and rev == last.key) or (
            acts and all(a == "drift" for a in acts)
        ):
            tl.runs.append((t, "drift_repair"))
            tl.last_success = t
            if rev is not None:
                synced.append((t, rev))
            continue
        d = Deployment(t, rev, t, run=r.get("run"), first=last is None)
        if last is not None and rev is not None:
            since = _in_sync_before(t, synced, noops) or last.key
            changed = _changes_since(run.get("commits") or [], since)
            d.changes = [(sha, when) for sha, when, _ in changed]
            d.lead_times = [max(0.0, t - when) for _, when, _ in changed if when is not None]
            if any(rev_ for _, _, rev_ in changed) and last.ok:
                if _fail(tl, last, "reverted", window, t):
                    d.rework = True
        _recover(tl, d, t)
        tl.deployments.append(d)
        tl.runs.append((t, "deployed"))
        tl.last_success = t
        if rev is not None:
            synced.append((t, rev))
        last = d
    return tl


# ------------------------------------------------------------------------ services


def _same(a: tuple, b: tuple) -> bool:
    """Two (revision, images) keys are the same deployment; unknown images (None, from a
    history entry seen only there) compare by revision alone."""
    if a[0] != b[0]:
        return False
    return a[1] is None or b[1] is None or a[1] == b[1]


def _syncs(argo: list[Mapping]) -> list[dict]:
    """Every finished sync operation, from operationState (phase, images) and from the
    history (successes Argo CD kept); one per operation start."""
    ops: dict[float, dict] = {}
    hist: dict[Any, list] = {}
    for r in argo:
        op = r.get("op")
        if op and op[0] is not None and op[2] in ("Succeeded", "Failed", "Error"):
            ops.setdefault(
                op[0],
                {"started": op[0], "finished": op[1] or r["t"], "phase": op[2],
                 "key": (op[3], tuple(r.get("img") or ())), "seen": r["t"]},
            )  # fmt: skip
        for h in r.get("hist") or ():
            if h and h[0] is not None:
                hist.setdefault(h[0], h)
    out = list(ops.values())
    for _, rev, deployed, started in hist.values():
        if deployed is None:
            continue
        if any(
            o["phase"] == "Succeeded" and o["key"][0] == rev and abs(o["finished"] - deployed) <= 5
            for o in out
        ):
            continue
        out.append(
            {"started": started or deployed, "finished": deployed, "phase": "Succeeded",
             "key": (rev, None), "seen": deployed, "hist": True}
        )  # fmt: skip
    return sorted(out, key=lambda s: (s["finished"], s["started"]))


def _health_after(argo: list[Mapping], start: float, end: float | None, within: float):
    """(healthy at, unhealthy since) for the time after a sync finished at ``start`` and
    before the next one (``end``): when it was first known Healthy, and when a Degraded or
    Missing stretch that lasted longer than ``within`` began."""
    healthy = bad_since = None
    stretch: float | None = None
    for r in argo:
        t = r["t"]
        if t < start or (end is not None and t >= end):
            continue
        h, since = r.get("h"), r.get("hs")
        if h == "Healthy":
            stretch = None
            if healthy is None:
                healthy = start if since is not None and since <= start else (since or t)
        elif h in UNHEALTHY:
            begin = max(start, since) if since is not None else (stretch or t)
            stretch = begin if stretch is None else min(stretch, begin)
            if bad_since is None and t - stretch >= within:
                bad_since = stretch
        else:
            stretch = None
    return healthy, bad_since


def _pipeline_of(images: tuple, pipes: list[Mapping]) -> Mapping | None:
    """The pipeline whose commit an image tag names (a hex tag of 7-40 characters that is
    a prefix of the commit)."""
    tags = []
    for img in images or ():
        tag = img.rsplit(":", 1)[1] if ":" in img.rsplit("/", 1)[-1] else ""
        tag = tag.split("@", 1)[0].lower()
        tag = tag[len("sha-") :] if tag.startswith("sha-") else tag
        if _HEX.match(tag):
            tags.append(tag)
    best = None
    for p in pipes:
        sha = str(p.get("sha") or "").lower()
        if sha and any(sha.startswith(tag) for tag in tags):
            if best is None or p["n"] > best["n"]:
                best = p
    return best


def services(
    records: Iterable[Mapping[str, Any]], window: float = 3600, within: float = 300
) -> dict[str, Timeline]:
    argo: dict[str, list] = defaultdict(list)
    pipes: dict[str, list] = defaultdict(list)
    marks: dict[str, list] = defaultdict(list)
    for r in records:
        k = r.get("k")
        if k == "argo":
            argo[r["c"]].append(r)
        elif k == "pipe":
            pipes[r["c"]].append(r)
        elif k == "mark" and r.get("scope") == SERVICE:
            marks[r["c"]].append(r)
    out = {}
    for name in set(argo) | set(marks):
        obs = sorted(argo.get(name, []), key=lambda r: r["t"])
        ps = sorted(pipes.get(name, []), key=lambda p: p["n"])
        out[name] = _service_one(name, obs, ps, marks.get(name, []), window, within)
    return out


def _service_one(name, obs, pipes, marks, window, within) -> Timeline:
    tl = Timeline(SERVICE, name)
    tl.observed = [r["t"] for r in obs]
    syncs = _syncs(obs)
    events = [(s["finished"], 1, s) for s in syncs] + [(m["t"], 2, m) for m in marks]
    events.sort(key=lambda e: (e[0], e[1]))
    deployed: list[tuple] = []  # keys of the deployments, in order
    current: Deployment | None = None
    last_pipe: Mapping | None = None
    failed_keys: list[tuple] = []
    nexts = [s["finished"] for s in syncs if s["phase"] == "Succeeded"]
    for t, kind, ev in events:
        if kind == 2:
            if current is None or not _fail(tl, current, ev.get("why") or "marked", window, t):
                tl.ignored_marks.append(dict(ev))
            continue
        key = ev["key"]
        if ev["phase"] != "Succeeded":
            if (current is not None and _same(key, current.key)) or any(
                _same(key, k) for k in failed_keys
            ):
                tl.runs.append((t, "resync_failed"))
                continue
            failed_keys.append(key)
            d = Deployment(t, key, t, ok=False, failed=True, failed_at=t, why="sync failed")
            tl.deployments.append(d)
            tl.runs.append((t, "failed"))
            if tl.failed_since is None:
                tl.failed_since = t
            continue
        if current is not None and _same(key, current.key):
            tl.runs.append((t, "resync"))  # re-sync, self-heal, a restarted controller
            continue
        later = [n for n in nexts if n > t]
        healthy, bad = _health_after(obs, t, later[0] if later else None, within)
        if healthy is None and bad is None:
            if not (ev.get("hist") and later):
                tl.runs.append((t, "progressing"))
                continue
            # only in Argo CD's history, between two observations: a later sync followed,
            # so it was deployed; its health then is unknown: taken as its deployedAt
            healthy = t
        d = Deployment(t, key, healthy if healthy is not None else t, first=current is None)
        d.stages["sync_started"] = ev["started"]
        if healthy is not None:
            d.stages["healthy"] = healthy
        pipe = _pipeline_of(key[1], pipes) if key[1] else None
        if pipe is not None:
            d.stages["ci_created"] = pipe.get("cr")
            d.stages["ci_finished"] = pipe.get("fi")
            if last_pipe is not None and current is not None:
                seen: set[str] = set()
                for p in pipes:
                    if last_pipe["n"] < p["n"] <= pipe["n"] and p.get("br") == pipe.get("br"):
                        if p["sha"] in seen or p.get("ev") not in ("push", "manual", "tag"):
                            continue
                        seen.add(p["sha"])
                        d.changes.append((p["sha"], p.get("ct")))
                        if p.get("ct") is not None:
                            d.lead_times.append(max(0.0, d.healthy - p["ct"]))
            last_pipe = pipe
        rollback = any(_same(key, k) for k in deployed[:-1])
        if rollback and current is not None and current.ok:
            if _fail(tl, current, "rolled back to an older revision or images", window, t):
                d.rework = True
        failed_keys = []
        if bad is not None and bad - t <= window:
            d.failed, d.failed_at, d.why = True, bad, "Degraded or Missing after the sync"
        if not d.failed and healthy is not None:
            _recover(tl, d, healthy)
        elif tl.failed_since is not None:
            d.rework = True
        if d.failed and tl.failed_since is None:
            tl.failed_since = d.failed_at
        tl.deployments.append(d)
        tl.runs.append((t, "deployed"))
        if not d.failed:
            tl.last_success = d.healthy
        deployed.append(key)
        current = d
    return tl
