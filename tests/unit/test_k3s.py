"""palplat.k3s library: pillar checks, pinned verified install from a local release server,
config files, unit file, the upgrade plan and its recorded execution."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import uuid

import pytest
import yaml

from palplat import config, k3s, k3s_upgrade, redact, services
from palplat.errors import InputError, PillarError, WaitTimeout
from palplat.model import PalplatPillar
from tests.support.fake_k3s import ReleaseServer

V1, V2, V3 = "v1.33.5+k3s1", "v1.33.6+k3s1", "v1.34.1+k3s1"


@pytest.fixture(scope="module")
def releases():
    with ReleaseServer() as rs:
        for v in (V1, V2, V3):
            rs.add_release(v, images=b"fake images " + v.encode())
        yield rs


def load(root, **k3s_keys):
    """The model alone (no cross checks), so k3s.check itself is what is tested here;
    config.load runs the same checks (test_pillar_validation_runs_the_k3s_checks)."""
    k = {"version": V1, "root": str(root), "service_manager": "processes"}
    k.update(k3s_keys)
    return PalplatPillar.model_validate({"k3s": k})


def problems(cfg):
    return [str(p) for p in k3s.check(cfg)]


# ---------------------------------------------------------------------- pillar checks


def test_unknown_config_key_named_with_fix(tmp_path):
    cfg = load(tmp_path, config={"node-lable": ["a=b"], "disable": ["traefik"]})
    (p,) = problems(cfg)
    assert p.startswith("palplat:k3s:config:node-lable: is not a k3s server flag")
    assert "did you mean 'node-label'?" in p


def test_server_flag_on_agent_and_managed_keys(tmp_path):
    cfg = load(
        tmp_path,
        role="agent",
        server_url="https://10.0.0.1:6443",
        token="t-" + uuid.uuid4().hex,
        config={"tls-san": ["x"], "token": "inline"},
    )
    ps = problems(cfg)
    assert any(p.startswith("palplat:k3s:config:tls-san") and "role is agent" in p for p in ps)
    assert any(p.startswith("palplat:k3s:config:token") and "palplat:k3s:token" in p for p in ps)
    assert not any("inline" in p for p in ps)


def test_join_settings_required(tmp_path):
    ps = problems(load(tmp_path, role="agent"))
    assert any(p.startswith("palplat:k3s:server_url: is required for role agent") for p in ps)
    ps = problems(load(tmp_path, server_url="http://x:6443", version=None))
    assert any(p.startswith("palplat:k3s:server_url: must be an https URL") for p in ps)
    assert any(p.startswith("palplat:k3s:token: is required to join") for p in ps)
    assert any(p.startswith("palplat:k3s:version: is required") for p in ps)


def test_pillar_validation_runs_the_k3s_checks(tmp_path):
    pillar = {"palplat": {"k3s": {"root": str(tmp_path), "config": {"node-lable": ["a"]}}}}
    with pytest.raises(PillarError) as exc:
        config.load(pillar)
    assert "palplat:k3s:config:node-lable" in str(exc.value)
    # a pinned version is the k3s stage's own requirement, not the pillar's
    assert "palplat:k3s:version" not in str(exc.value)


def test_external_mode_needs_nothing(tmp_path):
    assert problems(load(tmp_path, mode="external", version=None)) == []


# ---------------------------------------------------------------------------- install


def test_install_noop_upgrade_and_checksum_mismatch(tmp_path, releases):
    cfg = load(tmp_path, source={"url": releases.url})
    plan = k3s.plan_binary(cfg)
    assert plan.changes == {"version": {"old": None, "new": V1}}
    assert k3s.install_binary(cfg, plan) == plan.changes
    binary = k3s.paths(cfg).binary
    assert binary == tmp_path / "usr/local/bin/k3s"
    assert k3s.installed_version(binary) == V1
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert k3s.plan_binary(cfg).changes == {}  # no-op: nothing to download

    # a mirror serving a binary that does not match the release checksum file
    releases.corrupt(V2)
    cfg2 = load(tmp_path, version=V2, source={"url": releases.url})
    with pytest.raises(k3s.ChecksumError) as exc:
        k3s.install_binary(cfg2, k3s.plan_binary(cfg2))
    msg = str(exc.value)
    assert "checksum mismatch" in msg and "left in place" in msg and "sha256sum-amd64.txt" in msg
    assert k3s.installed_version(binary) == V1
    assert sorted(os.listdir(binary.parent)) == ["k3s"]  # no temporary file left behind

    # upgrade, checksum from the pillar instead of the release file
    sha3 = hashlib.sha256(releases.files[f"/k3s-io/k3s/releases/download/{V3}/k3s"]).hexdigest()
    cfg3 = load(tmp_path, version=V3, source={"url": releases.url, "sha256": sha3})
    assert k3s.install_binary(cfg3, k3s.plan_binary(cfg3)) == {"version": {"old": V1, "new": V3}}
    bad = load(tmp_path, version=V1, source={"url": releases.url, "sha256": "0" * 64})
    with pytest.raises(InputError, match="older than the installed"):
        k3s.plan_binary(bad)
    with pytest.raises(k3s.ChecksumError, match="palplat:k3s:source:sha256"):
        forced = load(
            tmp_path,
            version=V1,
            allow_downgrade=True,
            source={"url": releases.url, "sha256": "0" * 64},
        )
        k3s.install_binary(forced, k3s.plan_binary(forced))
    assert k3s.installed_version(binary) == V3


def test_downgrade_refused_unless_forced(tmp_path, releases):
    cfg = load(tmp_path, version=V3, source={"url": releases.url})
    k3s.install_binary(cfg, k3s.plan_binary(cfg))
    down = load(tmp_path, version=V1, source={"url": releases.url})
    with pytest.raises(InputError) as exc:
        k3s.plan_binary(down)
    assert "palplat:k3s:version" in str(exc.value) and "allow_downgrade" in str(exc.value)
    forced = load(tmp_path, version=V1, allow_downgrade=True, source={"url": releases.url})
    assert k3s.install_binary(forced, k3s.plan_binary(forced)) == {
        "version": {"old": V3, "new": V1}
    }


def test_unreachable_source(tmp_path):
    cfg = load(tmp_path, source={"url": "http://127.0.0.1:9/k3s/{version}"})
    with pytest.raises(k3s.SourceError) as exc:
        k3s.install_binary(cfg, k3s.plan_binary(cfg))
    assert "cannot download http://127.0.0.1:9/k3s/v1.33.5%2Bk3s1/k3s" in str(exc.value)
    assert not k3s.paths(cfg).binary.exists()


def test_mirror_file_and_salt_sources_with_airgap_images(tmp_path, releases):
    mirror = tmp_path / "mirror" / V1
    mirror.mkdir(parents=True)
    base = f"/k3s-io/k3s/releases/download/{V1}"
    for name in ("k3s", "sha256sum-amd64.txt", "k3s-airgap-images-amd64.tar.zst"):
        (mirror / name).write_bytes(releases.files[f"{base}/{name}"])
    root = tmp_path / "root"
    cfg = load(root, source={"url": f"file://{tmp_path}/mirror/{{version}}", "airgap_images": True})
    plan = k3s.plan_binary(cfg)
    assert set(plan.changes) == {"version", "airgap_images"}
    k3s.install_binary(cfg, plan)
    images = k3s.paths(cfg).images_dir / "k3s-airgap-images-amd64.tar.zst"
    assert images.read_bytes() == b"fake images " + V1.encode()
    assert k3s.plan_binary(cfg).changes == {}

    fetched = []

    def fetch_salt(url):
        fetched.append(url)
        path = mirror / url.rsplit("/", 1)[1]
        return str(path) if path.exists() else None

    root2 = tmp_path / "root2"
    cfg = load(root2, source={"url": "salt://k3s/{version}"})
    k3s.install_binary(cfg, k3s.plan_binary(cfg), fetch_salt)
    assert fetched == [f"salt://k3s/{V1}/k3s", f"salt://k3s/{V1}/sha256sum-amd64.txt"]
    assert k3s.installed_version(k3s.paths(cfg).binary) == V1
    missing = load(tmp_path / "root3", source={"url": "salt://nowhere/{version}"})
    with pytest.raises(k3s.SourceError, match="not in file_roots"):
        k3s.install_binary(missing, k3s.plan_binary(missing), lambda url: None)


# ------------------------------------------------------------------------------ files


def test_config_files_0600_masked_and_idempotent(tmp_path):
    redact.clear()
    token, pw = "tok-" + uuid.uuid4().hex, "pw-" + uuid.uuid4().hex
    cfg = load(
        tmp_path,
        token=token,
        config={"disable": ["traefik"], "write-kubeconfig-mode": "0640"},
        registries={
            "mirrors": {"harbor.example": {"endpoint": ["https://harbor.example"]}},
            "configs": {"harbor.example": {"auth": {"username": "robot$k3s", "password": pw}}},
        },
    )
    changes = k3s.plan_files(cfg)
    assert set(changes) == {"config.yaml", "registries.yaml"}
    dumped = json.dumps(changes)
    assert token not in dumped and pw not in dumped
    assert changes["config.yaml"]["new"]["token"] == "<hidden>"
    assert (
        changes["registries.yaml"]["new"]["configs"]["harbor.example"]["auth"]["password"]
        == "<hidden>"
    )
    assert k3s.write_files(cfg) == changes
    p = k3s.paths(cfg)
    for path in (p.config, p.registries):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(p.config.read_text())
    assert data["token"] == token and data["cluster-init"] is True
    assert data["data-dir"] == str(tmp_path / "var/lib/rancher/k3s")
    assert data["write-kubeconfig"] == str(tmp_path / "etc/rancher/k3s/k3s.yaml")
    assert data["private-registry"] == str(p.registries)
    assert config.kubeconfig_path(cfg) == data["write-kubeconfig"]
    reg = yaml.safe_load(p.registries.read_text())
    assert reg["configs"]["harbor.example"]["auth"] == {"username": "robot$k3s", "password": pw}
    assert k3s.plan_files(cfg) == {}

    # a changed token on disk (someone else's) is masked too, not only the pillar's
    other = "other-" + uuid.uuid4().hex
    p.config.write_text(p.config.read_text().replace(token, other))
    changes = k3s.plan_files(cfg)
    assert changes["config.yaml"] == {"old": {"token": "<hidden>"}, "new": {"token": "<hidden>"}}
    assert other not in json.dumps(changes)


def test_unit_file_verifies(tmp_path, releases):
    cfg = load(tmp_path, source={"url": releases.url})
    k3s.install_binary(cfg, k3s.plan_binary(cfg))
    for role, extra in (
        ("server", {}),
        ("agent", {"server_url": "https://10.0.0.1:6443", "token": "x" * 8}),
    ):
        c = load(tmp_path, role=role, service_manager="systemd", **extra)
        unit = tmp_path / "etc/systemd/system" / k3s.unit_name(c.k3s)
        services.write_if_changed(unit, k3s.unit_text(c))
        assert f"ExecStart={tmp_path}/usr/local/bin/k3s {role} --config " in unit.read_text()
        if shutil.which("systemd-analyze") is None:
            pytest.skip("systemd-analyze is not installed")
        assert services.verify_unit(unit) == [], unit.read_text()
    # the checker does see problems
    unit.write_text(unit.read_text().replace("KillMode=process", "KillMod=process"))
    assert any("KillMod" in p for p in services.verify_unit(unit))


# -------------------------------------------------------------------------- processes


def test_process_manager_start_restart_stop(tmp_path):
    sm = services.Processes(tmp_path)
    script = tmp_path / "svc.sh"
    script.write_text("#!/bin/sh\nexec sleep 300\n")
    script.chmod(0o755)
    assert sm.write_unit("demo.service", f"[Service]\nExecStart={script}\n")
    assert not sm.write_unit("demo.service", f"[Service]\nExecStart={script}\n")
    sm.start("demo.service")
    assert sm.is_active("demo.service")
    sm.restart("demo.service")
    sm.stop("demo.service")
    assert not sm.is_active("demo.service")
    assert sm.events("demo.service") == ["start", "stop", "start", "stop"]


def test_never_ready_names_what_is_missing(tmp_path):
    cfg = load(tmp_path, ready_timeout=10)
    sm = services.Processes(tmp_path)
    sm.write_unit("k3s.service", "[Service]\nExecStart=/bin/sleep 60\n")
    sm.start("k3s.service")
    events = []
    try:
        with pytest.raises(WaitTimeout) as exc:
            k3s.wait_ready(cfg, progress=lambda phase, msg, **kw: events.append(phase), timeout=1.5)
    finally:
        sm.stop("k3s.service")
    msg = str(exc.value)
    assert "not ready after 1.5s" in msg and "kubeconfig" in msg and "not written yet" in msg
    assert events[0] == "start" and events[-1] == "timeout"


# ---------------------------------------------------------------------------- upgrades


def st(role, installed, desired, node, cluster_init=False):
    return {
        "mode": "install",
        "role": role,
        "cluster_init": cluster_init,
        "node": node,
        "installed": installed,
        "desired": desired,
        "active": True,
    }


def test_upgrade_plan_order():
    statuses = {
        "s3": st("server", V1, V2, "n-s3"),
        "s1": st("server", V1, V2, "n-s1", cluster_init=True),
        "s2": st("server", V1, V2, "n-s2"),
        "a2": st("agent", V1, V2, "n-a2"),
        "a1": st("agent", V1, V2, "n-a1"),
        "a0": st("agent", V2, V2, "n-a0"),
        "fresh": st("agent", None, V2, "n-fresh"),
        "ext": {"mode": "external"},
    }
    plan = k3s_upgrade.plan(statuses)
    assert [s["minion"] for s in plan["steps"]] == ["s1", "s2", "s3", "a1", "a2"]
    assert plan["unchanged"] == ["a0", "fresh"]
    with pytest.raises(InputError, match="must answer"):
        k3s_upgrade.plan({**statuses, "s4": "did not answer"})
    with pytest.raises(InputError, match="newer than every server"):
        k3s_upgrade.plan({"s1": st("server", V1, V1, "n"), "a1": st("agent", V1, V2, "m")})


def test_upgrade_execution_recorded():
    statuses = {
        "s1": st("server", V1, V2, "n-s1", cluster_init=True),
        "s2": st("server", V1, V2, "n-s2"),
        "s3": st("server", V1, V2, "n-s3"),
        "a1": st("agent", V1, V2, "n-a1"),
    }
    calls = []
    version = {m: V1 for m in statuses}

    def call(minion, fun, *args, **kwargs):
        calls.append((minion, fun, *args))
        if fun == "state.sls":
            assert kwargs == {"pillar": {"palplat_k3s_upgrade": True}}
            # quorum: at most one server is away at any time
            assert sum(1 for m in ("s1", "s2", "s3") if version[m] == "restarting") == 0
            version[minion] = V2
        if fun == "palplat_k3s.node_ready":
            node, want = args[0], args[1]
            assert version[node[2:]] == want
        return True

    done = k3s_upgrade.execute(k3s_upgrade.plan(statuses), call, timeout=30)
    assert [c[:3] for c in calls] == [
        ("s1", "state.sls", "palplat.k3s"),
        ("s2", "palplat_k3s.node_ready", "n-s1"),
        ("s2", "state.sls", "palplat.k3s"),
        ("s1", "palplat_k3s.node_ready", "n-s2"),
        ("s3", "state.sls", "palplat.k3s"),
        ("s1", "palplat_k3s.node_ready", "n-s3"),
        ("s1", "palplat_k3s.cordon", "n-a1"),
        ("s1", "palplat_k3s.drain", "n-a1"),
        ("a1", "state.sls", "palplat.k3s"),
        ("s1", "palplat_k3s.node_ready", "n-a1"),
        ("s1", "palplat_k3s.uncordon", "n-a1"),
    ]
    assert all(d["ok"] for d in done)


def test_upgrade_stops_at_first_failure():
    statuses = {
        "s1": st("server", V1, V2, "n-s1", cluster_init=True),
        "s2": st("server", V1, V2, "n-s2"),
        "s3": st("server", V1, V2, "n-s3"),
    }
    calls = []

    def call(minion, fun, *args, **kwargs):
        calls.append((minion, fun))
        if minion == "s1" and fun == "palplat_k3s.node_ready":
            raise WaitTimeout("node n-s2 not Ready at v1.33.6+k3s1 after 30s")
        return True

    with pytest.raises(k3s_upgrade.UpgradeError) as exc:
        k3s_upgrade.execute(k3s_upgrade.plan(statuses), call, timeout=30)
    assert "upgrade stopped at s1" in str(exc.value) and "n-s2" in str(exc.value)
    assert ("s3", "state.sls") not in calls
    assert exc.value.done[-1] == {
        "minion": "s1",
        "action": f"check node n-s2 Ready at {V2}",
        "ok": False,
    }


def test_pillar_error_type(tmp_path):
    with pytest.raises(PillarError) as exc:
        config.load({"palplat": {"k3s": {"root": str(tmp_path), "service_manager": "upstart"}}})
    assert "palplat:k3s:service_manager" in str(exc.value)


def test_token_check_falls_back_to_the_servers_own_copy(tmp_path):
    away = "https://127.0.0.1:9"
    cfg = load(tmp_path, server_url=away, token="right-token", cluster_init=False)
    token_file = k3s.paths(cfg).token_file
    token_file.parent.mkdir(parents=True)
    token_file.write_text("K10" + "a" * 64 + "::server:right-token\n")
    assert k3s.check_token(cfg) == "token matches the running cluster"
    wrong = load(tmp_path, server_url=away, token="wrong-token", cluster_init=False)
    with pytest.raises(k3s.TokenMismatch, match="nothing was restarted"):
        k3s.check_token(wrong)
    agent = load(tmp_path / "a", role="agent", server_url=away, token="right-token")
    with pytest.raises(k3s.SourceError, match="cannot reach palplat:k3s:server_url"):
        k3s.check_token(agent)
