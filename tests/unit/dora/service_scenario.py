"""A service's Argo CD Application as Argo CD writes its status, observed seven times,
and its Woodpecker pipelines; the keys computed by hand (tests/unit/dora/test_services.py
and tests/functional/test_dora_argo.py replay it)."""

from __future__ import annotations

import datetime as dt

from palplat.dora import records

T0 = 1_700_000_000.0
REG = "harbor.example/shop/shop"


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha(n: int) -> str:
    return f"{n:x}" * 40


PIPELINES = [  # number, commit, commit time, status
    (1, sha(1), T0 - 100, "success"),
    (2, sha(2), T0 + 1000, "failure"),
    (3, sha(3), T0 + 1500, "success"),
    (4, sha(4), T0 + 3500, "success"),
]


def pipeline(n, commit, ct, status):
    """A Woodpecker pipeline as its API returns it (the fields DORA reads)."""
    return {
        "id": 100 + n, "number": n, "commit": commit, "timestamp": int(ct),
        "created": int(ct) + 5, "started": int(ct) + 10, "finished": int(ct) + 200,
        "status": status, "event": "push", "branch": "main", "ref": "refs/heads/main",
        "message": f"change {n}", "author": "dev",
    }  # fmt: skip


# (observed at, operation (started, finished, phase, git revision), image commit, health,
#  health since, history ids added)
OBSERVED = [
    (T0 + 100, (T0 + 50, T0 + 60, "Succeeded", "g1"), 1, "Healthy", T0 + 70),
    (T0 + 2000, (T0 + 1800, T0 + 1810, "Succeeded", "g2"), 3, "Healthy", T0 + 1830),
    # the controller restarted and replayed the same sync
    (T0 + 2100, (T0 + 2050, T0 + 2055, "Succeeded", "g2"), 3, "Healthy", T0 + 1830),
    (T0 + 3000, (T0 + 2900, T0 + 2910, "Failed", "g3"), 3, "Healthy", T0 + 1830),
    (T0 + 4000, (T0 + 3900, T0 + 3910, "Succeeded", "g4"), 4, "Degraded", T0 + 3920),
    (T0 + 4400, (T0 + 3900, T0 + 3910, "Succeeded", "g4"), 4, "Degraded", T0 + 3920),
    # rolled back to the image and revision of the second deployment
    (T0 + 5000, (T0 + 4800, T0 + 4810, "Succeeded", "g2"), 3, "Healthy", T0 + 4820),
]


def application_status(i: int) -> dict:
    """The status Argo CD shows at observation ``i`` (history: successes only, ids
    counting up, the last 10)."""
    seen, op, img, health, since = OBSERVED[i]
    history = []
    for _, o, _, _, _ in OBSERVED[: i + 1]:
        if o[2] == "Succeeded" and not any(h["deployStartedAt"] == iso(o[0]) for h in history):
            history.append(
                {"id": len(history), "revision": o[3], "deployedAt": iso(o[1]),
                 "deployStartedAt": iso(o[0]),
                 "source": {"repoURL": "https://forge.example/ops/deployments"}}
            )  # fmt: skip
    return {
        "sync": {"status": "Synced", "revision": op[3]},
        "health": {"status": health, "lastTransitionTime": iso(since)},
        "operationState": {
            "operation": {"sync": {"revision": op[3]}},
            "phase": op[2],
            "message": "successfully synced"
            if op[2] == "Succeeded"
            else "one or more objects failed",
            "startedAt": iso(op[0]),
            "finishedAt": iso(op[1]),
            "syncResult": {"revision": op[3], "resources": []},
        },
        "history": history[-10:],
        "summary": {"images": [f"{REG}:{sha(img)[:12]}"]},
        "reconciledAt": iso(seen),
    }


def observations(name: str = "shop") -> list[dict]:
    app = {"metadata": {"name": name}}
    return [
        records.argo_observation({**app, "status": application_status(i)}, o[0], name)
        for i, o in enumerate(OBSERVED)
    ]


def pipeline_records(name: str = "shop") -> list[dict]:
    return [records.pipeline_record(name, pipeline(*p)) for p in PIPELINES]


# over 1 day at T0 + 6000, by hand
SERVICE_KEYS = {
    "deployments": 4,  # g1 (first), g2 (image 3), g4 (image 4, Degraded), g2 again (rollback)
    "attempts": 5,  # + the Failed sync of g3
    "failures": 2,  # the Failed sync; g4 Degraded for 480 s > 300 s
    "reworks": 2,  # g4 made while failed; the rollback
    "changes": 3,  # pipelines 2 and 3 for g2; pipeline 4 for g4
    "lead_times": [830.0, 330.0, 410.0],  # healthy 1830 - 1000, 1830 - 1500; g4 3910 - 3500
    "recoveries": [1910.0],  # healthy 4820 - the Failed sync at 2910
    "runs": {"deployed": 4, "failed": 1, "resync": 1},
}
