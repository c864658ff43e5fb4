"""palplat.nvidia.localtoolkit: the toolkit from a directory (toolkit_from) into
toolkit_dir; a directory the run could not write is a plan error, not a real-run surprise
(the H200 machine's /usr/local/nvidia is a read-only mount)."""

from __future__ import annotations

import os

import pytest

from palplat.errors import InputError
from palplat.nvidia import localtoolkit


def _kit(tmp_path):
    src = tmp_path / "kit"
    src.mkdir(parents=True)
    for name in ("nvidia-container-runtime", "nvidia-ctk", "nvidia-cdi-hook"):
        (src / name).write_text(f"#!/bin/sh\necho {name}\n")
    return src


def test_installs_into_toolkit_dir_and_config_names_it(tmp_path):
    root = tmp_path / "root"
    p = localtoolkit.plan(str(root), str(_kit(tmp_path)), "/usr/local/bin")
    assert sorted(p.changes) == [
        "/etc/nvidia-container-runtime/config.toml",
        "/usr/local/bin/nvidia-cdi-hook",
        "/usr/local/bin/nvidia-container-runtime",
        "/usr/local/bin/nvidia-ctk",
    ]
    assert 'path = "/usr/local/bin/nvidia-ctk"' in localtoolkit.config_text("/usr/local/bin")
    localtoolkit.apply(p)
    assert (root / "usr/local/bin/nvidia-ctk").exists()
    assert (
        localtoolkit.plan(str(root), str(_kit(tmp_path / "again")), "/usr/local/bin").changes == {}
    )


def test_a_read_only_target_fails_the_plan(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "usr/local/nvidia").mkdir(parents=True)
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m: False if str(p).endswith("usr/local/nvidia") else real(p, m)
    )
    with pytest.raises(InputError, match="toolkit_dir.*is not writable.*usr/local/bin"):
        localtoolkit.plan(str(root), str(_kit(tmp_path)))
