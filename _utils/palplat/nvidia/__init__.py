"""The GPU stage: NVIDIA driver, container toolkit, k3s runtime, scheduling, verification.

One concern per module (see docs/gpu.md for the chain and every failure message):

- :mod:`.hardware`: NVIDIA display devices from sysfs, the loaded module and per-GPU facts
  from procfs, all under ``palplat:gpu:root``; :mod:`.module`: the module installed for
  the running kernel and its version (reboot required when it differs from the loaded one).
- :mod:`.stage`: :func:`gate` (``enabled: auto`` acts only where a device is found) and
  the operator's status table.
- :mod:`.smi`: ``nvidia-smi -q -x`` found, run and parsed.
- :mod:`.packages`: the per-OS plan of Salt ``pkgrepo.managed`` / ``pkg.installed`` calls;
  :mod:`.keyring`: the toolkit repository's pinned signing key.
- :mod:`.runtime`: k3s's containerd config, the restart gating and the default-runtime
  drop-in.
- :mod:`.cluster`: node label, RuntimeClass, device plugin pod, allocatable.
- :mod:`.verify`: the chain link by link and the wait for the node's allocatable.

This module only re-exports.
"""

from palplat.nvidia import cluster, keyring, packages, runtime, smi, verify
from palplat.nvidia.hardware import (
    DISPLAY_CLASSES,
    NVIDIA_VENDOR,
    Detection,
    Device,
    GpuInfo,
    LoadedModule,
    bus_id,
    detect,
)
from palplat.nvidia.module import InstalledModule, installed_module, kernel_release
from palplat.nvidia.packages import PackagePlan, Step
from palplat.nvidia.stage import Gate, gate, render_table, status_rows
from palplat.nvidia.verify import LINKS, ChainBroken, Link

__all__ = [
    "DISPLAY_CLASSES",
    "LINKS",
    "NVIDIA_VENDOR",
    "ChainBroken",
    "Detection",
    "Device",
    "Gate",
    "GpuInfo",
    "InstalledModule",
    "Link",
    "LoadedModule",
    "PackagePlan",
    "Step",
    "bus_id",
    "cluster",
    "detect",
    "gate",
    "installed_module",
    "kernel_release",
    "keyring",
    "packages",
    "render_table",
    "runtime",
    "smi",
    "status_rows",
    "verify",
]
