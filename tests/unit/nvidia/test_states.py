"""The palplat_nvidia states with Salt's loader-module test helper: ``auto`` does nothing
on a node without a GPU, package steps go through ``__states__`` (pkgrepo/pkg, faked
here; the functional tests use the real ones), "reboot required" stops the chain, test
mode reports the same changes with result None and writes nothing."""

from __future__ import annotations

import time

import pytest

from _states import palplat_nvidia
from palplat import config
from palplat.nvidia import cluster
from tests.unit.nvidia import trees
from tests.unit.nvidia.fakekube import FakeKube
from tests.unit.nvidia.test_runtime import write_containerd

ARCH = {"os_family": "Arch", "os": "Arch", "osarch": "x86_64", "osrelease": "rolling"}
NODE = "gpu1"


class FakeStates(dict):
    """``__states__`` whose pkg/pkgrepo/helm functions record their calls."""

    def __init__(self, opts, changes=True, result=True):
        super().__init__()
        self.calls = []

        def fn(name):
            def call(*args, **kwargs):
                self.calls.append((name, args, kwargs))
                if not changes:
                    return {"result": True, "changes": {}, "comment": "already"}
                res = None if opts.get("test") else result
                return {"result": res, "changes": {"installed": kwargs.get("pkgs")}, "comment": "x"}

            return call

        for name in (
            "pkg.installed",
            "pkgrepo.managed",
            "palplat_helm.installed",
            "palplat_helm.release",
        ):
            self[name] = fn(name)


@pytest.fixture
def opts():
    return {"test": False, "palplat_plaintext_secrets": True}


@pytest.fixture
def env(tmp_path, opts):
    pillar = {
        "palplat": {
            "k3s": {
                "root": str(tmp_path / "k3s"),
                "service_manager": "processes",
                "config": {"node-name": NODE},
                "kubeconfig": str(tmp_path / "kubeconfig"),
            },
            "gpu": {"root": str(tmp_path / "node"), "verify_timeout": 10},
        }
    }
    (tmp_path / "kubeconfig").write_text("fake")
    kube = FakeKube()
    kube.add_node(NODE)
    context = {"palplat_kube.clients": {str(tmp_path / "kubeconfig"): kube}}
    states = FakeStates(opts)
    return {
        "packages": {},  # pkg.version: name -> installed version
        "pillar": pillar,
        "kube": kube,
        "states": states,
        "context": context,
        "root": tmp_path / "node",
        "tmp": tmp_path,
    }


@pytest.fixture
def configure_loader_modules(env, opts):
    return {
        palplat_nvidia: {
            "__opts__": opts,
            "__pillar__": env["pillar"],
            "__salt__": {"pkg.version": lambda name: env["packages"].get(name, "")},
            "__context__": env["context"],
            "__grains__": ARCH,
            "__states__": env["states"],
        }
    }


STATES = ("driver", "toolkit", "runtime_", "labeled", "device_plugin", "verified")


@pytest.mark.parametrize("test", [False, True])
def test_auto_without_a_gpu_does_nothing(env, opts, test):
    """On a node without a GPU that does not hold the cluster (an agent) nothing at all."""
    opts["test"] = test
    env["pillar"]["palplat"]["k3s"].update(role="agent", server_url="https://s:6443", token="t")
    root = env["root"]
    trees.pci_device(root, "0000:00:01.0", vendor="0x1af4", cls="0x030000")
    for state in STATES:
        ret = getattr(palplat_nvidia, state)()
        assert ret["result"] is True and ret["changes"] == {}, (state, ret)
        assert "nothing to do" in ret["comment"]
    assert env["states"].calls == [] and env["kube"].writes == []


@pytest.mark.parametrize("test", [False, True])
def test_the_holder_without_a_gpu_keeps_the_clusters_gpu_objects(env, opts, test):
    """The device plugin release and the RuntimeClass are the cluster's: the minion that
    holds the cluster converges them in its GPU stage, GPU or not (GPU agents verify
    their allocatable in theirs), and its node's own states do nothing."""
    opts["test"] = test
    trees.pci_device(env["root"], "0000:00:01.0", vendor="0x1af4", cls="0x030000")
    for state in ("driver", "toolkit", "labeled", "verified"):
        ret = getattr(palplat_nvidia, state)()
        assert ret["changes"] == {} and "nothing to do" in ret["comment"], (state, ret)
    ret = palplat_nvidia.runtime_()
    assert set(ret["changes"]) == {"RuntimeClass/nvidia"}, ret
    assert ret["result"] is (None if test else True)
    assert env["kube"].writes == [("apply", "nvidia", test)]  # a dry run in test mode
    ret = palplat_nvidia.device_plugin()
    called = [c[0] for c in env["states"].calls]
    assert called == ["palplat_helm.installed"] + ([] if test else ["palplat_helm.release"])
    # a GPU agent leaves both to the holder
    env["pillar"]["palplat"]["k3s"].update(role="agent", server_url="https://s:6443", token="t")
    trees.tiny_tree(env["root"])
    env["states"].calls.clear()
    ret = palplat_nvidia.device_plugin()
    assert ret["result"] is True and "minion that holds the cluster" in ret["comment"]
    assert env["states"].calls == []


def test_disabled_and_enabled_without_a_gpu(env):
    env["pillar"]["palplat"]["gpu"]["enabled"] = False
    assert "enabled is false" in palplat_nvidia.driver()["comment"]
    env["pillar"]["palplat"]["gpu"]["enabled"] = True
    ret = palplat_nvidia.driver()
    assert ret["result"] is False
    assert "enabled is true but no NVIDIA display device" in ret["comment"]


def test_bad_pillar_fails_before_anything(env):
    env["pillar"]["palplat"]["gpu"]["drivr"] = "x"
    ret = palplat_nvidia.driver()
    assert ret["result"] is False and "did you mean 'driver'" in ret["comment"]
    assert env["states"].calls == []


@pytest.mark.parametrize("test", [False, True])
def test_driver_installs_the_plan_through_salt_states(env, opts, test):
    opts["test"] = test
    trees.tiny_tree(env["root"])
    env["packages"]["nvidia-open"] = "580.159.04-1"  # palplat's package: palplat owns it
    ret = palplat_nvidia.driver()
    assert env["states"].calls == [
        ("pkg.installed", (), {"name": "nvidia-driver", "pkgs": ["nvidia-open", "nvidia-utils"]})
    ]
    assert ret["changes"] == {"nvidia-driver": {"installed": ["nvidia-open", "nvidia-utils"]}}
    if test:
        assert ret["result"] is None and "would then compare" in ret["comment"]
    else:
        assert ret["result"] is True and "nvidia 580.159.04 (open) is loaded" in ret["comment"]


def test_driver_reboot_required_names_both_versions(env):
    trees.tiny_tree(env["root"])
    trees.installed(env["root"], "580.200.01")
    ret = palplat_nvidia.driver()
    assert ret["result"] is False
    assert "reboot required: the installed nvidia module is 580.200.01" in ret["comment"]
    assert "the loaded one is 580.159.04" in ret["comment"]
    assert "never reboots" in ret["comment"]


def test_driver_installed_not_loaded(env):
    trees.tiny_tree(env["root"])
    trees.unload(env["root"])
    ret = palplat_nvidia.driver()
    assert ret["result"] is False and "is installed" in ret["comment"]
    assert "but not loaded" in ret["comment"]


def test_driver_failing_package_stops(env):
    trees.tiny_tree(env["root"])
    trees.unload(env["root"])  # a bare host: auto installs
    env["states"]["pkg.installed"] = lambda **kw: {
        "result": False,
        "changes": {},
        "comment": "E: Unable to locate package nvidia-open",
    }
    ret = palplat_nvidia.driver()
    assert ret["result"] is False and "Unable to locate package" in ret["comment"]


def test_toolkit(env, opts):
    trees.tiny_tree(env["root"])
    ret = palplat_nvidia.toolkit()
    assert ret["result"] is False and "nvidia-container-runtime is not in" in ret["comment"]
    trees.toolkit(env["root"])
    ret = palplat_nvidia.toolkit()
    assert ret["result"] is True
    assert "/usr/bin/nvidia-container-runtime is installed" in ret["comment"]
    env["pillar"]["palplat"]["gpu"]["container_toolkit"] = False
    n = len(env["states"].calls)
    ret = palplat_nvidia.toolkit()
    assert ret["result"] is True and "not managed (found /usr/bin" in ret["comment"]
    assert len(env["states"].calls) == n


def _cfg(env):
    return config.load(env["pillar"])


@pytest.mark.parametrize("test", [True, False])
def test_runtime_restart_gating_and_runtime_class(env, opts, monkeypatch, test):
    opts["test"] = test
    trees.tiny_tree(env["root"])
    cfg = _cfg(env)
    write_containerd(cfg, nvidia=False)
    trees.toolkit(env["root"])
    applied = []
    monkeypatch.setattr(
        palplat_nvidia.runtime, "apply", lambda cfg, p, progress=None: applied.append(p)
    )
    ret = palplat_nvidia.runtime_()
    assert set(ret["changes"]) == {"k3s", "RuntimeClass/nvidia"}
    why = ret["changes"]["k3s"]["why"]
    assert "k3s started before nvidia-container-runtime was installed" in why
    if test:
        assert ret["result"] is None and "would restart k3s" in ret["comment"]
        assert applied == [] and env["kube"].runtime_classes == {}
    else:
        assert ret["result"] is True and len(applied) == 1
        assert env["kube"].runtime_classes["nvidia"]["handler"] == "nvidia"


def test_runtime_nothing_to_do(env, opts):
    opts["test"] = True
    trees.tiny_tree(env["root"])
    trees.toolkit(env["root"])
    time.sleep(0.02)
    write_containerd(_cfg(env), nvidia=True)
    env["kube"].runtime_classes["nvidia"] = cluster.runtime_class_manifest()
    ret = palplat_nvidia.runtime_()
    assert ret["result"] is True and ret["changes"] == {}


def test_runtime_test_mode_on_a_bare_host(env, opts):
    opts["test"] = True
    trees.tiny_tree(env["root"])
    ret = palplat_nvidia.runtime_()
    assert ret["result"] is None and "once it does" in ret["comment"]
    assert ret["changes"] == {}  # no change claimed that the real run may not make


@pytest.mark.parametrize("test", [True, False])
def test_labeled(env, opts, test):
    opts["test"] = test
    trees.tiny_tree(env["root"])
    ret = palplat_nvidia.labeled()
    assert ret["changes"] == {
        "label nvidia.com/gpu.present": {"old": None, "new": "true", "node": NODE}
    }
    assert ret["result"] is (None if test else True)
    labels = env["kube"].nodes[NODE]["metadata"]["labels"]
    assert labels.get("nvidia.com/gpu.present") == (None if test else "true")
    if not test:
        again = palplat_nvidia.labeled()
        assert again["result"] is True and again["changes"] == {}


@pytest.mark.parametrize("test", [True, False])
def test_device_plugin_goes_through_the_helm_states(env, opts, test):
    opts["test"] = test
    trees.tiny_tree(env["root"])
    ret = palplat_nvidia.device_plugin()
    called = [c[0] for c in env["states"].calls]
    if test:  # helm would be installed first: the release is planned after that
        assert called == ["palplat_helm.installed"] and ret["result"] is None
        assert "would then converge the nvidia-device-plugin release" in ret["comment"]
    else:
        assert called == ["palplat_helm.installed", "palplat_helm.release"]
        assert env["states"].calls[1][1] == ("nvidia-device-plugin",)
        assert ret["result"] is True and "helm" in ret["changes"]


@pytest.mark.parametrize("test", [True, False])
def test_verified(env, opts, monkeypatch, test):
    opts["test"] = test
    real = palplat_nvidia.verify.verify
    monkeypatch.setattr(
        palplat_nvidia.verify, "verify", lambda *a, **kw: real(*a, **kw, timeout=0.1, interval=0)
    )
    trees.tiny_tree(env["root"])
    trees.toolkit(env["root"])
    time.sleep(0.02)
    cfg = _cfg(env)
    write_containerd(cfg, nvidia=True)
    k = env["kube"]
    k.runtime_classes["nvidia"] = cluster.runtime_class_manifest()
    k.add_pod(NODE)
    ret = palplat_nvidia.verified()
    if test:
        assert ret["result"] is None and "now broken at 'node allocatable'" in ret["comment"]
        assert ret["changes"] == {}  # as the real run: it waits, it changes nothing
    else:
        assert ret["result"] is False
        assert "GPU chain broken at 'node allocatable'" in ret["comment"]
    k.nodes[NODE]["status"] = {"allocatable": {"nvidia.com/gpu": "1"}}
    ret = palplat_nvidia.verified()
    assert ret["result"] is True and "offers 1 nvidia.com/gpu" in ret["comment"]
