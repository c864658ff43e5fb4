"""Several nodes: three servers and three agents (one with a GPU) on a real Salt master
and six real minions (tests/support/fleet.py), each minion running the stand-in k3s under
its own root, one control plane for the cluster they form. The tests run in order on the
same fleet, as an operator would:

1. a bare fleet planned, then converged by ``palplat.full``: the cluster-init server,
   then each further server, then the agents; the cluster-wide stages once, on the holder;
2. status and plan ask the API only where the work is (the audit log, per minion);
3. an agent and a server added: the plan shows only them, the run touches only them;
4. the added agent removed: drained, its Node deleted, nothing else touched;
5. servers removed only while etcd keeps quorum, refused otherwise with the arithmetic;
6. a rolling upgrade whose second server does not come back: everything stops, quorum
   kept, the plan afterwards is exactly what is left; finished once the server is fixed;
7. a minion down during a plan: the report names it and exits 1, no partial plan.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from palplat import config
from tests.support import testenv
from tests.support.fleet import VERSIONS, Fleet, Node, topology

pytestmark = [pytest.mark.salt, pytest.mark.controlplane, pytest.mark.helm, pytest.mark.slow]

V1, V2 = VERSIONS
SERVERS, AGENTS = ["srv1", "srv2", "srv3"], ["agt1", "agt2", "agt3"]


@pytest.fixture(scope="module")
def fleet():
    missing = testenv.missing_bins(testenv.COMPONENTS + ("kube-scheduler", "helm"))
    if missing:
        pytest.skip(f"{', '.join(missing)} not built: run tools/build-testbin")
    # short: Salt's unix sockets live under each daemon's root (107 bytes a path)
    work = Path(tempfile.mkdtemp(prefix="fleet-", dir="/tmp"))
    f = Fleet(work, topology("3+3", gpu_agents=1), heartbeat=2, audit=True)
    try:
        f.start()
        yield f
    finally:
        f.stop()
        shutil.rmtree(work, ignore_errors=True)


def _states(run) -> dict:
    """The orchestration's states by ID, in the order they ran."""
    data = run.data or {}
    ret = data.get("data", data)
    ret = next(iter(ret.values())) if isinstance(ret, dict) and len(ret) == 1 else ret
    out = {}
    for v in sorted(ret.values(), key=lambda r: r.get("__run_num__", 0)):
        out[v["__id__"]] = v
    return out


def _per_minion(state: dict, sid_suffix: str) -> dict:
    """``{minion: that state's return}`` inside one salt.state stage."""
    out = {}
    for mid, rets in ((state.get("changes") or {}).get("ret") or {}).items():
        for key, r in rets.items():
            if key.split("_|-")[1].endswith(sid_suffix):
                out[mid] = r
    return out


def _changed(plan) -> set[str]:
    return {i["minion"] for i in plan.data["report"]["items"] if any(i["counts"].values())}


def _nodes(fleet) -> dict:
    from palplat import kube

    k = kube.Kube(str(fleet.cp.kubeconfig))
    try:
        items = k.request("GET", "/api/v1/nodes")["items"]
    finally:
        k.close()
    from palplat.k3s import cluster

    return {n["name"]: n for n in map(cluster.node_view, items)}


def _tail(cp) -> str:
    return (cp.stdout or "")[-6000:] + (cp.stderr or "")[-3000:]


def test_bare_fleet_plans_then_converges_in_order(fleet):
    plan = fleet.run("palplat.plan")
    assert plan.returncode == 2, _tail(plan)
    assert plan.data["report"]["errors"] == []
    assert _changed(plan) == set(SERVERS + AGENTS)

    run = fleet.orchestrate()
    assert run.returncode == 0, _tail(run)
    states = _states(run)
    k3s = [sid for sid in states if sid.startswith("palplat-k3s")]
    assert k3s == ["palplat-k3s", "palplat-k3s-server-srv2", "palplat-k3s-server-srv3"] + [
        "palplat-k3s-agents"
    ], list(states)
    # and k3s really started in that order
    t = {m: fleet.started_at(m)[0] for m in SERVERS + AGENTS}
    assert t["srv1"] < t["srv2"] < t["srv3"] < min(t[a] for a in AGENTS), t

    # the cluster-wide stages once, on the holder (Salt lists only minions with changes)
    releases = _per_minion(states["palplat-platform"], "palplat-platform-releases")
    assert set(releases) == {"srv1"} and releases["srv1"]["changes"], releases
    plugin = _per_minion(states["palplat-gpu"], "palplat-gpu-device-plugin")
    assert plugin["srv1"]["changes"]  # the holder has no GPU: it converges the release
    # the others: a second run there changes nothing and says why
    again = fleet.salt(
        "srv2,agt1,agt2", "state.sls", "palplat.platform,palplat.gpu", tgt_type="list"
    )
    assert set(again) == {"srv2", "agt1", "agt2"}, again
    for rets in again.values():
        assert all(r["result"] is True and not r["changes"] for r in rets.values()), rets

    def said(mid, sid):
        return next(r["comment"] for k, r in again[mid].items() if k.split("_|-")[1] == sid)

    for mid in ("srv2", "agt2"):
        assert said(mid, "palplat-platform-releases") == config.CLUSTER_STAGE_ELSEWHERE
        assert "nothing to do" in said(mid, "palplat-gpu-verified")
    assert "minion that holds the cluster" in said("agt1", "palplat-gpu-device-plugin")
    assert "offers 1 nvidia.com/gpu" in said("agt1", "palplat-gpu-verified")

    nodes = _nodes(fleet)
    assert set(nodes) == set(SERVERS + AGENTS) and all(n["ready"] for n in nodes.values())
    assert {n for n, v in nodes.items() if v["etcd"]} == set(SERVERS)
    assert nodes["agt1"]["allocatable"].get("nvidia.com/gpu") == "1"
    # converged: the next test's plan has nothing to do


def test_status_and_plan_ask_the_api_only_where_the_work_is(fleet):
    mark = fleet.audit_mark()
    st = fleet.run("palplat.status")
    assert st.returncode == 0, _tail(st)
    status = st.data["status"]
    assert status["errors"] == [] and len(status["nodes"]) == 6
    # the GPU agent's allocatable, from the holder's Node list
    assert [(g["node"], g["allocatable"]) for g in status["gpu"]] == [("agt1", 1)]
    asked = {k: v for k, v in fleet.requests_since(mark).items() if k.startswith("palplat")}
    assert set(asked) == {"palplat (srv1)"}, asked  # nobody else asks the API

    mark = fleet.audit_mark()
    plan = fleet.run("palplat.plan")
    assert plan.returncode == 0, _tail(plan)
    asked = {k: v for k, v in fleet.requests_since(mark).items() if k.startswith("palplat")}
    # the holder plans the cluster; a further server checks its own kubeconfig; the GPU
    # agent reads its own Node, its pods and the RuntimeClass; the other agents nothing
    assert "palplat (agt2)" not in asked and "palplat (agt3)" not in asked, asked
    assert asked.get("palplat (srv2)", 0) <= 2 and asked.get("palplat (agt1)", 0) <= 6, asked
    assert asked["palplat (srv1)"] > max(v for k, v in asked.items() if k != "palplat (srv1)")


def test_add_an_agent_and_a_server_plans_and_touches_only_them(fleet):
    before = {m: fleet.started_at(m) for m in fleet.nodes}
    fleet.add_node(Node("srv4", "server"), Node("agt4", "agent"))
    plan = fleet.run("palplat.plan")
    assert plan.returncode == 2, _tail(plan)
    assert _changed(plan) == {"srv4", "agt4"}
    run = fleet.orchestrate()
    assert run.returncode == 0, _tail(run)
    assert {m: fleet.started_at(m) for m in before} == before  # no restart elsewhere
    assert fleet.started_at("srv4")[0] < fleet.started_at("agt4")[0]
    nodes = _nodes(fleet)
    assert set(nodes) == set(SERVERS + AGENTS + ["srv4", "agt4"])
    assert all(n["ready"] for n in nodes.values()) and nodes["srv4"]["etcd"]


def test_remove_an_agent_drains_it_and_touches_nothing_else(fleet):
    from kubernetes import client
    from kubernetes import config as kconfig

    # the pods below have no controller: this node's pillar lets the drain delete them
    fleet.extra_pillar["agt4"] = {"k3s": {"drain": {"force": True}}}
    fleet.write_pillar()
    fleet.refresh_pillar()
    api = kconfig.new_client_from_config(config_file=str(fleet.cp.kubeconfig))
    core = client.CoreV1Api(api)
    ns = "fleet-drain"
    core.create_namespace({"metadata": {"name": ns}})
    for node in ("agt4", "agt2"):
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": f"on-{node}"},
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "c", "image": "x.invalid/c:1"}],
                },
            },
        )
    before = {m: fleet.started_at(m) for m in fleet.nodes if m != "agt4"}
    try:
        plan = fleet.run("palplat_k3s.remove", "minion=agt4", "test=True")
        assert plan.data["result"] is None, _tail(plan)
        assert [s["action"] for s in plan.data["changes"]["steps"]] == [
            "cordon agt4",
            "drain agt4",
            "uninstall k3s (purge)",
            "delete node agt4",
        ]
        assert plan.data["changes"]["drain"]["force"] is True
        assert "agt4" in _nodes(fleet)  # the plan changed nothing

        run = fleet.run("palplat_k3s.remove", "minion=agt4")
        assert run.returncode == 0 and run.data["result"] is True, _tail(run)
        assert "take it out of the pillar's top file" in run.data["comment"]
        nodes = _nodes(fleet)
        assert "agt4" not in nodes
        assert all(n["ready"] and not n["unschedulable"] for n in nodes.values()), nodes
        pods = {p.metadata.name for p in core.list_namespaced_pod(ns).items}
        assert pods == {"on-agt2"}  # evicted from agt4 only
        assert not (fleet.root("agt4") / "usr/local/bin/k3s").exists()
        assert fleet.events("agt4")[-1] == "stop"
        assert {m: fleet.started_at(m) for m in before} == before
    finally:
        core.delete_namespace(ns)
        api.close()
    fleet.extra_pillar.pop("agt4")
    fleet.forget_node("agt4")


def test_remove_a_server_only_while_quorum_holds(fleet):
    # four etcd members, all healthy: one may go (4 -> 3, 3 healthy, quorum 2)
    run = fleet.run("palplat_k3s.remove", "minion=srv4")
    assert run.returncode == 0 and run.data["result"] is True, _tail(run)
    done = [d["action"] for d in run.data["changes"]["done"]]
    assert done[0] == "check quorum without srv4" and done[-1] == "delete node srv4"
    assert "quorum holds: 4 etcd members now" in run.data["changes"]["plan"]["quorum"]
    fleet.forget_node("srv4")
    assert {n for n, v in _nodes(fleet).items() if v["etcd"]} == set(SERVERS)

    # srv3's k3s is down: removing srv2 would leave 1 healthy of 2: refused, with the sums
    fleet.stop_k3s("srv3")
    try:
        run = fleet.run("palplat_k3s.remove", "minion=srv2")
        assert run.returncode == 1 and run.data["result"] is False, _tail(run)
        msg = run.data["comment"]
        assert "removing server srv2 would break etcd quorum" in msg, msg
        assert "3 etcd members now (2 healthy: srv1, srv2; quorum 3//2+1 = 2)" in msg, msg
        assert "2 after removing srv2 (1 healthy: srv1; quorum 2//2+1 = 2)" in msg, msg
        assert "srv3: k3s is not running on srv3" in msg
        assert set(_nodes(fleet)) == set(SERVERS + AGENTS)  # nothing changed
        # the member that is down may go
        plan = fleet.run("palplat_k3s.remove", "minion=srv3", "test=True")
        assert plan.data["result"] is None, _tail(plan)
        assert plan.data["changes"]["quorum"].startswith("quorum holds")
    finally:
        back = fleet.salt("srv3", "state.apply", "palplat.k3s", timeout=300)
        assert all(r["result"] for r in back["srv3"].values()), back
    assert all(n["ready"] for n in _nodes(fleet).values())


def test_rolling_upgrade_stops_at_the_second_server_and_plans_what_is_left(fleet):
    before = {m: fleet.started_at(m) for m in fleet.nodes}
    fleet.version = V2
    fleet.extra_pillar["srv2"] = {"k3s": {"ready_timeout": 10}}
    fleet.write_pillar()
    fleet.refresh_pillar()
    fleet.behave("srv2", never_ready=True)  # the new k3s starts but never comes back
    run = fleet.run("palplat_k3s.upgrade")
    assert run.returncode == 1 and run.data["result"] is False, _tail(run)
    done = [(d["minion"], d["action"].split(" (")[0], d["ok"]) for d in run.data["changes"]["done"]]
    assert done == [
        ("srv2", "check quorum without srv1", True),
        ("srv1", "apply palplat.k3s", True),
        ("srv2", f"check node srv1 Ready at {V2}", True),
        ("srv1", "check quorum without srv2", True),
        ("srv2", "apply palplat.k3s", False),
    ], done
    assert (
        "srv2" in run.data["comment"] and "nodes after it were not touched" in run.data["comment"]
    )
    # everything after srv2 kept its version and was not restarted or cordoned
    for m in ["srv3"] + AGENTS:
        assert fleet.started_at(m) == before[m], m
    nodes = _nodes(fleet)
    assert not any(n["unschedulable"] for n in nodes.values())
    # quorum kept: srv1 (upgraded) and srv3 are Ready
    assert nodes["srv1"]["ready"] and nodes["srv1"]["version"] == V2
    assert nodes["srv3"]["ready"] and nodes["srv3"]["version"] == V1

    plan = fleet.run("palplat.plan")
    assert plan.returncode == 2, _tail(plan)
    steps = [i for i in plan.data["report"]["items"] if i["stage"] == "k3s-upgrade"]
    assert [i["minion"] for i in steps] == ["srv2", "srv3"] + AGENTS, steps
    assert (
        f"{V1} -> {V2} (server): {V2} is installed but node srv2 runs {V1}" in steps[0]["comment"]
    )

    # fixed: the same runner finishes it, in that order
    fleet.behave("srv2", never_ready=None)
    fleet.extra_pillar.pop("srv2")
    fleet.write_pillar()
    fleet.refresh_pillar()
    run = fleet.run("palplat_k3s.upgrade")
    assert run.returncode == 0 and run.data["result"] is True, _tail(run)
    applied = [d["minion"] for d in run.data["changes"]["done"] if "apply" in d["action"]]
    assert applied == ["srv2", "srv3"] + AGENTS
    assert {n["version"] for n in _nodes(fleet).values()} == {V2}
    assert fleet.run("palplat.plan").returncode == 0


def test_a_minion_down_during_a_plan_is_named_and_exits_1(fleet):
    # the last test: agt2 stays down until the fixture stops the fleet
    fleet.stop_minion("agt2")
    t0 = time.monotonic()
    plan = fleet.run("palplat.plan", "timeout=5")
    took = time.monotonic() - t0
    assert plan.returncode == 1, _tail(plan)
    rep = plan.data["report"]
    assert any(e.startswith("agt2: did not answer") for e in rep["errors"]), rep["errors"]
    assert rep["items"] == []  # no partial plan
    assert "agt2" in plan.data["markdown"]
    # Salt gave up on it after the timeout and one find_job round (gather_job_timeout)
    assert took < 5 + 10 + 30, took
    st = fleet.run("palplat.status", "timeout=5")
    assert st.returncode == 1 and "agt2: did not answer" in json.dumps(st.data["status"])
