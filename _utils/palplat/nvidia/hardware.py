"""What a node has, read from sysfs and procfs under ``palplat:gpu:root``:

- NVIDIA display devices: ``sys/bus/pci/devices/*/{vendor,class}`` with vendor ``0x10de``
  and class ``0x0300`` (VGA) or ``0x0302`` (3D controller, e.g. H100), plus the driver bound
  to each (the ``driver`` link, or a ``driver.name`` file in a captured tree);
- the loaded kernel module: ``sys/module/nvidia/version``, else the version in
  ``proc/driver/nvidia/version``; open or proprietary from that NVRM line;
- per-GPU facts from ``proc/driver/nvidia/gpus/*/information`` (model, UUID, bus location);
- the installed module for the running kernel (:mod:`palplat.nvidia.module`).

Nothing here runs a program except, for a zstd-compressed module, ``zstd``/``modinfo``.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from palplat.nvidia.module import InstalledModule, installed_module, kernel_release

NVIDIA_VENDOR = "0x10de"
DISPLAY_CLASSES = ("0x0300", "0x0302")  # VGA compatible, 3D controller
PCI_DEVICES = "sys/bus/pci/devices"
SYS_MODULE = "sys/module/nvidia"
PROC_NVIDIA = "proc/driver/nvidia"

_NVRM = re.compile(
    r"NVRM version:\s+NVIDIA UNIX\s+(?P<kind>Open Kernel Module|.*?Kernel Module)"
    r"(?:\s+for\s+\S+)?\s+(?P<version>[0-9]+(?:\.[0-9]+)+)"
)


def rooted(root: str | os.PathLike, rel: str) -> Path:
    return Path(root or "/") / rel.lstrip("/")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
        return None


def bus_id(raw: str) -> str:
    """A PCI address as sysfs writes it (``0000:00:06.0``), from sysfs's form or
    nvidia-smi's (``00000000:00:06.0``)."""
    raw = raw.strip().lower()
    m = re.match(r"^([0-9a-f]+):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$", raw)
    if not m:
        return raw
    return f"{int(m.group(1), 16):04x}:{m.group(2)}:{m.group(3)}.{m.group(4)}"


@dataclass
class Device:
    """One NVIDIA display device on the PCI bus."""

    bus_id: str
    device_id: str
    pci_class: str
    driver: str | None  # the kernel driver bound to it (nvidia, nouveau, vfio-pci, ...)
    numa_node: int | None = None


@dataclass
class GpuInfo:
    """``proc/driver/nvidia/gpus/<bus>/information``: what the loaded driver knows."""

    bus_id: str
    model: str | None = None
    uuid: str | None = None
    vbios: str | None = None
    minor: int | None = None
    firmware: str | None = None
    excluded: bool = False
    raw: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadedModule:
    loaded: bool
    version: str | None = None
    flavor: str | None = None  # open | proprietary
    source: str | None = None  # which file told the version


@dataclass
class Detection:
    root: str
    devices: list[Device]
    gpus: list[GpuInfo]
    loaded: LoadedModule
    installed: InstalledModule | None
    kernel: str | None

    @property
    def present(self) -> bool:
        return bool(self.devices)

    @property
    def reboot_required(self) -> bool:
        """The installed module's version differs from the loaded one."""
        return bool(
            self.loaded.loaded
            and self.loaded.version
            and self.installed is not None
            and self.installed.version
            and self.installed.version != self.loaded.version
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "present": self.present,
            "devices": [asdict(d) for d in self.devices],
            "gpus": [{k: v for k, v in asdict(g).items() if k != "raw"} for g in self.gpus],
            "module": {
                "loaded": asdict(self.loaded),
                "installed": asdict(self.installed) if self.installed else None,
                "kernel": self.kernel,
                "reboot_required": self.reboot_required,
            },
        }


def devices(root: str = "/") -> list[Device]:
    """Every NVIDIA display device under ``<root>/sys/bus/pci/devices``, by bus id."""
    base = rooted(root, PCI_DEVICES)
    try:
        entries = sorted(os.listdir(base))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for name in entries:
        d = base / name
        vendor = (_read(d / "vendor") or "").lower()
        cls = (_read(d / "class") or "").lower()
        if vendor != NVIDIA_VENDOR or cls[:6] not in DISPLAY_CLASSES:
            continue
        numa = _read(d / "numa_node")
        out.append(
            Device(
                bus_id=bus_id(name),
                device_id=(_read(d / "device") or "").lower(),
                pci_class=cls,
                driver=_bound_driver(d),
                numa_node=int(numa) if numa and re.match(r"^-?[0-9]+$", numa) else None,
            )
        )
    return out


def _bound_driver(dev: Path) -> str | None:
    link = dev / "driver"
    if link.is_symlink():
        return os.path.basename(os.readlink(link))
    return _read(dev / "driver.name") or None


def loaded_module(root: str = "/") -> LoadedModule:
    """The nvidia kernel module the running kernel has loaded (if any)."""
    sys_version = _read(rooted(root, SYS_MODULE) / "version")
    nvrm = _read(rooted(root, PROC_NVIDIA) / "version")
    loaded = rooted(root, SYS_MODULE).is_dir() or nvrm is not None
    version, flavor, source = None, None, None
    m = _NVRM.search(nvrm or "")
    if m:
        version, source = m.group("version"), f"/{PROC_NVIDIA}/version"
        flavor = "open" if m.group("kind").startswith("Open") else "proprietary"
    if sys_version:
        version, source = sys_version, f"/{SYS_MODULE}/version"
    return LoadedModule(loaded=loaded, version=version, flavor=flavor, source=source)


def gpu_infos(root: str = "/") -> list[GpuInfo]:
    """``proc/driver/nvidia/gpus/*/information`` of every GPU the loaded driver drives."""
    base = rooted(root, PROC_NVIDIA) / "gpus"
    try:
        entries = sorted(os.listdir(base))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for name in entries:
        raw = parse_information(_read(base / name / "information") or "")
        minor = raw.get("Device Minor", "")
        out.append(
            GpuInfo(
                bus_id=bus_id(raw.get("Bus Location") or name),
                model=raw.get("Model"),
                uuid=raw.get("GPU UUID"),
                vbios=raw.get("Video BIOS"),
                minor=int(minor) if minor.isdigit() else None,
                firmware=raw.get("GPU Firmware"),
                excluded=raw.get("GPU Excluded", "No").lower().startswith("y"),
                raw=raw,
            )
        )
    return out


def parse_information(text: str) -> dict[str, str]:
    """``Key:\\t\\t value`` lines into a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def detect(root: str = "/") -> Detection:
    """Everything the GPU stage needs to know about this node's NVIDIA hardware and driver."""
    root = root or "/"
    kernel = kernel_release(root)
    return Detection(
        root=root,
        devices=devices(root),
        gpus=gpu_infos(root),
        loaded=loaded_module(root),
        installed=installed_module(root, kernel) if kernel else None,
        kernel=kernel,
    )
