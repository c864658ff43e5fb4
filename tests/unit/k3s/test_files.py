"""palplat.k3s.files: config.yaml / registries.yaml written 0600, changes masked, idempotent."""

from __future__ import annotations

import json
import stat
import uuid

import yaml

from palplat import config, k3s, redact
from tests.unit.k3s.support import load


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
