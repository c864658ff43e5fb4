"""palplat.k3s.flags: the pillar check (unknown flags with did-you-mean, role-specific and
managed keys, join settings), run by palplat.config.load too."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from palplat import config
from palplat.errors import PillarError
from tests.support.saltenv import REPO
from tests.unit.k3s.support import load, problems


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


def test_pillar_error_type(tmp_path):
    with pytest.raises(PillarError) as exc:
        config.load({"palplat": {"k3s": {"root": str(tmp_path), "service_manager": "upstart"}}})
    assert "palplat:k3s:service_manager" in str(exc.value)


def test_config_imports_the_flag_check_and_k3s_never_imports_config():
    """One-way: palplat.config runs palplat.k3s.flags.check; nothing in palplat.k3s
    imports palplat.config."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / '_utils')!r})\n"
        "import palplat.k3s\n"
        "assert 'palplat.config' not in sys.modules, 'palplat.k3s imported palplat.config'\n"
        "import palplat.config\n"
        "assert palplat.config.k3s_flags is palplat.k3s.flags\n"
        "assert palplat.config.kubeconfig_path is palplat.k3s.kubeconfig_path\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
