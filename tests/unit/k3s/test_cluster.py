"""palplat.k3s.cluster: the join waves, etcd quorum arithmetic, and a node's removal."""

from __future__ import annotations

import pytest

from palplat.errors import InputError
from palplat.k3s import cluster, upgrade
from tests.unit.k3s.support import V1, V2


def st(role, node, holds=False, active=True, installed=V1, desired=V1):
    return {
        "mode": "install",
        "role": role,
        "cluster_init": holds,
        "node": node,
        "installed": installed,
        "desired": desired,
        "active": active,
        "holds_cluster": holds,
    }


def fleet(active=None):
    active = active or {}
    return {
        "s1": st("server", "s1", holds=True, active=active.get("s1", True)),
        "s2": st("server", "s2", active=active.get("s2", True)),
        "s3": st("server", "s3", active=active.get("s3", True)),
        "a1": st("agent", "a1"),
        "a2": st("agent", "a2"),
    }


def nodes(ready=None, version=V1):
    ready = ready or {}
    out = []
    for name in ("s1", "s2", "s3", "a1", "a2"):
        server = name.startswith("s")
        out.append(
            {
                "name": name,
                "ready": ready.get(name, True),
                "version": version,
                "server": server,
                "etcd": server,
            }
        )
    return out


def test_waves_holder_then_each_server_then_agents():
    w = cluster.waves({**fleet(), "ext": {"mode": "external", "holds_cluster": True}})
    assert w == {"first": ["ext", "s1"], "servers": ["s2", "s3"], "agents": ["a1", "a2"]}
    assert cluster.waves({**fleet(), "gone": "did not answer"}) is None


def test_node_view_reads_what_k3s_labels():
    obj = {
        "metadata": {
            "name": "s1",
            "labels": {
                "node-role.kubernetes.io/control-plane": "true",
                "node-role.kubernetes.io/etcd": "true",
            },
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": V1},
            "allocatable": {"nvidia.com/gpu": "1"},
        },
    }
    v = cluster.node_view(obj)
    assert v == {
        "name": "s1",
        "ready": True,
        "version": V1,
        "server": True,
        "etcd": True,
        "unschedulable": True,
        "allocatable": {"nvidia.com/gpu": "1"},
    }


def test_quorum_arithmetic_in_the_message():
    assert [cluster.quorum(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    ms = cluster.members(nodes(), fleet())
    assert [m.node for m in ms] == ["s1", "s2", "s3"] and all(m.healthy for m in ms)
    ok = cluster.check_removal(ms, "s3")
    assert "3 etcd members now (3 healthy" in ok and "2 after removing s3" in ok
    assert "quorum 2//2+1 = 2" in ok
    # s3's k3s is stopped: removing a healthy member leaves 1 of 2: refused, with the sums
    ms = cluster.members(nodes(), fleet(active={"s3": False}))
    assert [m.node for m in ms if not m.healthy] == ["s3"]
    with pytest.raises(InputError) as exc:
        cluster.check_removal(ms, "s2")
    msg = str(exc.value)
    assert "would break etcd quorum" in msg
    assert "2 after removing s2 (1 healthy: s1; quorum 2//2+1 = 2)" in msg
    assert "s3: k3s is not running on s3" in msg
    # ... but the member that is down may go
    assert cluster.check_removal(ms, "s3").startswith("quorum holds")
    # a Node not Ready counts as down; an agent is no member
    ms = cluster.members(nodes(ready={"s2": False}), fleet())
    assert "s2: its Node is not Ready" in str(
        pytest.raises(InputError, cluster.check_removal, ms, "s1").value
    )
    assert "not an etcd member" in cluster.check_removal(ms, "a1")
    with pytest.raises(InputError, match="only etcd member"):
        cluster.check_removal([cluster.Member("s1", True)], "s1")


def test_check_down_for_an_upgrade_step():
    ms = cluster.members(nodes(), fleet())
    assert "quorum holds while s2 restarts" in cluster.check_down(ms, "s2")
    ms = cluster.members(nodes(ready={"s3": False}), fleet())
    with pytest.raises(InputError, match="restarting s2 now would break etcd quorum"):
        cluster.check_down(ms, "s2")


def test_removal_plan_and_refusals():
    p = cluster.removal_plan("a2", fleet(), nodes())
    assert p["helper"] == "s1" and p["quorum"] is None
    assert [s["action"] for s in p["steps"]] == [
        "cordon a2",
        "drain a2",
        "uninstall k3s (purge)",
        "delete node a2",
    ]
    p = cluster.removal_plan("s3", fleet(), nodes())
    assert p["quorum"].startswith("quorum holds")
    with pytest.raises(InputError, match="holds the cluster"):
        cluster.removal_plan("s1", fleet(), nodes())
    with pytest.raises(InputError, match="did not answer"):
        cluster.removal_plan("s2", {**fleet(), "s2": "did not answer"}, nodes())
    with pytest.raises(InputError, match="would break etcd quorum"):
        cluster.removal_plan("s2", fleet(active={"s3": False}), nodes())
    gone = {**fleet(), "a2": st("agent", "a2", installed=None)}
    with pytest.raises(InputError, match="not part of the cluster"):
        cluster.removal_plan("a2", gone, [n for n in nodes() if n["name"] != "a2"])


def test_remove_runs_in_order_and_stops_at_the_first_failure():
    calls = []

    def call(minion, fun, *args, **kwargs):
        calls.append((minion, fun, *args))
        if fun == "palplat_k3s.drain" and args[0] == "s3":
            raise RuntimeError("pods with emptyDir data")
        return True

    p = cluster.removal_plan("a2", fleet(), nodes())
    done = cluster.remove(p, call, timeout=5)
    assert [c[:3] for c in calls] == [
        ("s1", "palplat_k3s.cordon", "a2"),
        ("s1", "palplat_k3s.drain", "a2"),
        ("a2", "state.single", "palplat_k3s.absent"),
        ("s1", "palplat_k3s.delete_node", "a2"),
    ]
    assert all(d["ok"] for d in done)
    calls.clear()
    p = cluster.removal_plan("s3", fleet(), nodes())
    with pytest.raises(cluster.RemovalError) as exc:
        cluster.remove(p, call, timeout=5)
    assert [c[1] for c in calls] == [
        "palplat_k3s.quorum",
        "palplat_k3s.cordon",
        "palplat_k3s.drain",
    ]
    assert exc.value.done[-1] == {"minion": "s1", "action": "drain s3", "ok": False}
    assert "emptyDir" in str(exc.value)


def test_upgrade_plan_after_a_server_that_did_not_come_back():
    """s1 upgraded, s2 has the new binary but its kubelet still reports the old version:
    the plan is s2, s3, then the agents, and says why s2 is there."""
    statuses = {
        "s1": st("server", "s1", holds=True, installed=V2, desired=V2),
        "s2": st("server", "s2", installed=V2, desired=V2),
        "s3": st("server", "s3", installed=V1, desired=V2),
        "a1": st("agent", "a1", installed=V1, desired=V2),
    }
    seen = nodes(ready={"s2": False})
    for n in seen:
        n["version"] = V2 if n["name"] == "s1" else V1
    plan = upgrade.plan(statuses, seen)
    assert [s["minion"] for s in plan["steps"]] == ["s2", "s3", "a1"]
    s2 = plan["steps"][0]
    assert (s2["from"], s2["to"]) == (V1, V2)
    assert "installed but node s2 runs v1.33.5+k3s1, not Ready" in s2["why"]
    # without the cluster's view (no server answered) only the binaries count
    assert [s["minion"] for s in upgrade.plan(statuses)["steps"]] == ["s3", "a1"]
