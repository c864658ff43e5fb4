"""A real node in ``make test``: containerd, runc, the CNI bridge and the kubelet
(tests/support/node.py, fixture ``real_node``) joined to the session's control plane,
running pods of images made here (nothing is pulled). What it proves for palplat that
kwok's fake nodes cannot (a kwok pod is Running and Ready the moment it is bound):

* the node: a pod's program really runs, its output comes back through the API server's
  log endpoint (the kubelet), and its address on the CNI bridge answers from the host;
* palplat's Helm engine (``palplat_helm.release``, helm ``--atomic --wait``): a release
  returns only once its pod passed a real readiness probe; an upgrade whose new pod
  crashes is rolled back, and the old pod, never stopped, keeps serving: the safety net
  fires on a broken workload, not only on an object the API server rejects;
* the GPU stage's plugin pod link (``palplat.nvidia.cluster.plugin_pod``) on a real pod
  that crashes as the device plugin does without NVML: the exit, the kubelet's log file
  and the BackOff event, in palplat's words;
* palplat's drain (k3s upgrades) returns once the kubelet has really stopped the pod.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from palplat import kube as kubelib
from palplat.k3s import upgrade
from palplat.nvidia import cluster
from tests.support.node import NODEAPP_REF, TESTBED_LABEL, TESTBED_TOLERATION
from tests.support.saltenv import CHECKOUT_DIRS

pytestmark = [pytest.mark.controlplane, pytest.mark.node, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "tests" / "fixtures" / "charts" / "webapp"
ON_NODE = {"nodeSelector": {TESTBED_LABEL: "true"}, "tolerations": [TESTBED_TOLERATION]}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pod_manifest(name: str, args: list[str], restart="Never", *, labels=None, probe=False):
    container = {"name": "app", "image": NODEAPP_REF, "imagePullPolicy": "Never", "args": args}
    if probe:
        container["readinessProbe"] = {
            "httpGet": {"path": "/healthz", "port": 8080},
            "periodSeconds": 1,
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 10,
            "containers": [container],
            **ON_NODE,
        },
    }


def ready(pod: dict | None) -> bool:
    conds = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def wait_for(what: str, check, timeout: float = 60, every: float = 0.5):
    """Poll ``check()`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"{what}: not after {timeout}s (last: {last!r})")


def http_get(ip: str, port: int = 8080, path: str = "/") -> str:
    with NO_PROXY.open(f"http://{ip}:{port}{path}", timeout=5) as r:  # noqa: S310
        return r.read().decode().strip()


def pods_of(node, ns: str, selector: str) -> list[dict]:
    code, out = node.cp.request(
        "GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={urllib.request.quote(selector)}"
    )
    assert code == 200, out
    return json.loads(out)["items"]


# ----------------------------------------------------------------------------- the node


def test_pods_really_run_on_the_node(real_node, namespace):
    info = real_node.node()["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://"), info
    assert info["kubeletVersion"].startswith("v1."), info

    # a program that prints and exits: Succeeded, its output through the API server
    real_node.create(
        f"/api/v1/namespaces/{namespace}/pods",
        pod_manifest("say", ["say", "0", "hello from the real node"]),
    )
    done = real_node.wait_pod(namespace, "say", timeout=90, phases=("Succeeded",))
    assert done["spec"]["nodeName"] == real_node.name
    code, log = real_node.cp.request("GET", f"/api/v1/namespaces/{namespace}/pods/say/log")
    assert code == 200 and log.decode().strip() == "hello from the real node"

    # a server with a readiness probe: Ready only once the kubelet's probe answered; its
    # address on the node's bridge answers from here
    real_node.create(
        f"/api/v1/namespaces/{namespace}/pods",
        pod_manifest("web", ["serve", "8080", "served from a pod"], restart="Always", probe=True),
    )
    pod = wait_for("pod web Ready", lambda: ready(p := real_node.pod(namespace, "web")) and p)
    ip = pod["status"]["podIP"]
    assert ip.startswith(real_node.pod_subnet.rsplit(".", 1)[0] + "."), (ip, real_node.pod_subnet)
    assert http_get(ip) == "served from a pod"


# ----------------------------------------------------------------- palplat_helm.release


@pytest.fixture
def salt_states(kubeconfig, helm_bin, tmp_path, monkeypatch):
    """states(pillar, test) -> Salt's state functions with palplat's loader modules."""
    import salt.config
    import salt.loader

    for k in ("CACHE", "CONFIG", "DATA"):
        monkeypatch.setenv(f"HELM_{k}_HOME", str(tmp_path / f"helm-{k.lower()}"))
    opts = salt.config.minion_config(None)
    opts.update(
        {
            "palplat_plaintext_secrets": True,
            "file_client": "local",
            "cachedir": str(tmp_path / "cache"),
            **CHECKOUT_DIRS,
            "palplat.helm_bin": helm_bin,
        }
    )

    def make(pillar: dict, test: bool):
        o = dict(opts, test=test, pillar=pillar)
        utils = salt.loader.utils(o)
        funcs = salt.loader.minion_mods(
            o, utils=utils, whitelist=["config", "event", "test", "palplat_helm"]
        )
        funcs["event.fire"] = lambda *a, **kw: True
        return salt.loader.states(o, funcs, utils, {})

    return make


def web_pillar(kubeconfig: str, ns: str, timeout: int = 120, **values) -> dict:
    release = {
        "namespace": ns,
        "chart": {"path": str(CHART)},
        "values": {**ON_NODE, **values},
        "wait": True,
        "timeout": timeout,
    }
    return {
        "palplat": {
            "gpu": {"enabled": False},
            "k3s": {"kubeconfig": kubeconfig},
            "platform": {"releases": {"web": release}},
        }
    }


def test_release_returns_once_its_pod_is_really_ready(
    real_node, namespace, kubeconfig, kube_api, salt_states
):
    pillar = web_pillar(kubeconfig, namespace, text="v1", readyAfter=5)
    plan = salt_states(pillar, True)["palplat_helm.release"]("web")
    assert plan["result"] is None and plan["changes"]["web"]["action"] == "install", plan

    started = time.monotonic()
    ret = salt_states(pillar, False)["palplat_helm.release"]("web")
    took = time.monotonic() - started
    assert ret["result"] is True, ret
    # helm --wait waited for the kubelet's readiness probe (initialDelaySeconds 5)
    assert took >= 5, f"the release returned after {took:.1f}s, before its pod could be ready"

    kube = kubelib.Kube(api_client=kube_api)
    deploy = kube.get("apps/v1", "Deployment", "web", namespace)
    assert kubelib.ready(deploy)[0], deploy["status"]
    [pod] = pods_of(real_node, namespace, "app.kubernetes.io/instance=web")
    assert pod["spec"]["nodeName"] == real_node.name and ready(pod)
    assert pod["status"]["containerStatuses"][0]["started"] is True
    assert http_get(pod["status"]["podIP"]) == "v1"

    again = salt_states(pillar, False)["palplat_helm.release"]("web")
    assert again["result"] is True and again["changes"] == {}, again


def test_crashing_upgrade_is_rolled_back_and_the_old_pod_keeps_serving(
    real_node, namespace, kubeconfig, kube_api, salt_states, helm_bin
):
    good = web_pillar(kubeconfig, namespace, text="v1")
    assert salt_states(good, False)["palplat_helm.release"]("web")["result"] is True
    [old] = pods_of(real_node, namespace, "app.kubernetes.io/instance=web")
    assert ready(old)

    # the new version crashes at start (a config error): its pod never becomes ready
    bad = web_pillar(
        kubeconfig,
        namespace,
        timeout=10,
        command="say",
        exitCode=3,
        text="config error: no such database",
    )
    ret = salt_states(bad, False)["palplat_helm.release"]("web")
    assert ret["result"] is False, ret
    assert "failed and was rolled back" in ret["comment"], ret["comment"]
    assert "revision 3 (deployed)" in ret["comment"], ret["comment"]  # 1, 2 failed, 3 = 1

    # the crash was real: the kubelet backed off restarting the new pod's container
    code, out = real_node.cp.request("GET", f"/api/v1/namespaces/{namespace}/events")
    reasons = {(e["reason"], e["involvedObject"]["name"]) for e in json.loads(out)["items"]}
    assert any(r == "BackOff" and n != old["metadata"]["name"] for r, n in reasons), reasons

    # the old pod was never stopped and still answers; the crashing one is gone
    def only_the_old_pod():
        pods = pods_of(real_node, namespace, "app.kubernetes.io/instance=web")
        return [p["metadata"]["uid"] for p in pods] == [old["metadata"]["uid"]] and pods[0]

    pod = wait_for("only the old pod left", only_the_old_pod, timeout=60)
    assert ready(pod) and pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert http_get(pod["status"]["podIP"]) == "v1"
    history = subprocess.run(
        [helm_bin, "history", "web", "-n", namespace, "-o", "json", "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [r["status"] for r in json.loads(history)] == ["superseded", "failed", "deployed"]
    # the next run still sees the change (the failed one left no fingerprint)
    assert salt_states(bad, True)["palplat_helm.release"]("web")["changes"]["web"]["action"] == (
        "upgrade"
    )


# ----------------------------------------------------------- the GPU stage's plugin link


def test_plugin_pod_link_reads_a_real_crashing_pod(real_node, namespace, kube_api):
    """The device plugin without NVML prints why and exits; palplat's link says so from
    the pod's status, the kubelet's log file (under the node's root) and its events."""
    kube = kubelib.Kube(api_client=kube_api)
    root = str(real_node.pod_logs_dir.parents[2])  # <root>/var/log/pods
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin"}
    said = "Failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND"
    real_node.create(
        f"/api/v1/namespaces/{namespace}/pods",
        pod_manifest("plugin", ["say", "1", said], restart="Always", labels=labels),
    )

    def crashing():
        pod, msg = cluster.plugin_pod(kube, namespace, real_node.name, root)
        return pod is not None and "CrashLoopBackOff" in msg and "last event" in msg and msg

    msg = wait_for("the plugin pod in CrashLoopBackOff", crashing, timeout=90)
    assert f"device plugin pod {namespace}/plugin on {real_node.name} is Running, not Ready" in msg
    assert "app: CrashLoopBackOff: last exit code 1 (Error)" in msg, msg
    assert f"app logged: {said}" in msg, msg
    assert "last event BackOff: Back-off restarting failed container app" in msg, msg

    # a plugin pod that runs is the one the link reports
    real_node.create(
        f"/api/v1/namespaces/{namespace}/pods",
        pod_manifest("plugin-ok", ["serve", "8080", "ok"], "Always", labels=labels, probe=True),
    )
    wait_for("pod plugin-ok Ready", lambda: ready(real_node.pod(namespace, "plugin-ok")))
    _pod, msg = cluster.plugin_pod(kube, namespace, real_node.name, root)
    assert msg == f"device plugin pod {namespace}/plugin-ok is Ready"


# ----------------------------------------------------------------- k3s upgrade's drain


def deployment(node, ns: str, name: str, pod_spec_extra: dict | None = None) -> None:
    """A one-replica Deployment of nodeapp on the node (a pod a controller recreates, as
    drain expects)."""
    labels = {"app": name}
    container = {
        "name": "app",
        "image": NODEAPP_REF,
        "imagePullPolicy": "Never",
        "args": ["serve", "8080", name],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
    }
    spec = {"containers": [container], "terminationGracePeriodSeconds": 20, **ON_NODE}
    for key, value in (pod_spec_extra or {}).items():
        (container if key == "lifecycle" else spec)[key] = value
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }
    node.create(f"/apis/apps/v1/namespaces/{ns}/deployments", body)


def only_these_pods_on(node, ns: str):
    """Wait until the node holds pods of ``ns`` only (earlier tests' are gone), all Ready."""

    def check():
        pods = node.pods_on_node()
        return pods and all(p["metadata"]["namespace"] == ns and ready(p) for p in pods) and pods

    return wait_for(f"only Ready pods of {ns} on the node", check, timeout=90)


def test_drain_returns_once_the_kubelet_stopped_the_pod(real_node, namespace, kube_api):
    kube = kubelib.Kube(api_client=kube_api)
    deployment(real_node, namespace, "busy")
    [pod] = only_these_pods_on(real_node, namespace)
    name = pod["metadata"]["name"]
    try:
        started = time.monotonic()
        evicted = upgrade.drain(kube, real_node.name, timeout=60)
        took = time.monotonic() - started
        assert evicted == [f"{namespace}/{name}"]
        assert real_node.pod(namespace, name) is None  # gone: the kubelet confirmed it
        # nodeapp stops at SIGTERM: well before the 20 s grace period would end
        assert took < 15, f"drain took {took:.1f}s"
        assert real_node.node()["spec"]["unschedulable"] is True
    finally:
        upgrade.cordon(kube, real_node.name, False)


def test_drain_waits_for_a_pod_its_namespace_deletion_removes(real_node, namespace, kube_api):
    """The eviction API refuses every request in a namespace being deleted (403); that
    deletion removes the pod anyway, so drain waits for it, as kubectl drain does."""
    kube = kubelib.Kube(api_client=kube_api)
    # its container lingers 6 s in a preStop hook: still Running while the drain looks
    deployment(
        real_node, namespace, "leaving", {"lifecycle": {"preStop": {"sleep": {"seconds": 6}}}}
    )
    [pod] = only_these_pods_on(real_node, namespace)
    name = pod["metadata"]["name"]
    code, out = real_node.cp.request("DELETE", f"/api/v1/namespaces/{namespace}")
    assert code == 200, out
    wait_for(
        "the pod marked for deletion by its namespace",
        lambda: (real_node.pod(namespace, name) or {}).get("metadata", {}).get("deletionTimestamp"),
    )
    try:
        evicted = upgrade.drain(kube, real_node.name, timeout=60)
        assert evicted == [f"{namespace}/{name}"]
        assert real_node.pod(namespace, name) is None
    finally:
        upgrade.cordon(kube, real_node.name, False)
