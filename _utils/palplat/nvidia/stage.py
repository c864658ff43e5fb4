"""Whether the GPU stage acts on this node, and the operator's status table.

``palplat:gpu:enabled``: ``false`` does nothing; ``auto`` acts only where an NVIDIA
display device is found (per node, so one pillar fits a mixed cluster); ``true`` fails
on a node without one (a pillar that says "this node has a GPU" and a node that does not
is a mistake worth stopping for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from palplat.errors import PalplatError
from palplat.model import PalplatPillar
from palplat.nvidia.hardware import PCI_DEVICES, Detection, detect, rooted


@dataclass
class Gate:
    active: bool
    reason: str
    detection: Detection | None


def gate(cfg: PalplatPillar) -> Gate:
    """Detect (unless disabled) and decide; PalplatError for ``enabled: true`` without a
    device."""
    enabled = cfg.gpu.enabled
    if enabled is False:
        return Gate(False, "palplat:gpu:enabled is false: the GPU stage does nothing", None)
    det = detect(cfg.gpu.root)
    where = rooted(cfg.gpu.root, PCI_DEVICES)
    if not det.present:
        if enabled == "auto":
            return Gate(
                False,
                f"no NVIDIA display device in {where} (palplat:gpu:enabled: auto): nothing to "
                "do on this node",
                det,
            )
        raise PalplatError(
            f"palplat:gpu:enabled is true but no NVIDIA display device (vendor 0x10de, class "
            f"0x0300/0x0302) was found in {where}; set palplat:gpu:enabled: auto to skip "
            "nodes without a GPU"
        )
    ids = ", ".join(d.bus_id for d in det.devices)
    return Gate(True, f"{len(det.devices)} NVIDIA device(s): {ids}", det)


COLUMNS = (
    ("bus_id", "BUS ID"),
    ("model", "MODEL"),
    ("memory", "MEMORY"),
    ("driver", "DRIVER"),
    ("allocatable", "ALLOCATABLE"),
)


def status_rows(
    det: Detection, smi: dict[str, Any] | None, node_allocatable: int | None
) -> list[dict[str, Any]]:
    """One row per NVIDIA device: model, memory, driver, bus id, allocatable.

    Model and memory come from ``nvidia-smi -q -x`` where it ran, else model from
    ``/proc/driver/nvidia/gpus``. The node's ``nvidia.com/gpu`` allocatable is shared by
    its GPUs: each row shows the node's figure divided evenly (with time-slicing, the
    replicas per GPU) when it divides, else the node's figure.
    """
    smi_gpus = {g["bus_id"]: g for g in (smi or {}).get("gpus") or []}
    infos = {g.bus_id: g for g in det.gpus}
    driver = (smi or {}).get("driver_version") or det.loaded.version
    n = len(det.devices)
    if node_allocatable is None:
        per = None
    elif n and node_allocatable % n == 0:
        per = node_allocatable // n
    else:
        per = node_allocatable
    rows = []
    for d in det.devices:
        s = smi_gpus.get(d.bus_id, {})
        info = infos.get(d.bus_id)
        rows.append(
            {
                "bus_id": d.bus_id,
                "model": s.get("model") or (info.model if info else None),
                "uuid": s.get("uuid") or (info.uuid if info else None),
                "memory": s.get("memory"),
                "driver": driver,
                "kernel_driver": d.driver,
                "allocatable": per,
            }
        )
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    cells = [[h for _, h in COLUMNS]] + [
        ["-" if r.get(k) is None else str(r.get(k)) for k, _ in COLUMNS] for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip() for c in cells
    )
