"""Filesystem trees a GPU node shows under ``palplat:gpu:root``, built at test time.

``copy_reference`` copies what a real H100 host showed (``shared/reference/gpu``) into a
tmp dir (never into the repository) so tests can derive variants from it; the other
helpers write the same files from scratch, so the suite means something without
``../shared`` too.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import SHARED

REFERENCE = SHARED / "reference" / "gpu" / "h100-ubuntu-24.04"
REF_BUS = "0000:00:06.0"
REF_VERSION = "580.159.04"
REF_MODEL = "NVIDIA H100 80GB HBM3"
REF_UUID = "GPU-d799e619-d9eb-d4a5-bc61-c9783fa9d263"
KERNEL = "6.8.0-45-generic"

OPEN_NVRM = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {v}  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Thu Oct  2 21:54:32 UTC 2025\n"
    "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n"
)
PROPRIETARY_NVRM = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  {v}  Sat Aug 19 01:15:15 UTC 2023\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
)


def need_reference() -> Path:
    if not (REFERENCE / "root").is_dir():
        pytest.skip(
            f"{REFERENCE} is absent (shared/ is found as REPO.parent/'shared'): the "
            "reference H100 host's tree is not available"
        )
    return REFERENCE


def copy_reference(dest: Path) -> Path:
    """A writable copy of the reference host's sysfs/procfs tree at ``dest``."""
    ref = need_reference()
    shutil.copytree(ref / "root", dest, copy_function=shutil.copyfile)
    for dirpath, _dirs, files in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return dest


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def pci_device(
    root: Path,
    bus: str,
    vendor: str = "0x10de",
    device: str = "0x2330",
    cls: str = "0x030200",
    driver: str | None = "nvidia",
    link: bool = True,
) -> Path:
    """A PCI device; ``driver`` bound as a ``driver`` symlink (``link``) or a
    ``driver.name`` file (as the captured reference tree has it)."""
    d = root / "sys/bus/pci/devices" / bus
    _write(d / "vendor", vendor + "\n")
    _write(d / "device", device + "\n")
    _write(d / "class", cls + "\n")
    _write(d / "numa_node", "-1\n")
    if driver:
        if link:
            target = root / "sys/bus/pci/drivers" / driver
            target.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(target, d), d / "driver")
        else:
            _write(d / "driver.name", driver + "\n")
    return d


def remove_device(root: Path, bus: str) -> None:
    shutil.rmtree(root / "sys/bus/pci/devices" / bus, ignore_errors=True)
    shutil.rmtree(root / "proc/driver/nvidia/gpus" / bus, ignore_errors=True)


def gpu_info(root: Path, bus: str, model: str = REF_MODEL, uuid: str = REF_UUID, minor=0) -> Path:
    text = (
        f"Model: \t\t {model}\nIRQ:   \t\t 41\nGPU UUID: \t {uuid}\nVideo BIOS: \t 96.00.cf.00.01\n"
        f"Bus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\n"
        f"Bus Location: \t {bus}\nDevice Minor: \t {minor}\nGPU Firmware: \t {REF_VERSION}\n"
        "GPU Excluded:\t No\n"
    )
    return _write(root / "proc/driver/nvidia/gpus" / bus / "information", text)


def loaded(
    root: Path, version: str = REF_VERSION, flavor: str = "open", sys_module: bool = True
) -> None:
    """The nvidia module loaded: ``proc/driver/nvidia/version`` (+ ``sys/module``)."""
    nvrm = OPEN_NVRM if flavor == "open" else PROPRIETARY_NVRM
    _write(root / "proc/driver/nvidia/version", nvrm.format(v=version))
    if sys_module:
        _write(root / "sys/module/nvidia/version", version + "\n")


def unload(root: Path) -> None:
    shutil.rmtree(root / "proc/driver/nvidia", ignore_errors=True)
    shutil.rmtree(root / "sys/module/nvidia", ignore_errors=True)


def kernel(root: Path, release: str = KERNEL) -> None:
    _write(root / "proc/sys/kernel/osrelease", release + "\n")


def module_bytes(version: str, license_: str = "Dual MIT/GPL") -> bytes:
    """What matters of a kernel module: an ELF header and its ``.modinfo`` strings (with a
    ``srcversion=`` that must not be taken for ``version=``)."""
    return (
        b"\x7fELF\x02\x01\x01" + b"\x00" * 57 + b"\x00srcversion=0123456789ABCDEF012345\x00"
        b"alias=pci:v000010DEd*sv*sd*bc03sc02i00*\x00"
        + f"version={version}\x00license={license_}\x00".encode()
        + b"vermagic=6.8.0-45-generic SMP preempt mod_unload modversions \x00"
    )


def installed(
    root: Path,
    version: str = REF_VERSION,
    flavor: str = "open",
    rel: str = "updates/dkms/nvidia.ko",
    release: str = KERNEL,
    compress: str | None = None,
    modules_dep: bool = True,
) -> Path:
    """The nvidia module installed for ``release`` (and the running kernel set to it)."""
    kernel(root, release)
    data = module_bytes(version, "Dual MIT/GPL" if flavor == "open" else "NVIDIA")
    if compress == "xz":
        data, rel = lzma.compress(data), rel + ".xz"
    elif compress == "gz":
        data, rel = gzip.compress(data), rel + ".gz"
    base = root / "lib/modules" / release
    path = _write(base / rel, data)
    if modules_dep:
        _write(base / "modules.dep", f"kernel/drivers/net/dummy.ko:\n{rel}: \n")
    return path


def toolkit(root: Path, d: str = "usr/bin") -> Path:
    """An executable ``nvidia-container-runtime`` (a stand-in: tests never run it)."""
    path = _write(root / d / "nvidia-container-runtime", "#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def tiny_tree(root: Path, gpus: int = 1, version: str = REF_VERSION) -> Path:
    """A node with ``gpus`` H100s, the open module loaded and installed, a virtio NIC and
    an emulated VGA card (not NVIDIA) beside them."""
    pci_device(root, "0000:00:00.0", vendor="0x8086", device="0x0d57", cls="0x060000", driver=None)
    pci_device(root, "0000:00:01.0", vendor="0x1234", device="0x1111", cls="0x030000", driver=None)
    pci_device(root, "0000:00:03.0", vendor="0x1af4", device="0x1041", cls="0x020000")
    for i in range(gpus):
        bus = f"0000:00:{6 + i:02x}.0"
        pci_device(root, bus)
        gpu_info(root, bus, uuid=f"GPU-00000000-0000-0000-0000-00000000000{i}", minor=i)
    loaded(root, version)
    installed(root, version)
    return root
