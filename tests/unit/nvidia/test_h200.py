"""The three findings of the live H200 run (issue 21), on that recorded host
(``shared/reference/gpu/h200-ubuntu-24.04``: the open module 580.159.04 loaded and working,
no driver package in ``dpkg-nvidia.txt``, no network, no k3s yet):

- the driver palplat did not install is recognised and left alone (and said so), with
  ``palplat:gpu:driver_managed`` as the explicit choice;
- a plan without network does not fail on the toolkit's signing key: it says what the real
  run would do and marks the key as not verified;
- ``palplat_nvidia.check`` before k3s runs gives the host links, then "k3s not running yet".
"""

from __future__ import annotations

import shutil

import pytest

from _modules import palplat_nvidia as nvidia_mod
from _states import palplat_nvidia
from tests.conftest import SHARED
from tests.unit.nvidia.fakekube import FakeKube
from tests.unit.nvidia.test_states import FakeStates

H200 = SHARED / "reference" / "gpu" / "h200-ubuntu-24.04"
UBUNTU = {
    "os_family": "Debian",
    "os": "Ubuntu",
    "osrelease": "24.04",
    "osmajorrelease": 24,
    "oscodename": "noble",
    "osarch": "amd64",
}
NODE = "h200"
UNREACHABLE = "http://127.0.0.1:9/gpgkey"  # discard port: nothing listens


def dpkg_versions() -> dict[str, str]:
    """name -> version of the installed packages in the recorded ``dpkg -l`` lines."""
    out = {}
    for line in (H200 / "dpkg-nvidia.txt").read_text().splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] in ("ii", "hi"):
            out[f[1].split(":")[0]] = f[2]
    return out


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def env(tmp_path, opts):
    if not (H200 / "root").is_dir():
        pytest.skip(f"{H200} is absent (shared/ is REPO.parent/'shared'): no recorded H200 host")
    root = tmp_path / "node"
    shutil.copytree(H200 / "root", root, copy_function=shutil.copyfile)
    pillar = {
        "palplat": {
            "k3s": {
                "root": str(tmp_path / "k3s"),
                "service_manager": "processes",
                "config": {"node-name": NODE},
                "kubeconfig": str(tmp_path / "kubeconfig"),  # absent: k3s not running yet
            },
            "gpu": {"root": str(root), "toolkit_repo": {"key_url": UNREACHABLE}},
        }
    }
    packages = dpkg_versions()
    return {
        "pillar": pillar,
        "packages": packages,
        "states": FakeStates(opts),
        "context": {},
        "root": root,
        "tmp": tmp_path,
    }


@pytest.fixture
def configure_loader_modules(env, opts):
    globs = {
        "__opts__": opts,
        "__pillar__": env["pillar"],
        "__salt__": {"pkg.version": lambda name: env["packages"].get(name, "")},
        "__context__": env["context"],
        "__grains__": UBUNTU,
    }
    return {
        palplat_nvidia: {**globs, "__states__": env["states"]},
        nvidia_mod: dict(globs),
    }


def test_recorded_host_has_no_driver_package(env):
    pkgs = env["packages"]
    assert "libnccl2" in pkgs  # CUDA's packages are installed from apt...
    # ... but not the driver
    assert not [p for p in pkgs if p.startswith(("nvidia-driver", "nvidia-utils"))]


@pytest.mark.parametrize("test", [True, False])
def test_a_driver_palplat_did_not_install_is_left_alone(env, opts, test):
    opts["test"] = test
    ret = palplat_nvidia.driver()
    assert env["states"].calls == []  # no pkg.installed over the working driver
    assert ret["result"] is True and ret["changes"] == {}
    assert (
        "nvidia 580.159.04 (open) is loaded and healthy but was not installed from "
        "nvidia-driver-580-open" in ret["comment"]
    )
    assert "palplat leaves it alone" in ret["comment"]


def test_the_plan_says_who_owns_the_driver(env):
    plan = nvidia_mod.plan()
    assert plan["driver"] == [] and plan["driver_owner"]["managed_by"] == "external"
    assert plan["driver_owner"]["packages"] == {"nvidia-driver-580-open": None}
    assert "leaves it alone" in plan["driver_owner"]["reason"]
    assert [s["id"] for s in plan["toolkit"]] == [
        "nvidia-container-toolkit-key",
        "nvidia-container-toolkit-repo",
        "nvidia-container-toolkit",
    ]


def test_driver_managed_external_and_palplat(env, opts):
    env["pillar"]["palplat"]["gpu"]["driver_managed"] = "external"
    env["pillar"]["palplat"]["gpu"]["driver_branch"] = "570"  # not enforced when external
    ret = palplat_nvidia.driver()
    assert ret["result"] is True and env["states"].calls == []
    assert "driver_managed is external" in ret["comment"]
    assert "its branch is 580, palplat:gpu:driver_branch is 570: not enforced" in ret["comment"]
    env["pillar"]["palplat"]["gpu"]["driver_managed"] = "palplat"
    env["pillar"]["palplat"]["gpu"]["driver_branch"] = "580"
    opts["test"] = True
    ret = palplat_nvidia.driver()
    assert env["states"].calls == [
        (
            "pkg.installed",
            (),
            {"name": "nvidia-driver", "pkgs": ["nvidia-driver-580-open", "nvidia-utils-580"]},
        )
    ]
    assert ret["result"] is None
    assert (
        "the packages will conflict with it (set palplat:gpu:driver_managed: external"
        in ret["comment"]
    )


def test_auto_refuses_to_guess_over_another_branch(env):
    env["pillar"]["palplat"]["gpu"]["driver_branch"] = "570"
    ret = palplat_nvidia.driver()
    assert ret["result"] is False and env["states"].calls == []
    assert "its branch is 580, palplat:gpu:driver_branch is 570" in ret["comment"]
    assert "set palplat:gpu:driver_managed: external to keep it" in ret["comment"]


def test_auto_installs_where_the_package_is_there_or_nothing_is_loaded(env, opts):
    opts["test"] = True
    env["packages"]["nvidia-driver-580-open"] = "580.159.04-0ubuntu1"
    ret = palplat_nvidia.driver()
    assert len(env["states"].calls) == 1 and "is installed: palplat owns" in ret["comment"]
    del env["packages"]["nvidia-driver-580-open"]
    shutil.rmtree(env["root"] / "proc/driver/nvidia")  # a bare host
    ret = palplat_nvidia.driver()
    assert len(env["states"].calls) == 2 and "no nvidia driver is loaded" in ret["comment"]


def test_plan_without_network_marks_the_key_unverified(env, opts):
    opts["test"] = True
    ret = palplat_nvidia.toolkit()
    assert ret["result"] is None, ret
    key = ret["changes"]["nvidia-container-toolkit-key"]["keyring"]
    assert key["verified"].startswith("no") and key["source"] == UNREACHABLE
    assert key["new"] == "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
    assert "NOT VERIFIED in this plan: cannot download" in ret["comment"]
    assert "installs it only if its fingerprint is the pinned" in ret["comment"]
    # the plan goes on with the repository and the package
    assert [c[0] for c in env["states"].calls] == ["pkgrepo.managed", "pkg.installed"]
    assert not (env["root"] / "usr/share/keyrings").exists()


def test_real_run_without_network_fails_and_names_the_mirror(env):
    ret = palplat_nvidia.toolkit()
    assert ret["result"] is False and env["states"].calls == []
    assert "cannot download" in ret["comment"]
    assert "point palplat:gpu:toolkit_repo:key_url (and url) at a mirror" in ret["comment"]


def test_check_before_k3s_runs(env):
    out = nvidia_mod.check()
    assert [lk["name"] for lk in out["links"]] == [
        "driver",
        "module loaded",
        "toolkit",
        "containerd runtime",
    ]
    assert out["links"][1] == {
        "name": "module loaded",
        "ok": True,
        "detail": "nvidia 580.159.04 (open)",
    }
    assert out["first_broken"] == "toolkit"
    assert out["cluster"].startswith("cluster links: k3s not running yet (no kubeconfig at ")


def test_check_with_a_cluster_gives_every_link(env):
    kubeconfig = env["tmp"] / "kubeconfig"
    kubeconfig.write_text("fake")
    kube = FakeKube()
    kube.add_node(NODE)
    env["context"]["palplat_kube.clients"] = {str(kubeconfig): kube}
    out = nvidia_mod.check()
    assert len(out["links"]) == 7 and "cluster" not in out


def _toolkit_dir(path):
    path.mkdir()
    for name in ("nvidia-container-runtime", "nvidia-ctk"):
        f = path / name
        f.write_text(f"#!/bin/sh\necho '{name} version 1.20.2'\n")
        f.chmod(0o755)
    return path


def test_toolkit_from_a_directory_needs_no_package_manager(env, opts):
    src = _toolkit_dir(env["tmp"] / "kit-toolkit")
    env["pillar"]["palplat"]["gpu"]["toolkit_from"] = str(src)
    plan = nvidia_mod.plan()
    assert plan["toolkit"] == [
        {
            "id": "nvidia-container-toolkit",
            "state": "toolkit_from",
            "kwargs": {"from": str(src), "to": "/usr/local/nvidia/toolkit", "mode": "jit-cdi"},
        }
    ]
    opts["test"] = True
    ret = palplat_nvidia.toolkit()
    assert ret["result"] is None and env["states"].calls == []
    assert set(ret["changes"]) == {
        "/usr/local/nvidia/toolkit/nvidia-container-runtime",
        "/usr/local/nvidia/toolkit/nvidia-ctk",
        "/etc/nvidia-container-runtime/config.toml",
    }
    assert (
        f"would install the toolkit from {src} (palplat:gpu:toolkit_from), not from a "
        "package repository" in ret["comment"]
    )
    assert not (env["root"] / "usr/local/nvidia/toolkit").exists()
    opts["test"] = False
    ret = palplat_nvidia.toolkit()
    assert ret["result"] is True and len(ret["changes"]) == 3
    assert "/usr/local/nvidia/toolkit/nvidia-container-runtime is installed" in ret["comment"]
    cfg = (env["root"] / "etc/nvidia-container-runtime/config.toml").read_text()
    assert 'mode = "jit-cdi"' in cfg and 'path = "/usr/local/nvidia/toolkit/nvidia-ctk"' in cfg
    again = palplat_nvidia.toolkit()
    assert again["result"] is True and again["changes"] == {}
    # a changed binary is replaced (and only it)
    (src / "nvidia-ctk").write_text("#!/bin/sh\necho 'nvidia-ctk version 1.20.3'\n")
    ret = palplat_nvidia.toolkit()
    assert list(ret["changes"]) == ["/usr/local/nvidia/toolkit/nvidia-ctk"]


def test_toolkit_from_names_what_is_missing(env):
    src = env["tmp"] / "empty"
    src.mkdir()
    env["pillar"]["palplat"]["gpu"]["toolkit_from"] = str(src)
    ret = palplat_nvidia.toolkit()
    assert ret["result"] is False
    assert (
        f"palplat:gpu:toolkit_from: {src} has no nvidia-container-runtime, nvidia-ctk"
        in ret["comment"]
    )
