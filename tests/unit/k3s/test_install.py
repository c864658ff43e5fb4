"""palplat.k3s.install: the pinned, verified install from a local release server, a file://
mirror or salt://, air-gap images, downgrades."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from palplat import k3s
from palplat.errors import InputError
from tests.unit.k3s.support import V1, V2, V3, load


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
