"""palplat.k3s.upgrade: the upgrade plan and its recorded execution."""

from __future__ import annotations

import pytest

from palplat.errors import InputError, WaitTimeout
from palplat.k3s import upgrade
from tests.unit.k3s.support import V1, V2


def st(role, installed, desired, node, cluster_init=False):
    return {
        "mode": "install",
        "role": role,
        "cluster_init": cluster_init,
        "node": node,
        "installed": installed,
        "desired": desired,
        "active": True,
    }


def test_upgrade_plan_order():
    statuses = {
        "s3": st("server", V1, V2, "n-s3"),
        "s1": st("server", V1, V2, "n-s1", cluster_init=True),
        "s2": st("server", V1, V2, "n-s2"),
        "a2": st("agent", V1, V2, "n-a2"),
        "a1": st("agent", V1, V2, "n-a1"),
        "a0": st("agent", V2, V2, "n-a0"),
        "fresh": st("agent", None, V2, "n-fresh"),
        "ext": {"mode": "external"},
    }
    plan = upgrade.plan(statuses)
    assert [s["minion"] for s in plan["steps"]] == ["s1", "s2", "s3", "a1", "a2"]
    assert plan["unchanged"] == ["a0", "fresh"]
    with pytest.raises(InputError, match="must answer"):
        upgrade.plan({**statuses, "s4": "did not answer"})
    with pytest.raises(InputError, match="newer than every server"):
        upgrade.plan({"s1": st("server", V1, V1, "n"), "a1": st("agent", V1, V2, "m")})


def test_upgrade_execution_recorded():
    statuses = {
        "s1": st("server", V1, V2, "n-s1", cluster_init=True),
        "s2": st("server", V1, V2, "n-s2"),
        "s3": st("server", V1, V2, "n-s3"),
        "a1": st("agent", V1, V2, "n-a1"),
    }
    calls = []
    version = {m: V1 for m in statuses}

    def call(minion, fun, *args, **kwargs):
        calls.append((minion, fun, *args))
        if fun == "state.sls":
            assert kwargs == {"pillar": {"palplat_k3s_upgrade": True}}
            # quorum: at most one server is away at any time
            assert sum(1 for m in ("s1", "s2", "s3") if version[m] == "restarting") == 0
            version[minion] = V2
        if fun == "palplat_k3s.node_ready":
            node, want = args[0], args[1]
            assert version[node[2:]] == want
        return True

    done = upgrade.execute(upgrade.plan(statuses), call, timeout=30)
    assert [c[:3] for c in calls] == [
        ("s2", "palplat_k3s.quorum", "n-s1"),  # etcd keeps quorum while s1 restarts
        ("s1", "state.sls", "palplat.k3s"),
        ("s2", "palplat_k3s.node_ready", "n-s1"),
        ("s1", "palplat_k3s.quorum", "n-s2"),
        ("s2", "state.sls", "palplat.k3s"),
        ("s1", "palplat_k3s.node_ready", "n-s2"),
        ("s1", "palplat_k3s.quorum", "n-s3"),
        ("s3", "state.sls", "palplat.k3s"),
        ("s1", "palplat_k3s.node_ready", "n-s3"),
        ("s1", "palplat_k3s.cordon", "n-a1"),
        ("s1", "palplat_k3s.drain", "n-a1"),
        ("a1", "state.sls", "palplat.k3s"),
        ("s1", "palplat_k3s.node_ready", "n-a1"),
        ("s1", "palplat_k3s.uncordon", "n-a1"),
    ]
    assert all(d["ok"] for d in done)


def test_upgrade_stops_at_first_failure():
    statuses = {
        "s1": st("server", V1, V2, "n-s1", cluster_init=True),
        "s2": st("server", V1, V2, "n-s2"),
        "s3": st("server", V1, V2, "n-s3"),
    }
    calls = []

    def call(minion, fun, *args, **kwargs):
        calls.append((minion, fun))
        if minion == "s1" and fun == "palplat_k3s.node_ready":
            raise WaitTimeout("node n-s2 not Ready at v1.33.6+k3s1 after 30s")
        return True

    with pytest.raises(upgrade.UpgradeError) as exc:
        upgrade.execute(upgrade.plan(statuses), call, timeout=30)
    assert "upgrade stopped at s1" in str(exc.value) and "n-s2" in str(exc.value)
    assert ("s3", "state.sls") not in calls
    assert exc.value.done[-1] == {
        "minion": "s1",
        "action": f"check node n-s2 Ready at {V2}",
        "ok": False,
    }
