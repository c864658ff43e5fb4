"""The running kernel: modules available now, and swap.

Salt's ``kmod.present`` decides "loaded" from ``lsmod`` (``/proc/modules``), so a module
built into the kernel (or a kernel without module support, as on the CI machines) always
looks missing and ``modprobe`` fails. :func:`module_available` also accepts
``/sys/module/<name>``, ``modules.builtin`` and the feature the module provides (the
bridge-netfilter sysctls, the ``overlay`` filesystem).

Swap: k3s's kubelet expects none. :func:`swap_plan` lists active swap areas
(``/proc/swaps``) and ``swap`` lines of ``/etc/fstab``; :func:`swap_off` turns them off
and comments the fstab lines out (``#palplat-swap-off# ...``), so that no swap comes back
at boot.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from palplat import proc, redact
from palplat.errors import PalplatError

# A feature that proves the module is there (built in or loaded).
PROBES: dict[str, Callable[[Path], bool]] = {
    "br_netfilter": lambda root: (root / "proc/sys/net/bridge/bridge-nf-call-iptables").exists(),
    "overlay": lambda root: "\toverlay\n" in _read(root / "proc/filesystems") + "\n",
}
FSTAB_MARK = "#palplat-swap-off# "


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def module_available(name: str, root: str | Path = "/") -> bool:
    root = Path(root)
    if (root / "sys/module" / name).exists():
        return True
    mod = name.replace("-", "_")
    loaded = {ln.split()[0] for ln in _read(root / "proc/modules").splitlines() if ln.strip()}
    if mod in loaded:
        return True
    builtin = _read(root / "lib/modules" / os.uname().release / "modules.builtin")
    if any(Path(ln).name.split(".ko")[0].replace("-", "_") == mod for ln in builtin.split()):
        return True
    probe = PROBES.get(name)
    return bool(probe and probe(root))


def missing_modules(names: list[str], root: str | Path = "/") -> list[str]:
    return [m for m in names if not module_available(m, root)]


def module_known(name: str, root: str | Path = "/") -> bool | None:
    """Whether the running kernel can have ``name``: available now (see
    :func:`module_available`), or a module or alias of its tree (``modules.dep``,
    ``modules.alias`` under ``/lib/modules/<release>``). None: no module tree to look in
    (a container, a kernel without modules), so nobody can tell before ``modprobe``."""
    if module_available(name, root):
        return True
    base = Path(root) / "lib/modules" / os.uname().release
    dep = _read(base / "modules.dep")
    if not dep.strip():
        return None
    mod = name.replace("-", "_")
    for ln in dep.splitlines():
        path = ln.split(":", 1)[0].strip()
        if path and Path(path).name.split(".ko")[0].replace("-", "_") == mod:
            return True
    for ln in _read(base / "modules.alias").splitlines():
        fields = ln.split()
        if len(fields) == 3 and fields[0] == "alias" and fields[1].replace("-", "_") == mod:
            return True
    return False


def load_modules(names: list[str], root: str | Path = "/", run=proc.run) -> list[str]:
    """``modprobe`` every module that is not available; verify; return those loaded."""
    missing = missing_modules(names, root)
    why = {}
    for m in missing:
        res = run(["modprobe", m], check=False, timeout=60)
        if res.returncode != 0:
            why[m] = redact.tail(res.stderr or res.stdout, 300)
    still = missing_modules(names, root)
    if still:
        errors = "".join(f"; modprobe {m}: {why[m]}" for m in still if why.get(m))
        raise PalplatError(
            f"kernel modules {', '.join(still)} are still not available after modprobe"
            f"{errors}. Check the names in palplat:host:kernel_modules (`modinfo <name>`), "
            "install the kernel's modules package or use a kernel that has them"
        )
    return missing


# ------------------------------------------------------------------------------ swap


def active_swaps(root: str | Path = "/") -> list[str]:
    lines = _read(Path(root) / "proc/swaps").splitlines()[1:]
    return [ln.split()[0] for ln in lines if ln.strip()]


def fstab_swap_lines(text: str) -> list[str]:
    out = []
    for ln in text.splitlines():
        fields = ln.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 3 and fields[2] == "swap":
            out.append(ln)
    return out


def swap_plan(root: str | Path = "/") -> dict[str, Any]:
    """``{active: {old, new}, fstab: {old, new}}`` for what is on; empty when nothing is."""
    changes: dict[str, Any] = {}
    active = active_swaps(root)
    if active:
        changes["active"] = {"old": active, "new": []}
    lines = fstab_swap_lines(_read(Path(root) / "etc/fstab"))
    if lines:
        changes["fstab"] = {"old": lines, "new": [FSTAB_MARK + ln for ln in lines]}
    return changes


def swap_off(root: str | Path = "/", run=proc.run) -> dict[str, Any]:
    """Turn every swap area off, comment fstab's swap lines out, verify; the changes."""
    changes = swap_plan(root)
    for dev in changes.get("active", {}).get("old", []):
        run(["swapoff", dev], timeout=300)
    if "fstab" in changes:
        path = Path(root) / "etc/fstab"
        text = path.read_text()
        swap = set(changes["fstab"]["old"])
        new = "\n".join(FSTAB_MARK + ln if ln in swap else ln for ln in text.split("\n"))
        tmp = path.with_name(".fstab.palplat-tmp")
        tmp.write_text(new)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    left = swap_plan(root)
    if left:
        raise PalplatError(f"swap is still on after swapoff: {left}; check `swapon --show`")
    return changes
