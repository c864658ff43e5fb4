"""Uninstall k3s: the unit, the binary, the config files and the stamp (and with ``purge``
the data dir), verified gone.

``purge`` deletes only k3s's own data directory: never ``/`` or a system directory
(``/var``, ``/home``, ``/usr``, ...) or one above them, never a path with fewer than two
components, and only a directory that looks like k3s's (it holds ``server/``, ``agent/``
or ``data/``, or is empty), symlinks resolved first (:func:`purge_refusal`)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from palplat.errors import PalplatError
from palplat.k3s.layout import paths, service_manager
from palplat.model import PalplatPillar

# System directories (and the well-known parents of k3s's paths) a purge never deletes,
# nor any directory above them.
PROTECTED = frozenset(
    """/ /bin /boot /dev /etc /home /lib /lib32 /lib64 /libx32 /media /mnt /opt /proc /root
    /run /sbin /snap /srv /sys /tmp /usr /usr/local /usr/lib /usr/bin /usr/sbin /usr/share
    /var /var/lib /var/log /var/cache /var/tmp /var/spool /var/mail /var/opt /var/backups
    /var/lib/rancher /etc/rancher /var/lib/kubelet /var/lib/containerd /var/lib/docker
    /var/lib/palplat /data /nix /boot/efi""".split()
)
K3S_MARKERS = ("server", "agent", "data")


def purge_refusal(data_dir: Path, root: str = "/") -> str | None:
    """Why ``data_dir`` must not be deleted recursively (None: it is k3s's own)."""
    root = root or "/"
    resolved = Path(os.path.realpath(data_dir))
    for path in (Path(os.path.normpath(data_dir)), resolved):
        rel = "/" + str(path).lstrip("/")
        if root != "/":
            base = os.path.realpath(root) if path is resolved else os.path.normpath(root)
            if rel != base and not rel.startswith(base.rstrip("/") + "/"):
                return f"{path} is outside palplat:k3s:root ({root})"
            rel = "/" + rel[len(base.rstrip("/")) :].lstrip("/")
        if rel in PROTECTED or any(
            p == rel or p.startswith(rel.rstrip("/") + "/") for p in PROTECTED
        ):
            return f"{path} is a system directory (or holds one)"
        if len([c for c in rel.split("/") if c]) < 2:
            return f"{path} is a top-level directory"
    if resolved.is_dir():
        entries = {e.name for e in resolved.iterdir()}
        if entries and not entries & set(K3S_MARKERS):
            return (
                f"{resolved} does not look like k3s's data directory (no {', '.join(K3S_MARKERS)} "
                "in it)"
            )
    return None


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
        why = purge_refusal(p.data_dir, p.root)
        if why:
            raise PalplatError(
                f"refusing to purge {p.data_dir} (palplat:k3s:config:data-dir): {why}; purge "
                "deletes only k3s's own data directory. Nothing was uninstalled; fix data-dir, "
                "or uninstall without purge and delete the data by hand"
            )
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
    if purge and "data_dir" in changes:
        # checked again right before: the directory may have changed since the plan
        why = purge_refusal(p.data_dir, p.root)
        if why:
            raise PalplatError(f"refusing to purge {p.data_dir}: {why}")
        shutil.rmtree(p.data_dir, ignore_errors=True)
    left = plan_uninstall(cfg, purge)
    if left:
        raise PalplatError(f"verify: still present after uninstall: {', '.join(left)}")
    return changes
