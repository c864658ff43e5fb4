"""palplat.k3s.service: the unit file for each role (checked by systemd-analyze), and the
process manager (palplat.units) that runs units where there is no systemd."""

from __future__ import annotations

import shutil

import pytest

from palplat import k3s, units
from tests.unit.k3s.support import load


def test_unit_file_verifies(tmp_path, releases):
    cfg = load(tmp_path, source={"url": releases.url})
    k3s.install_binary(cfg, k3s.plan_binary(cfg))
    for role, extra in (
        ("server", {}),
        ("agent", {"server_url": "https://10.0.0.1:6443", "token": "x" * 8}),
    ):
        c = load(tmp_path, role=role, service_manager="systemd", **extra)
        unit = tmp_path / "etc/systemd/system" / k3s.unit_name(c.k3s)
        units.write_if_changed(unit, k3s.unit_text(c))
        assert f"ExecStart={tmp_path}/usr/local/bin/k3s {role} --config " in unit.read_text()
        if shutil.which("systemd-analyze") is None:
            pytest.skip("systemd-analyze is not installed")
        assert units.verify_unit(unit) == [], unit.read_text()
    # the checker does see problems
    unit.write_text(unit.read_text().replace("KillMode=process", "KillMod=process"))
    assert any("KillMod" in p for p in units.verify_unit(unit))


# -------------------------------------------------------------------------- processes


def test_process_manager_start_restart_stop(tmp_path):
    sm = units.Processes(tmp_path)
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
