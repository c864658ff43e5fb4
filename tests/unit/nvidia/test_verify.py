"""The GPU chain link by link (pass, and each broken link named first), labels and the
RuntimeClass, on a tree of our own and an in-memory cluster (the functional tests do the
same against the real API server)."""

from __future__ import annotations

import time

import pytest

from palplat import nvidia
from palplat.errors import PalplatError
from palplat.model import PalplatPillar
from palplat.nvidia import cluster, runtime, verify
from tests.unit.nvidia import trees
from tests.unit.nvidia.fakekube import FakeKube
from tests.unit.nvidia.test_runtime import write_containerd

NODE = "gpu1"


@pytest.fixture
def node(tmp_path):
    """A healthy one-GPU node: driver loaded, toolkit, k3s started with it, the cluster
    with the RuntimeClass, a Ready plugin pod and 4 nvidia.com/gpu allocatable."""
    c = PalplatPillar.model_validate(
        {
            "k3s": {"root": str(tmp_path / "k3s"), "config": {"node-name": NODE}},
            "gpu": {
                "root": str(tmp_path / "node"),
                "device_plugin": {"time_slicing": {"replicas": 4}},
            },
        }
    )
    trees.tiny_tree(tmp_path / "node", gpus=1)
    trees.toolkit(tmp_path / "node")
    time.sleep(0.02)
    write_containerd(c, nvidia=True)
    k = FakeKube()
    k.add_node(NODE, allocatable=4)
    k.runtime_classes["nvidia"] = cluster.runtime_class_manifest()
    k.add_pod(NODE)
    return c, k, tmp_path


def names(links):
    return [(lk.name, lk.ok) for lk in links]


def test_every_link_holds(node):
    c, k, _ = node
    det = nvidia.detect(c.gpu.root)
    checked = verify.verify(c, det, k, NODE, timeout=0)
    assert names(checked) == [(n, True) for n in verify.LINKS]
    assert verify.expected(c, det) == 4


def broken(c, k, timeout=0):
    with pytest.raises(verify.ChainBroken) as exc:
        verify.verify(c, nvidia.detect(c.gpu.root), k, NODE, timeout=timeout, interval=0.01)
    return exc.value


def test_driver_missing(node):
    c, k, tmp = node
    trees.unload(tmp / "node")
    import shutil

    shutil.rmtree(tmp / "node/lib/modules")
    e = broken(c, k)
    assert e.link.name == "driver"
    assert str(e).startswith("GPU chain broken at 'driver': no nvidia kernel module is installed")
    assert e.links[1].detail == "the nvidia module is not loaded (nor installed)"


def test_module_not_loaded(node):
    c, k, tmp = node
    trees.unload(tmp / "node")
    e = broken(c, k)
    assert e.link.name == "module loaded" and "installed but not loaded" in str(e)


def test_reboot_required(node):
    c, k, tmp = node
    trees.installed(tmp / "node", "580.200.01")
    e = broken(c, k)
    assert e.link.name == "module loaded" and "reboot required" in str(e)
    assert "580.200.01" in str(e) and trees.REF_VERSION in str(e)


def test_toolkit_missing(node):
    c, k, tmp = node
    (tmp / "node/usr/bin/nvidia-container-runtime").unlink()
    assert broken(c, k).link.name == "toolkit"


def test_containerd_runtime_missing(node):
    c, k, _ = node
    write_containerd(c, nvidia=False)
    e = broken(c, k)
    assert e.link.name == "containerd runtime" and "has no nvidia runtime" in str(e)


def test_runtime_class_missing(node):
    c, k, _ = node
    k.runtime_classes.clear()
    e = broken(c, k)
    assert e.link.name == "RuntimeClass" and "does not exist" in str(e)


def test_plugin_pod_missing_or_not_ready(node):
    c, k, _ = node
    k.pods.clear()
    assert "no device plugin pod" in str(broken(c, k))
    k.add_pod(NODE, ready=False)
    e = broken(c, k)
    assert e.link.name == "plugin pod" and "is Pending, not Ready" in str(e)
    k.pods.clear()
    k.add_pod("other-node")
    assert broken(c, k).link.name == "plugin pod"


def test_node_allocatable_wrong(node):
    c, k, _ = node
    k.add_node(NODE, allocatable=1)
    e = broken(c, k)
    assert e.link.name == "node allocatable"
    assert "allocatable 1 (capacity 1), expected 4 = 1 device(s) x 4 time-slicing" in str(e)


def test_waits_for_the_allocatable(node):
    c, k, _ = node
    k.add_node(NODE)  # the kubelet has not reported the device plugin's resource yet
    calls = []

    def progress(phase, message, **kw):
        calls.append(phase)
        if phase == "waiting":
            k.nodes[NODE]["status"] = {"allocatable": {"nvidia.com/gpu": "4"}}

    verify.verify(c, nvidia.detect(c.gpu.root), k, NODE, timeout=5, progress=progress, interval=0)
    assert calls[0] == "start" and calls[-1] == "done" and "waiting" in calls


def test_host_links_fail_without_waiting(node):
    c, k, _ = node
    write_containerd(c, nvidia=False)
    t0 = time.monotonic()
    broken(c, k, timeout=30)
    assert time.monotonic() - t0 < 5


def test_external_k3s_skips_the_containerd_link(node):
    c, k, tmp = node
    ext = c.model_copy(update={"k3s": c.k3s.model_copy(update={"mode": "external"})})
    runtime.containerd_config_path(c).unlink()
    link = verify.host_links(ext, nvidia.detect(c.gpu.root))[3]
    assert (link.name, link.ok) == ("containerd runtime", True)


# ------------------------------------------------------------ label, RuntimeClass


def test_label_idempotent_and_dry_run(node):
    _, k, _ = node
    assert cluster.label(k, NODE, dry_run=True) == {
        "label nvidia.com/gpu.present": {"old": None, "new": "true", "node": NODE}
    }
    assert k.writes == []
    assert cluster.label(k, NODE)["label nvidia.com/gpu.present"]["new"] == "true"
    assert k.nodes[NODE]["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert cluster.label(k, NODE) == {} and len(k.writes) == 1
    with pytest.raises(PalplatError, match="node nope is not registered"):
        cluster.label(k, "nope")


def test_runtime_class_created_only_where_missing(node):
    _, k, _ = node
    assert cluster.ensure_runtime_class(k) == {}  # k3s made it
    k.runtime_classes.clear()
    assert cluster.ensure_runtime_class(k, dry_run=True) and k.runtime_classes == {}
    ch = cluster.ensure_runtime_class(k)
    assert ch == {"RuntimeClass/nvidia": {"old": None, "new": "handler nvidia"}}
    rc = k.runtime_classes["nvidia"]
    assert rc["handler"] == "nvidia" and rc["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    k.runtime_classes["nvidia"] = {**rc, "handler": "runc"}
    with pytest.raises(PalplatError, match="has handler 'runc'"):
        cluster.ensure_runtime_class(k)
