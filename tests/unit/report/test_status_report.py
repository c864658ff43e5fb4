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
