"""Platform status from the minions' answers: cluster-wide rows come from the minion that
holds the cluster; an agent adds its own rows (k3s, firewall, GPU) only."""

from palplat import config
from palplat.report.status import build


def node(name, ready=True, server=False):
    labels = {"node-role.kubernetes.io/control-plane": "true"} if server else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {
            "nodeInfo": {"kubeletVersion": "v1.33.5+k3s1"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def answers(role, holds):
    k3s = {
        "mode": "install",
        "role": role,
        "installed": "v1.33.5+k3s1",
        "desired": "v1.33.5+k3s1",
        "active": True,
        "holds_cluster": holds,
    }
    if not holds:  # no admin kubeconfig: the cluster calls fail on this minion
        err = "ERROR: no kubeconfig at /etc/rancher/k3s/k3s.yaml"
        return {
            "palplat_k3s.status": k3s,
            "palplat_kube.list": err,
            "palplat_helm.releases": err,
            "palplat_helm.plan": err,
            "palplat_service.status": err,
        }
    return {
        "palplat_k3s.status": k3s,
        "palplat_kube.list": [node("srv", server=True), node("agt")],
        "palplat_helm.releases": [{"name": "web", "status": "deployed", "revision": 1}],
        "palplat_helm.plan": {"changes": {}, "errors": {}, "unchanged": ["web"]},
        "palplat_service.status": [{"service": "shop", "healthy": True}],
    }


def test_agent_adds_no_cluster_rows_and_no_errors():
    st = build({"srv": answers("server", True), "agt": answers("agent", False)}, ["srv", "agt"])
    d = st.as_dict()
    assert d["errors"] == [] and d["state"] == "healthy", d
    assert {n["node"] for n in d["nodes"]} == {"srv", "agt"}
    assert [r["release"] for r in d["releases"]] == ["web"]
    assert [s["service"] for s in d["services"]] == ["shop"]


def test_holds_the_cluster():
    def cfg(**k3s):
        k = {"version": "v1.33.5+k3s1", "token": "t", **k3s}
        return config.load({"palplat": {"k3s": k}})

    assert config.holds_the_cluster(cfg())
    assert config.holds_the_cluster(cfg(mode="external", kubeconfig="/k"))
    assert not config.holds_the_cluster(cfg(role="agent", server_url="https://s:6443"))
    assert not config.holds_the_cluster(cfg(server_url="https://s:6443"))


def test_gpu_rows_only_for_devices_and_degraded_without_allocatable():
    none = {"node": "vm", "gpus": [], "table": "BUS ID  MODEL", "node_allocatable": None}
    st = build({"srv": {**answers("server", True), "palplat_nvidia.status": none}}, ["srv"])
    assert st.as_dict()["gpu"] == [] and st.exit_code == 0
    gpu = {"bus_id": "0000:01:00.0", "model": "RTX 4090", "memory": "24564 MiB",
           "driver": "550.1", "allocatable": None}  # fmt: skip
    one = {"node": "srv", "gpus": [gpu], "table": "...", "node_allocatable": None}
    st = build({"srv": {**answers("server", True), "palplat_nvidia.status": one}}, ["srv"])
    d = st.as_dict()
    assert [r["model"] for r in d["gpu"]] == ["RTX 4090"] and "table" not in d["gpu"][0]
    assert st.exit_code == 2 and any("gpu: node srv" in x for x in d["degraded"])


def test_gpu_agent_allocatable_from_the_holders_node_list():
    """The agent does not ask the API (cluster=False): its devices, the holder's figure."""
    holder = answers("server", True)
    gpu_node = node("agt")
    gpu_node["status"]["allocatable"] = {"nvidia.com/gpu": "8"}
    holder["palplat_kube.list"] = [node("srv", server=True), gpu_node]
    two = [{"bus_id": f"0000:0{i}:00.0", "model": "H100", "allocatable": None} for i in (1, 2)]
    agent = {
        "palplat_k3s.status": answers("agent", False)["palplat_k3s.status"],
        "palplat_nvidia.status": {"node": "agt", "gpus": two, "node_allocatable": None},
    }
    st = build({"srv": holder, "agt": agent}, ["srv", "agt"])
    d = st.as_dict()
    assert [r["allocatable"] for r in d["gpu"]] == [4, 4] and st.exit_code == 0, d
    # the holder's list says none: degraded, naming the node
    gpu_node["status"]["allocatable"] = {}
    st = build({"srv": holder, "agt": agent}, ["srv", "agt"])
    assert st.exit_code == 2 and any("gpu: node agt" in x for x in st.degraded)


def test_collect_status_asks_the_cluster_of_the_holder_alone():
    from palplat.report import collect
    from palplat.report.status import CLUSTER_CALLS, NODE_CALLS

    jobs = []
    full = {"srv": answers("server", True), "agt": answers("agent", False)}

    def cmd_for(minions):
        def cmd(funs, arg=(), kwarg=None):
            jobs.append((tuple(minions), tuple(funs)))
            return {m: {f: full[m].get(f, {}) for f in funs} for m in minions}

        return cmd

    st = collect.collect_status(cmd_for(["srv", "agt"]), ["srv", "agt"], cmd_on=cmd_for)
    assert jobs == [
        (("srv", "agt"), tuple(f for f, _ in NODE_CALLS)),
        (("srv",), tuple(f for f, _ in CLUSTER_CALLS)),
    ]
    assert st.exit_code == 0 and {n["node"] for n in st.as_dict()["nodes"]} == {"srv", "agt"}
    assert dict(NODE_CALLS)["palplat_nvidia.status"] == [{"cluster": False, "__kwarg__": True}]
