"""One platform component's history and one service's, with every key computed by hand
(tests/unit/dora, tests/functional/test_dora_prometheus.py, benchmarks/dora_bench.py)."""

from __future__ import annotations

from palplat.dora import records

T0 = 1_700_000_000.0
H = 3600.0


def run(rid, t, rev, commits, stages=None, ok=True):
    return {
        "id": f"run:{rid}", "k": "run", "t": t, "run": rid, "start": t - 60, "rev": rev,
        "commits": records.commits_of(commits), "ok": ok,
        "stages": stages or {"platform": "changed"},
    }  # fmt: skip


def apply(rid, t, comp, o, rev, act=("upgrade",), rb=False):
    return {
        "id": f"apply:{rid}:{comp}", "k": "apply", "t": t, "run": rid, "c": comp, "o": o,
        "rb": rb, "act": list(act), "rev": rev,
    }  # fmt: skip


def platform_records(comp="release/web", shift=0.0):
    """r1 first deployment (not measured); r2 deploys B, C; r3 fails (rolled back); r4
    deploys D, E while failed (rework, recovers r3 after 1 h); r5 drift repair; a mark
    30 min after r4 fails it; r6 no-op; r7 deploys F (rework, recovers after 3 h)."""
    t = lambda h: T0 + shift + h * H  # noqa: E731
    c = {n: (n.lower() * 8, t(h)) for n, h in
         (("A", 0), ("B", 0.5), ("C", 1), ("D", 2.5), ("E", 3.5), ("F", 6.5))}  # fmt: skip
    rev = {n: v[0] for n, v in c.items()}
    hist = lambda *ns: [c[n] for n in ns]  # noqa: E731
    out = [
        run("r1", t(0) + 100, rev["A"], hist("A")),
        apply("r1", t(0) + 100, comp, "changed", rev["A"], ("install",)),
        run("r2", t(2), rev["C"], hist("C", "B", "A")),
        apply("r2", t(2), comp, "changed", rev["C"]),
        run(
            "r3", t(3), rev["D"], hist("D", "C", "B", "A"), ok=False, stages={"platform": "failed"}
        ),  # fmt: skip
        apply("r3", t(3), comp, "failed", rev["D"], (), rb=True),
        run("r4", t(4), rev["E"], hist("E", "D", "C")),
        apply("r4", t(4), comp, "changed", rev["E"]),
        records.mark("platform", comp, t(4.5), "dashboards empty"),
        run("r5", t(5), rev["E"], hist("E", "D")),
        apply("r5", t(5), comp, "changed", rev["E"], ("drift",)),
        run("r6", t(6), rev["E"], hist("E"), stages={"platform": "ok"}),
        run("r7", t(7), rev["F"], hist("F", "E")),
        apply("r7", t(7), comp, "changed", rev["F"]),
    ]
    for r in out:
        if r["k"] == "run":
            r["id"] = f"run:{r['run']}:{comp}:{shift}"
            r["run"] = f"{r['run']}:{comp}:{shift}"
        elif r["k"] == "apply":
            r["id"] = f"apply:{r['run']}:{comp}:{shift}"
            r["run"] = f"{r['run']}:{comp}:{shift}"
    return out


# the keys of platform_records() over 1 day at T0 + 8 h, by hand
PLATFORM_KEYS = {
    "deployments": 4,  # r1, r2, r4, r7
    "attempts": 5,  # + the failed r3
    "failures": 2,  # r3 (failed attempt), r4 (marked within the hour)
    "reworks": 2,  # r4 (made while failed), r7 (made while r4 was failed)
    "changes": 5,  # r2: B, C; r4: D, E; r7: F (r1 is the first: not measured)
    "lead_times": [3600.0, 5400.0, 5400.0, 1800.0, 1800.0],  # 2h-1h, 2h-0.5h, 4h-2.5h, ...
    "recoveries": [3600.0, 10800.0],  # r4 - r3, r7 - r4
    "runs": {"deployed": 4, "failed": 1, "drift_repair": 1, "noop": 1},
    "bands": {  # 2024
        "deployment_frequency": "Elite",  # 4 per day
        "lead_time": "Elite",  # median 3600 s <= 1 day
        "change_fail_rate": "Low",  # 2/5 = 40 % > 20 %
        "recovery_time": "Elite",  # lower median 3600 s <= 1 h
        "rework_rate": None,
    },
}
