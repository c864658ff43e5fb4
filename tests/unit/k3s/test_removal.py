"""Destructive k3s paths: purge deletes only k3s's own data directory; the pillar refuses
a data-dir that is a system directory and a kubeconfig everyone may read; paths written
into the unit cannot inject directives; a drain refuses what kubectl drain refuses."""

from __future__ import annotations

import pytest

from palplat import config, k3s
from palplat.errors import PalplatError, PillarError
from palplat.k3s import removal, service, upgrade
from tests.unit.k3s.support import load


@pytest.mark.parametrize(
    "path, why",
    [
        ("/", "system directory"),
        ("/var", "system directory"),
        ("/var/lib", "system directory"),
        ("/home", "system directory"),
        ("/srv", "system directory"),
        ("/k3s", "top-level"),
        ("/usr/local", "system directory"),
    ],
)
def test_purge_refuses_system_directories(path, why):
    assert why in removal.purge_refusal(__import__("pathlib").Path(path))


def test_purge_refuses_what_does_not_look_like_k3s_and_a_symlink_to_a_system_dir(tmp_path):
    root = tmp_path / "root"
    data = root / "var/lib/rancher/k3s"
    (data / "server").mkdir(parents=True)
    assert removal.purge_refusal(data, str(root)) is None
    other = root / "srv/photos"
    (other / "2024").mkdir(parents=True)
    assert "does not look like k3s" in removal.purge_refusal(other, str(root))
    link = root / "opt/k3s-data"
    link.parent.mkdir(parents=True)
    link.symlink_to(root / "var")
    assert "system directory" in removal.purge_refusal(link, str(root))
    assert "outside palplat:k3s:root" in removal.purge_refusal(tmp_path / "elsewhere", str(root))


def test_uninstall_purge_of_a_system_dir_changes_nothing(tmp_path):
    root = tmp_path / "root"
    var = root / "var"
    (var / "keep").mkdir(parents=True)
    (var / "keep/file").write_text("data")
    cfg = load(root, config={"data-dir": str(var)})
    binary = root / "usr/local/bin/k3s"
    binary.parent.mkdir(parents=True)
    binary.write_text("k3s")
    with pytest.raises(PalplatError, match="refusing to purge"):
        k3s.uninstall(cfg, purge=True)
    assert (var / "keep/file").read_text() == "data" and binary.exists()
    ok = load(root)
    (root / "var/lib/rancher/k3s/agent").mkdir(parents=True)
    k3s.uninstall(ok, purge=True)
    assert not (root / "var/lib/rancher/k3s").exists() and (var / "keep/file").exists()


@pytest.mark.parametrize(
    "k3s_keys, path, words",
    [
        ({"config": {"data-dir": "/var"}}, "palplat:k3s:config:data-dir", "system or top-level"),
        ({"config": {"data-dir": "/data/k3s\nExecStartPre=/bin/sh"}},
         "palplat:k3s:config:data-dir", "normalized absolute path"),
        ({"config": {"write-kubeconfig-mode": "0644"}},
         "palplat:k3s:config:write-kubeconfig-mode", "every local user"),
        ({"root": "/srv/k3s\nExecStartPre=/bin/rm -rf /"}, "palplat:k3s:root",
         "no spaces, quotes"),
        ({"root": "/srv/../etc"}, "palplat:k3s:root", "'..'"),
        ({"kubeconfig": "relative/k3s.yaml", "mode": "external"}, "palplat:k3s:kubeconfig",
         "absolute path"),
    ],
)  # fmt: skip
def test_pillar_refuses_dangerous_paths_and_modes(k3s_keys, path, words):
    with pytest.raises(PillarError) as exc:
        config.load({"palplat": {"k3s": {"token": "t0k3n-abc", **k3s_keys}}})
    found = {p.path: str(p) for p in exc.value.problems}
    assert path in found and words in found[path], str(exc.value)


def test_the_unit_holds_only_validated_paths(tmp_path):
    text = service.unit_text(load(tmp_path))
    exec_start = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    config_yaml = f"{tmp_path}/etc/rancher/k3s/config.yaml"
    assert exec_start == [f"ExecStart={tmp_path}/usr/local/bin/k3s server --config {config_yaml}"]


class FakeKube:
    def __init__(self, pods):
        self.pods, self.calls = pods, []

    def request(self, method, path, **kw):
        self.calls.append((method, path))
        if path == "/api/v1/pods":
            return {"items": self.pods}
        if method == "GET" and path.startswith("/api/v1/nodes/"):
            return {"spec": {}}
        if method == "GET":  # the evicted pod is gone at once
            from palplat.kube import NotFound

            raise NotFound("gone")
        return {}


def pod(name, *, controller=True, empty_dir=False, daemonset=False):
    refs = [{"kind": "DaemonSet" if daemonset else "ReplicaSet", "name": "x", "controller": True}]
    return {
        "metadata": {
            "name": name,
            "namespace": "apps",
            "ownerReferences": refs if controller else [],
        },
        "spec": {"volumes": [{"name": "tmp", "emptyDir": {}}] if empty_dir else []},
        "status": {"phase": "Running"},
    }


def test_drain_refuses_bare_and_emptydir_pods_before_evicting_anything():
    kube = FakeKube([pod("web"), pod("bare", controller=False), pod("cache", empty_dir=True),
                     pod("ds", daemonset=True, empty_dir=True)])  # fmt: skip
    with pytest.raises(PalplatError) as exc:
        upgrade.drain(kube, "n1", timeout=5)
    msg = str(exc.value)
    assert "apps/bare" in msg and "palplat:k3s:drain:force" in msg
    assert "apps/cache" in msg and "delete_emptydir_data" in msg and "apps/ds" not in msg
    assert [c for c in kube.calls if c[0] != "GET"] == []  # not even cordoned
    got = upgrade.drain(kube, "n1", timeout=5, force=True, delete_emptydir_data=True)
    assert got == ["apps/web", "apps/bare", "apps/cache"]


def test_the_upgrade_passes_each_agents_drain_settings():
    st = {
        "mode": "install",
        "role": "agent",
        "node": "a1",
        "installed": "v1.33.5+k3s1",
        "desired": "v1.33.6+k3s1",
        "drain": {"force": False, "delete_emptydir_data": True},
    }
    srv = {"mode": "install", "role": "server", "node": "s1", "installed": "v1.33.6+k3s1",
           "desired": "v1.33.6+k3s1", "cluster_init": True}  # fmt: skip
    plan = upgrade.plan({"a1": st, "s1": srv})
    calls = []

    def call(minion, fun, *args, **kwargs):
        calls.append((fun, args, kwargs))
        return True

    upgrade.execute(plan, call, timeout=30)
    drain = next(c for c in calls if c[0] == "palplat_k3s.drain")
    assert drain[2] == {"force": False, "delete_emptydir_data": True}
