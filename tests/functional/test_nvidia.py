"""The GPU stage through Salt's loader against real things:

- this machine's real package manager (Debian 12): the driver and toolkit plan through
  Salt's own ``pkgrepo.managed`` / ``pkg.installed`` in test mode (nothing changes);
- the test control plane (a real kube-apiserver): node label, RuntimeClass, the device
  plugin release (the real chart, through ``palplat_helm``), and the allocatable check,
  with node and pod status set as a kubelet would;
- the stand-in k3s (tests/support/fake_k3s), which writes k3s's containerd config with the
  nvidia runtime only when it finds ``nvidia-container-runtime`` at start: the restart
  gating, the RuntimeClass k3s did not create, the default-runtime drop-in.

The node's hardware is a tree under ``palplat:gpu:root`` (tests/unit/nvidia/trees.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from palplat import config, nvidia, units
from palplat.nvidia import runtime
from tests.conftest import SHARED
from tests.support import testenv
from tests.support.saltenv import REPO
from tests.unit.nvidia import trees

CHART = SHARED / "reference" / "charts" / "nvidia-device-plugin-0.20.0.tgz"
K3S_VERSION = "v1.33.5+k3s1"
PLUGIN = "nvidia-device-plugin"


class Minion:
    """One Salt minion's loaders (this repo's modules, states and library), its pillar
    and a GPU node tree under ``base/node``."""

    def __init__(self, base: Path, name: str, extra_opts: dict | None = None):
        import salt.config
        from saltfactories.utils.functional import Loaders

        self.base = base
        self.node = base / "node"
        for d in ("pillar", "cache", "node"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "pillar" / "top.sls").write_text("base:\n  '*':\n    - palplat\n")
        self.set_pillar({}, reload=False)
        opts = salt.config.minion_config(None)
        opts["palplat_plaintext_secrets"] = True  # test pillars hold plain text
        opts.update(
            id=name,
            root_dir=str(base),
            cachedir=str(base / "cache"),
            pki_dir=str(base / "pki"),
            sock_dir=str(base / "sock"),
            extension_modules=str(base / "extmods"),
            log_file=str(base / "minion.log"),
            file_client="local",
            file_roots={"base": [str(REPO / "salt")]},
            pillar_roots={"base": [str(base / "pillar")]},
            utils_dirs=[str(REPO / "_utils")],
            module_dirs=[str(REPO / "_modules")],
            states_dirs=[str(REPO / "_states")],
            **(extra_opts or {}),
        )
        self.loaders = Loaders(opts)

    def set_pillar(self, palplat: dict, reload: bool = True) -> None:
        (self.base / "pillar" / "palplat.sls").write_text(yaml.safe_dump({"palplat": palplat}))
        if reload:
            self.loaders.reload_all()

    def state(self, fun: str, name: str, test: bool = False) -> dict:
        ret = getattr(self.loaders.states.palplat_nvidia, fun)(name, test=test)
        return ret.full_return if hasattr(ret, "full_return") else ret

    def sls(self, test: bool = False) -> dict:
        ret = self.loaders.modules.state.sls("palplat.gpu", test=test)
        ret = getattr(ret, "raw", ret)
        assert isinstance(ret, dict), ret
        return {v["__id__"].replace("palplat-gpu-", ""): v for v in ret.values()}


def _debian12(grains) -> bool:
    return grains.get("os") == "Debian" and str(grains.get("osmajorrelease")) == "12"


# ------------------------------------------------------ packages, real apt, test mode


@pytest.fixture(scope="module")
def pkg_minion(tmp_path_factory):
    m = Minion(tmp_path_factory.mktemp("gpu-pkg"), "gpu-pkg")
    if not _debian12(m.loaders.grains):
        pytest.skip("the package-state tests run on Debian 12 (this machine's OS)")
    return m


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    """A real OpenPGP key (gpg) standing in for NVIDIA's: its URL and fingerprint."""
    gnupg = pytest.importorskip("gnupg")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    g = gnupg.GPG(gnupghome=str(home))
    key = g.gen_key(
        g.gen_key_input(name_real="gpu key", key_type="RSA", key_length=2048, no_protection=True)
    )
    path = home / "gpgkey"
    path.write_text(g.export_keys(key.fingerprint))
    return f"file://{path}", key.fingerprint


def apt_files() -> set[str]:
    return set(os.listdir("/etc/apt/sources.list.d")) | set(os.listdir("/usr/share/keyrings"))


@pytest.mark.salt
def test_debian_plan_through_salts_pkg_states_in_test_mode(pkg_minion):
    before = apt_files()
    plan = nvidia.packages.plan(config.load({}).gpu, pkg_minion.loaders.grains)
    assert plan.os == "debian12"
    for step in plan.driver + plan.toolkit:
        if step.state == "keyring":
            continue
        mod, fun = step.state.split(".")
        ret = getattr(getattr(pkg_minion.loaders.states, mod), fun)(test=True, **step.kwargs)
        assert ret.result is None, (step.id, ret.full_return)
        if step.state == "pkg.installed":
            assert "would be installed" in ret.comment
            assert set(step.kwargs["pkgs"]) <= set(ret.changes)
        else:
            assert "would be configured" in ret.comment
            assert ret.changes == {"repo": step.kwargs["name"]}
    assert apt_files() == before


@pytest.mark.salt
def test_driver_and_toolkit_states_in_test_mode(pkg_minion, signing_key):
    url, fpr = signing_key
    trees.tiny_tree(pkg_minion.node)
    gpu = {"root": str(pkg_minion.node), "toolkit_repo": {"key_url": url, "key_fingerprint": fpr}}
    pkg_minion.set_pillar({"gpu": gpu})
    mod = pkg_minion.loaders.modules.palplat_nvidia
    det = mod.detect()
    assert det["present"] and det["stage"]["active"] and len(det["devices"]) == 1
    assert det["module"]["loaded"]["version"] == trees.REF_VERSION
    assert mod.plan()["os"] == "debian12"
    st = mod.status()
    assert st["gpus"][0]["model"] == trees.REF_MODEL and st["nvidia_smi"] == "not found"
    assert "cluster" in st  # no cluster here: reported, not raised
    before = apt_files()
    # auto: the loaded driver did not come from Debian's package (real pkg.version): alone
    drv = pkg_minion.state("driver", "nvidia-driver", test=True)
    assert drv["result"] is True and drv["changes"] == {}, drv
    assert "not installed from nvidia-open-kernel-dkms" in drv["comment"]
    assert "palplat leaves it alone" in drv["comment"]
    # palplat owns the driver: Salt's real pkgrepo/pkg states plan the packages
    gpu["driver_managed"] = "palplat"
    pkg_minion.set_pillar({"gpu": gpu})
    drv = pkg_minion.state("driver", "nvidia-driver", test=True)
    assert drv["result"] is None, drv
    assert set(drv["changes"]) == {"debian-non-free", "nvidia-driver"}
    assert "nvidia-open-kernel-dkms" in drv["changes"]["nvidia-driver"]
    assert "would then compare the installed nvidia module" in drv["comment"]
    tk = pkg_minion.state("toolkit", "nvidia-container-toolkit", test=True)
    assert tk["result"] is None, tk
    assert set(tk["changes"]) == {
        "nvidia-container-toolkit-key",
        "nvidia-container-toolkit-repo",
        "nvidia-container-toolkit",
    }
    assert tk["changes"]["nvidia-container-toolkit-key"]["keyring"]["new"] == fpr
    assert apt_files() == before
    assert not (pkg_minion.node / "usr/share/keyrings").exists()
    # the real pinned fingerprint refuses this key, in test mode too
    pkg_minion.set_pillar({"gpu": {**gpu, "toolkit_repo": {"key_url": url}}})
    tk = pkg_minion.state("toolkit", "nvidia-container-toolkit", test=True)
    assert (
        tk["result"] is False
        and "not the pinned C95B321B61E88C1809C4F759DDCAE044F796ECB0" in (tk["comment"])
    )


AGENT = {"mode": "install", "role": "agent", "server_url": "https://10.0.0.1:6443",
         "token": "t0k3n-agent"}  # fmt: skip


@pytest.mark.salt
@pytest.mark.parametrize("test", [True, False])
def test_gpu_sls_on_a_node_without_a_gpu_does_nothing(tmp_path, test):
    """An agent without a GPU: every state of the GPU stage has nothing to do."""
    m = Minion(tmp_path, "no-gpu")
    trees.pci_device(m.node, "0000:00:02.0", vendor="0x1af4", cls="0x030000")
    m.set_pillar({"gpu": {"root": str(m.node)}, "k3s": AGENT})
    rets = m.sls(test=test)
    assert set(rets) == {"valid", "driver", "toolkit", "runtime", "node-label"} | {
        "device-plugin",
        "verified",
    }
    for sid, r in rets.items():
        assert r["result"] is True and r["changes"] == {}, (sid, r)
        if sid != "valid":
            assert "nothing to do on this node" in r["comment"], (sid, r)


@pytest.mark.salt
def test_gpu_sls_plan_on_the_holder_without_a_gpu_keeps_the_cluster_objects(tmp_path):
    """The minion that holds the cluster converges its RuntimeClass and device plugin
    release whether or not it has a GPU itself (docs/k3s.md): before the cluster is up the
    plan says it will check them, and nothing on the node is touched."""
    m = Minion(tmp_path, "no-gpu-holder")
    trees.pci_device(m.node, "0000:00:02.0", vendor="0x1af4", cls="0x030000")
    m.set_pillar({"gpu": {"root": str(m.node)}, "k3s": {"mode": "external"}})
    rets = m.sls(test=True)
    for sid in ("driver", "toolkit", "node-label"):
        assert rets[sid]["changes"] == {} and "nothing to do on this node" in rets[sid]["comment"]
    rt = rets["runtime"]
    assert rt["changes"] == {} and rt["result"] is True, rt
    assert "would check the nvidia RuntimeClass once the cluster is up" in rt["comment"]
    assert "in place" not in rt["comment"], rt


# ----------------------------------------------------------- against the API server


def make_node(kube_api, name: str, gpus: int | None = None) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=name)))
    if gpus is not None:
        set_allocatable(kube_api, name, gpus)


@pytest.fixture
def gpu_node(kube_api):
    """A Node object named gpu-<random>, deleted afterwards: the control plane is shared by
    the whole session, and a node left behind shows up NotReady in every later status."""
    from kubernetes import client

    name = f"gpu-{uuid.uuid4().hex[:6]}"
    make_node(kube_api, name)
    yield name
    try:
        client.CoreV1Api(kube_api).delete_node(name)
    except client.ApiException:
        pass


def set_allocatable(kube_api, name: str, n: int) -> None:
    """What the kubelet reports once the device plugin registered its devices."""
    from kubernetes import client

    n = str(n)
    client.CoreV1Api(kube_api).patch_node_status(
        name,
        {"status": {"capacity": {"nvidia.com/gpu": n}, "allocatable": {"nvidia.com/gpu": n}}},
    )


def plugin_pod(kube_api, ns: str, node: str, ready: bool = True) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    name = f"ndp-{uuid.uuid4().hex[:5]}"
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {
                "name": name,
                "labels": {"app.kubernetes.io/name": "nvidia-device-plugin"},
            },
            "spec": {"nodeName": node, "containers": [{"name": "p", "image": "nvcr.io/x:1"}]},
        },
    )
    status = "True" if ready else "False"
    core.patch_namespaced_pod_status(
        name,
        ns,
        {
            "status": {
                "phase": "Running" if ready else "Pending",
                "conditions": [{"type": "Ready", "status": status}],
            }
        },
    )


@pytest.fixture
def cp_minion(tmp_path, kubeconfig, helm_bin, namespace):
    m = Minion(tmp_path, "gpu-cp", extra_opts={"palplat.helm_bin": helm_bin})
    yield m
    # the release's cluster-scoped objects outlive its namespace: uninstall it
    subprocess.run(  # noqa: S603
        [helm_bin, "uninstall", PLUGIN, "-n", namespace, "--kubeconfig", kubeconfig],
        capture_output=True,
        check=False,
        timeout=120,
    )


def cp_pillar(m, kubeconfig, node, ns, **gpu):
    return {
        "k3s": {
            "mode": "external",
            "kubeconfig": kubeconfig,
            "root": str(m.base / "k3s"),
            "config": {"node-name": node},
        },
        "gpu": {
            "root": str(m.node),
            "verify_timeout": 10,
            "device_plugin": {
                "namespace": ns,
                "time_slicing": {"replicas": 4},
                "chart": {"path": str(CHART)},
            },
            **gpu,
        },
    }


@pytest.mark.salt
@pytest.mark.controlplane
@pytest.mark.helm
def test_chain_against_the_api_server(cp_minion, kube_api, kubeconfig, namespace, gpu_node):
    from kubernetes import client

    if not CHART.exists():
        pytest.skip(f"{CHART} is absent (shared/reference/charts)")
    m = cp_minion
    node = gpu_node
    trees.tiny_tree(m.node, gpus=2)
    trees.toolkit(m.node)
    m.set_pillar(cp_pillar(m, kubeconfig, node, namespace))
    nodes = client.CoreV1Api(kube_api)
    rcs = client.NodeV1Api(kube_api)
    try:
        rcs.delete_runtime_class("nvidia")
    except client.ApiException:
        pass

    # RuntimeClass: the k3s version did not create it -> palplat does, once
    plan = m.state("runtime", "k3s-nvidia-runtime", test=True)
    assert plan["result"] is None and set(plan["changes"]) == {"RuntimeClass/nvidia"}
    with pytest.raises(client.ApiException):
        rcs.read_runtime_class("nvidia")
    ret = m.state("runtime", "k3s-nvidia-runtime")
    assert ret["result"] is True and ret["changes"] == plan["changes"]
    assert rcs.read_runtime_class("nvidia").handler == "nvidia"
    assert m.state("runtime", "k3s-nvidia-runtime")["changes"] == {}

    # label: only this node, idempotent
    plan = m.state("labeled", "nvidia.com/gpu.present", test=True)
    assert plan["result"] is None and "label nvidia.com/gpu.present" in plan["changes"]
    assert "nvidia.com/gpu.present" not in (nodes.read_node(node).metadata.labels or {})
    assert m.state("labeled", "nvidia.com/gpu.present")["result"] is True
    assert nodes.read_node(node).metadata.labels["nvidia.com/gpu.present"] == "true"
    assert m.state("labeled", "nvidia.com/gpu.present")["changes"] == {}

    # the device plugin: the real chart through palplat_helm, with palplat's values
    ret = m.state("device_plugin", "nvidia-device-plugin")
    assert ret["result"] is True, ret
    ds = client.AppsV1Api(kube_api).list_namespaced_daemon_set(namespace).items
    [plugin] = [d for d in ds if d.metadata.name == "nvidia-device-plugin"]
    spec = plugin.spec.template.spec
    assert spec.runtime_class_name == "nvidia"
    assert spec.node_selector == {"nvidia.com/gpu.present": "true"}
    cms = client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items
    sharing = [c for c in cms if "default" in (c.data or {})]
    assert '"replicas": 4' in sharing[0].data["default"]
    again = m.state("device_plugin", "nvidia-device-plugin")
    assert again["result"] is True and again["changes"] == {}, again

    # verify: no pod yet -> broken at 'plugin pod' after the timeout
    t0 = time.monotonic()
    ret = m.state("verified", "nvidia.com/gpu")
    assert ret["result"] is False and time.monotonic() - t0 >= 9
    assert "GPU chain broken at 'plugin pod'" in ret["comment"]
    plugin_pod(kube_api, namespace, node, ready=False)
    broken = _links(m, kubeconfig)
    assert broken["first_broken"] == "plugin pod" and "Pending, not Ready" in json.dumps(broken)
    plugin_pod(kube_api, namespace, node, ready=True)
    assert _links(m, kubeconfig)["first_broken"] == "node allocatable"
    set_allocatable(kube_api, node, 3)
    links = _links(m, kubeconfig)
    assert links["first_broken"] == "node allocatable" and links["expected"] == 8
    set_allocatable(kube_api, node, 8)
    ret = m.state("verified", "nvidia.com/gpu")
    assert ret["result"] is True and "offers 8 nvidia.com/gpu" in ret["comment"], ret
    # the status table reads the node's allocatable
    st = m.loaders.modules.palplat_nvidia.status()
    assert [r["allocatable"] for r in st["gpus"]] == [4, 4] and st["node_allocatable"] == 8

    # RuntimeClass deleted -> that link is named first
    rcs.delete_runtime_class("nvidia")
    assert _links(m, kubeconfig)["first_broken"] == "RuntimeClass"
    # a k3s-made RuntimeClass (no palplat labels) is left alone
    rcs.create_runtime_class({"metadata": {"name": "nvidia"}, "handler": "nvidia"})
    assert m.state("runtime", "k3s-nvidia-runtime")["changes"] == {}
    assert "app.kubernetes.io/managed-by" not in (
        rcs.read_runtime_class("nvidia").metadata.labels or {}
    )
    # host links: a containerd config without the runtime, then no toolkit
    cfg = config.load(yaml.safe_load((m.base / "pillar/palplat.sls").read_text()))
    path = runtime.containerd_config_path(cfg)
    path.parent.mkdir(parents=True)
    path.write_text("version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd]\n")
    assert _links(m, kubeconfig)["first_broken"] == "containerd runtime"
    (m.node / "usr/bin/nvidia-container-runtime").unlink()
    assert _links(m, kubeconfig)["first_broken"] == "toolkit"
    ret = m.state("verified", "nvidia.com/gpu")
    assert ret["result"] is False and "GPU chain broken at 'toolkit'" in ret["comment"]


@pytest.mark.salt
@pytest.mark.controlplane
@pytest.mark.helm
def test_gpu_sls_plan_on_a_gpu_node(
    cp_minion, kube_api, kubeconfig, namespace, signing_key, gpu_node
):
    """state.sls palplat.gpu test=True: every state plans (result None) through the
    requisite chain, with real apt and the real API server, and nothing changes."""
    from kubernetes import client

    if not _debian12(cp_minion.loaders.grains) or not CHART.exists():
        pytest.skip("needs Debian 12 (real apt) and shared/reference/charts")
    m = cp_minion
    node = gpu_node
    trees.tiny_tree(m.node)
    url, fpr = signing_key
    m.set_pillar(
        cp_pillar(
            m,
            kubeconfig,
            node,
            namespace,
            toolkit_repo={"key_url": url, "key_fingerprint": fpr},
            driver_managed="palplat",  # the driver's packages through real apt, as a plan
        )
    )
    before = apt_files()
    rets = m.sls(test=True)
    results = {sid: r["result"] for sid, r in rets.items()}
    assert results == {
        "valid": True,
        "driver": None,
        "toolkit": None,
        "runtime": results["runtime"],  # None unless a RuntimeClass exists already
        "node-label": None,
        "device-plugin": None,
        "verified": None,
    }, json.dumps(rets, indent=1, default=str)
    assert "would converge" in rets["device-plugin"]["comment"]
    assert "now broken at 'toolkit'" in rets["verified"]["comment"]
    assert apt_files() == before
    assert "nvidia.com/gpu.present" not in (
        client.CoreV1Api(kube_api).read_node(node).metadata.labels or {}
    )
    assert client.AppsV1Api(kube_api).list_namespaced_daemon_set(namespace).items == []


def _links(m, kubeconfig):
    return m.loaders.modules.palplat_nvidia.check()


# ------------------------------------------------------------ the stand-in k3s


@pytest.fixture(scope="module")
def releases():
    from tests.support.fake_k3s import ReleaseServer

    if testenv.missing_bins():
        pytest.skip(f"{', '.join(testenv.missing_bins())} not built: run tools/build-testbin")
    with ReleaseServer() as rs:
        rs.add_release(K3S_VERSION)
        yield rs


@pytest.mark.salt
@pytest.mark.controlplane
@pytest.mark.slow
def test_k3s_restart_gating_with_the_stand_in(tmp_path, releases, monkeypatch):
    from kubernetes import client
    from kubernetes import config as kconfig

    m = Minion(tmp_path, "gpu-k3s")
    # the stand-in finds nvidia-container-runtime on its PATH, as k3s does
    monkeypatch.setenv("PATH", f"{m.node / 'usr/bin'}:{os.environ['PATH']}")
    trees.tiny_tree(m.node)
    k3s = {
        "version": K3S_VERSION,
        "token": "gpu-" + uuid.uuid4().hex,
        "root": str(tmp_path / "fs"),
        "service_manager": "processes",
        "source": {"url": releases.url},
        "ready_timeout": 120,
        "config": {"node-name": "gpu-k3s"},
    }
    m.set_pillar({"k3s": k3s, "gpu": {"root": str(m.node)}})
    sm = units.Processes(tmp_path / "fs")
    try:
        rets = m.loaders.modules.state.sls("palplat.k3s")
        rets = getattr(rets, "raw", rets)
        assert all(r["result"] is True for r in rets.values()), rets
        assert sm.events("k3s.service") == ["start"]
        cfg = config.load(yaml.safe_load((tmp_path / "pillar/palplat.sls").read_text()))
        assert not runtime.read_containerd(cfg).has_nvidia

        # no toolkit: the runtime state fails naming it, and restarts nothing
        ret = m.state("runtime", "k3s-nvidia-runtime")
        assert (
            ret["result"] is False
            and "nvidia-container-runtime is not installed" in (ret["comment"])
        )
        # the toolkit appears after k3s started: one restart (plan first)
        trees.toolkit(m.node)
        plan = m.state("runtime", "k3s-nvidia-runtime", test=True)
        assert plan["result"] is None
        assert "k3s started before nvidia-container-runtime" in plan["changes"]["k3s"]["why"]
        assert sm.events("k3s.service") == ["start"]
        ret = m.state("runtime", "k3s-nvidia-runtime")
        assert ret["result"] is True, ret
        assert ret["changes"]["k3s"] == plan["changes"]["k3s"]
        assert "RuntimeClass/nvidia" in ret["changes"]  # the stand-in made none
        assert sm.events("k3s.service") == ["start", "stop", "start"]
        cd = runtime.read_containerd(cfg)
        assert cd.runtimes["nvidia"] == str(m.node / "usr/bin/nvidia-container-runtime")
        # nothing changed since: no restart, in test mode neither
        assert m.state("runtime", "k3s-nvidia-runtime", test=True)["changes"] == {}
        assert m.state("runtime", "k3s-nvidia-runtime")["changes"] == {}
        assert sm.events("k3s.service") == ["start", "stop", "start"]
        # the toolkit is upgraded (a new file): one more restart
        time.sleep(0.05)
        trees.toolkit(m.node).unlink()
        trees.toolkit(m.node)
        ret = m.state("runtime", "k3s-nvidia-runtime")
        assert "changed after k3s started" in ret["changes"]["k3s"]["why"], ret
        assert sm.events("k3s.service") == ["start", "stop", "start", "stop", "start"]
        # default-runtime: nvidia through the drop-in
        m.set_pillar({"k3s": k3s, "gpu": {"root": str(m.node), "default_runtime": True}})
        ret = m.state("runtime", "k3s-nvidia-runtime")
        assert ret["result"] is True and set(ret["changes"]) == {"dropin", "k3s"}, ret
        assert runtime.read_containerd(cfg).default_runtime == "nvidia"
        assert m.state("runtime", "k3s-nvidia-runtime")["changes"] == {}
        assert len(sm.events("k3s.service")) == 7

        # label, pod and allocatable on the stand-in's node: the chain holds
        assert m.state("labeled", "nvidia.com/gpu.present")["result"] is True
        api = kconfig.new_client_from_config(config_file=config.kubeconfig_path(cfg))
        try:
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": "nvidia-device-plugin"}})
            plugin_pod(api, "nvidia-device-plugin", "gpu-k3s")
            set_allocatable(api, "gpu-k3s", 1)
            ret = m.state("verified", "nvidia.com/gpu")
            assert ret["result"] is True, ret
            labels = core.read_node("gpu-k3s").metadata.labels
            assert labels["nvidia.com/gpu.present"] == "true"
        finally:
            api.close()
    finally:
        sm.stop("k3s.service")
