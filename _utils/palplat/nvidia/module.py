"""The nvidia kernel module installed for the running kernel, and its version.

The kernel release comes from ``proc/sys/kernel/osrelease`` under the root (``uname -r``).
The module file is the one ``modules.dep`` names for ``nvidia`` (what ``modprobe`` would
load), else the first ``nvidia.ko*`` under ``lib/modules/<release>`` in depmod's search
order (``updates`` first, then ``extra``/``extramodules``, then the rest). Its version
and license come from the module's ``.modinfo`` strings (``version=``, ``license=``):
read directly for ``.ko``, ``.ko.xz`` and ``.ko.gz``; ``.ko.zst`` goes through ``modinfo``
on the file when Python has no zstd (before 3.14).
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from palplat import proc
from palplat.errors import PalplatError

MODULE_DIRS = ("lib/modules", "usr/lib/modules")
_MODULE_FILE = re.compile(r"(^|/)nvidia\.ko(\.(xz|gz|zst))?$")
_VERSION = re.compile(rb"(?:^|\x00)version=([0-9][0-9A-Za-z.+~-]*)\x00")
_LICENSE = re.compile(rb"(?:^|\x00)license=([^\x00]*)\x00")


@dataclass
class InstalledModule:
    path: str  # as seen from the node (without the root prefix)
    version: str | None
    flavor: str | None  # open (license "Dual MIT/GPL") | proprietary (license "NVIDIA")


def kernel_release(root: str = "/") -> str | None:
    """The running kernel's release (``uname -r``) as the root's procfs tells it."""
    try:
        text = (Path(root or "/") / "proc/sys/kernel/osrelease").read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        text = ""
    if text:
        return text
    return os.uname().release if (root or "/") == "/" else None


def module_file(root: str, kernel: str) -> tuple[Path, str] | None:
    """(the file on disk, its path on the node) of the nvidia module for ``kernel``."""
    for d in MODULE_DIRS:
        base = Path(root or "/") / d / kernel
        if not base.is_dir():
            continue
        rel = _from_modules_dep(base)
        if rel is None:
            rel = _search(base)
        if rel is not None:
            return base / rel, f"/{d}/{kernel}/{rel}"
    return None


def _from_modules_dep(base: Path) -> str | None:
    try:
        text = (base / "modules.dep").read_text(errors="replace")
    except (FileNotFoundError, PermissionError):
        return None
    for line in text.splitlines():
        path = line.split(":", 1)[0].strip()
        if _MODULE_FILE.search(path) and (base / path).is_file():
            return path
    return None


def _rank(rel: str) -> tuple[int, str]:
    top = rel.split("/", 1)[0]
    order = {"updates": 0, "extra": 1, "extramodules": 1, "kernel": 3}
    return order.get(top, 2), rel


def _search(base: Path) -> str | None:
    found = []
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            if _MODULE_FILE.search(f):
                found.append(os.path.relpath(os.path.join(dirpath, f), base))
    return sorted(found, key=_rank)[0] if found else None


def read_modinfo(path: Path) -> dict[str, str | None]:
    """``version`` and ``license`` from a module file's ``.modinfo`` strings."""
    data = _module_bytes(path)
    if data is None:
        return _modinfo_program(path)
    v = _VERSION.search(data)
    lic = _LICENSE.search(data)
    return {
        "version": v.group(1).decode() if v else None,
        "license": lic.group(1).decode(errors="replace") if lic else None,
    }


def _module_bytes(path: Path) -> bytes | None:
    name = path.name
    try:
        if name.endswith(".xz"):
            return lzma.decompress(path.read_bytes())
        if name.endswith(".gz"):
            return gzip.decompress(path.read_bytes())
        if name.endswith(".zst"):
            return _zstd(path)
        return path.read_bytes()
    except (OSError, lzma.LZMAError, EOFError) as exc:
        raise PalplatError(f"cannot read the nvidia module {path}: {exc}") from None


def _zstd(path: Path) -> bytes | None:
    """Decompressed bytes where Python has zstd (3.14+); None: ask ``modinfo``."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        return None
    return zstd.decompress(path.read_bytes())


def _modinfo_program(path: Path) -> dict[str, str | None]:
    exe = shutil.which("modinfo") or ("/sbin/modinfo" if os.path.exists("/sbin/modinfo") else None)
    if exe is None:
        raise PalplatError(
            f"cannot read the version of {path}: it is zstd-compressed and modinfo (kmod) "
            "is not installed; install kmod"
        )
    out = {}
    for key in ("version", "license"):
        res = proc.run([exe, "-F", key, str(path)], check=False, timeout=60)
        out[key] = res.stdout.strip() or None
    return out


def flavor_of(license_: str | None) -> str | None:
    if not license_:
        return None
    return "proprietary" if license_.strip().upper() == "NVIDIA" else "open"


def installed_module(root: str, kernel: str) -> InstalledModule | None:
    """The nvidia module installed for ``kernel`` under ``root``, or None."""
    found = module_file(root, kernel)
    if found is None:
        return None
    path, node_path = found
    info = read_modinfo(path)
    return InstalledModule(
        path=node_path, version=info.get("version"), flavor=flavor_of(info.get("license"))
    )
