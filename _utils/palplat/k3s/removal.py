"""Uninstall k3s: the unit, the binary, the config files and the stamp (and with ``purge``
the data dir), verified gone."""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

from palplat.errors import PalplatError
from palplat.k3s.layout import paths, service_manager
from palplat.model import PalplatPillar


def plan_uninstall(cfg: PalplatPillar, purge: bool = False) -> dict:
    p = paths(cfg)
    sm = service_manager(cfg)
    changes: dict[str, Any] = {}
    for unit in ("k3s.service", "k3s-agent.service"):
        if sm.is_active(unit) or sm.read_unit(unit) is not None:
            changes[unit] = {"old": "installed", "new": None}
    for label, path in (
        ("binary", p.binary),
        ("config.yaml", p.config),
        ("registries.yaml", p.registries),
        ("stamp", p.stamp),
    ):
        if path.exists():
            changes[label] = {"old": str(path), "new": None}
    if purge and p.data_dir.exists():
        changes["data_dir"] = {"old": str(p.data_dir), "new": None}
    return changes


def uninstall(cfg: PalplatPillar, purge: bool = False) -> dict:
    changes = plan_uninstall(cfg, purge)
    p = paths(cfg)
    sm = service_manager(cfg)
    for unit in ("k3s.service", "k3s-agent.service"):
        if unit in changes:
            sm.stop(unit)
            sm.disable(unit)
            sm.remove_unit(unit)
    for path in (p.binary, p.config, p.registries, p.stamp):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if purge:
        shutil.rmtree(p.data_dir, ignore_errors=True)
    left = plan_uninstall(cfg, purge)
    if left:
        raise PalplatError(f"verify: still present after uninstall: {', '.join(left)}")
    return changes
