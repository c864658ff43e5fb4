"""``nvidia-smi -q -x``: find the binary, run it, parse its XML into one dict per GPU."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET  # noqa: S405 - local tool output, no external entities
from typing import Any

from palplat import proc
from palplat.errors import CommandError, PalplatError
from palplat.nvidia.hardware import bus_id, rooted

# where nvidia-smi lives besides PATH: distribution packages, the GPU operator, hosts that
# mount the driver under /usr/local/nvidia (as the reference H100 host does)
SMI_PATHS = ("usr/bin/nvidia-smi", "usr/local/nvidia/bin/nvidia-smi", "usr/local/bin/nvidia-smi")


def find_smi(root: str = "/") -> str | None:
    """The nvidia-smi binary: on PATH (only for the real root), else a known location."""
    if (root or "/") == "/":
        exe = shutil.which("nvidia-smi")
        if exe:
            return exe
    for rel in SMI_PATHS:
        path = rooted(root, rel)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def query(exe: str, timeout: float = 60) -> str:
    """The XML of ``nvidia-smi -q -x``; raises :class:`CommandError` when it fails."""
    return proc.run([exe, "-q", "-x"], timeout=timeout).stdout


def _text(el: ET.Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path)
    if found is None or found.text is None:
        return None
    text = found.text.strip()
    return None if text in ("", "N/A") else text


def _mib(text: str | None) -> int | None:
    if not text:
        return None
    num = text.split()[0]
    return int(num) if num.isdigit() else None


def parse(xml_text: str) -> dict[str, Any]:
    """``{"driver_version", "cuda_version", "gpus": [{bus_id, model, uuid, memory_mib,
    ...}]}`` from ``nvidia-smi -q -x`` output."""
    try:
        root = ET.fromstring(xml_text)  # noqa: S314 - see the import
    except ET.ParseError as exc:
        raise PalplatError(f"nvidia-smi -q -x printed something that is not XML: {exc}") from None
    gpus = []
    for g in root.findall("gpu"):
        total = _mib(_text(g, "fb_memory_usage/total"))
        gpus.append(
            {
                "bus_id": bus_id(g.get("id") or _text(g, "pci/pci_bus_id") or ""),
                "model": _text(g, "product_name"),
                "architecture": _text(g, "product_architecture"),
                "uuid": _text(g, "uuid"),
                "minor": _text(g, "minor_number"),
                "vbios": _text(g, "vbios_version"),
                "memory_mib": total,
                "memory": f"{total} MiB" if total is not None else None,
                "persistence_mode": _text(g, "persistence_mode"),
                "mig_mode": _text(g, "mig_mode/current_mig"),
                "temperature": _text(g, "temperature/gpu_temp"),
            }
        )
    return {
        "driver_version": _text(root, "driver_version"),
        "cuda_version": _text(root, "cuda_version"),
        "attached_gpus": _text(root, "attached_gpus"),
        "gpus": gpus,
    }


def read(root: str = "/", exe: str | None = None) -> dict[str, Any] | None:
    """Parsed ``nvidia-smi -q -x`` where the binary exists; None where it does not.
    A failing nvidia-smi (driver not loaded, version mismatch) is reported as
    ``{"error": ...}``."""
    exe = exe or find_smi(root)
    if exe is None:
        return None
    try:
        return parse(query(exe))
    except CommandError as exc:
        return {"error": f"nvidia-smi failed: {exc}", "gpus": []}
