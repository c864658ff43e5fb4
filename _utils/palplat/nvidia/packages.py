"""The driver and container-toolkit packages per OS family, as Salt state calls.

:func:`plan` turns ``palplat:gpu`` and the minion's grains into ordered :class:`Step` s:
Salt's own ``pkgrepo.managed`` / ``pkg.installed`` (called by the ``palplat_nvidia``
states through ``__states__``) and palplat's ``keyring`` step (the toolkit repository's
pinned signing key, :mod:`palplat.nvidia.keyring`).

- Arch: ``nvidia-open`` or ``nvidia``, ``nvidia-utils``; ``nvidia-container-toolkit``
  (all in Arch's own repositories).
- Debian 12: the distribution's driver (``nvidia-open-kernel-dkms`` or
  ``nvidia-kernel-dkms``, ``nvidia-driver``, ``nvidia-smi``, ``firmware-misc-nonfree``,
  the kernel headers DKMS builds against) from contrib/non-free/non-free-firmware, which
  palplat adds in a sources file of its own (``palplat:gpu:debian_non_free``).
- Ubuntu 24.04: ``nvidia-driver-<branch>[-open]`` and ``nvidia-utils-<branch>`` from the
  archive's restricted component.
- Debian and Ubuntu: NVIDIA's container-toolkit repository, signed-by a keyring that holds
  only the pinned key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from palplat.errors import InputError
from palplat.model import Gpu

SUPPORTED = "Arch Linux, Debian 12 and Ubuntu 24.04"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_NON_FREE_FILE = "/etc/apt/sources.list.d/palplat-debian-non-free.list"


@dataclass
class Step:
    """One state call: ``state`` is ``pkgrepo.managed``, ``pkg.installed`` or ``keyring``."""

    id: str
    state: str
    kwargs: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "kwargs": dict(self.kwargs)}


@dataclass
class PackagePlan:
    os: str  # arch | debian12 | ubuntu2404
    driver: list[Step] = field(default_factory=list)
    toolkit: list[Step] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "os": self.os,
            "driver": [s.as_dict() for s in self.driver],
            "toolkit": [s.as_dict() for s in self.toolkit],
        }


def os_key(grains: Mapping[str, Any]) -> str:
    """``arch``, ``debian12`` or ``ubuntu2404``; InputError naming the OS otherwise."""
    family = str(grains.get("os_family") or "")
    name = str(grains.get("os") or "")
    major = str(grains.get("osmajorrelease") or "")
    release = str(grains.get("osrelease") or "")
    if family == "Arch":
        return "arch"
    if name == "Debian" and major == "12":
        return "debian12"
    if name == "Ubuntu" and release.startswith("24.04"):
        return "ubuntu2404"
    found = " ".join(x for x in (name or family or "an unknown OS", release) if x)
    raise InputError(
        f"the GPU stage installs the NVIDIA driver on {SUPPORTED}; this node runs {found}. "
        "Run the node on a supported OS, or set palplat:gpu:enabled: false in this node's "
        "pillar and set up the driver, nvidia-container-toolkit, k3s's nvidia runtime and the "
        "node label nvidia.com/gpu.present=true yourself"
    )


def _arch(grains: Mapping[str, Any]) -> str:
    return str(grains.get("osarch") or "amd64")


def driver_packages(gpu: Gpu, os: str, grains: Mapping[str, Any]) -> list[str]:
    open_ = gpu.driver == "nvidia-open"
    if os == "arch":
        return ["nvidia-open" if open_ else "nvidia", "nvidia-utils"]
    if os == "debian12":
        return [
            f"linux-headers-{_arch(grains)}",
            "nvidia-open-kernel-dkms" if open_ else "nvidia-kernel-dkms",
            "nvidia-driver",
            "nvidia-smi",
            "firmware-misc-nonfree",
        ]
    branch = gpu.driver_branch
    return [f"nvidia-driver-{branch}{'-open' if open_ else ''}", f"nvidia-utils-{branch}"]


def plan(gpu: Gpu, grains: Mapping[str, Any]) -> PackagePlan:
    """The driver and toolkit steps for this minion's OS."""
    os = os_key(grains)
    out = PackagePlan(os=os)
    if os == "debian12" and gpu.debian_non_free:
        codename = str(grains.get("oscodename") or "bookworm")
        line = (
            f"deb [signed-by={DEBIAN_KEYRING}] {gpu.debian_mirror.rstrip('/')} {codename} "
            "contrib non-free non-free-firmware"
        )
        out.driver.append(
            Step(
                "debian-non-free",
                "pkgrepo.managed",
                {"name": line, "file": DEBIAN_NON_FREE_FILE, "aptkey": False},
            )
        )
    out.driver.append(
        Step(
            "nvidia-driver",
            "pkg.installed",
            {"name": "nvidia-driver", "pkgs": driver_packages(gpu, os, grains)},
        )
    )
    if not gpu.container_toolkit:
        return out
    if gpu.toolkit_from:  # no package manager: the toolkit state copies the binaries
        out.toolkit.append(
            Step(
                "nvidia-container-toolkit",
                "toolkit_from",
                {"from": gpu.toolkit_from, "to": gpu.toolkit_dir, "mode": "jit-cdi"},
            )
        )
        return out
    if os in ("debian12", "ubuntu2404"):
        repo = gpu.toolkit_repo
        url = repo.url.replace("{arch}", _arch(grains)).rstrip("/")
        out.toolkit.append(
            Step(
                "nvidia-container-toolkit-key",
                "keyring",
                {"path": repo.keyring, "url": repo.key_url, "fingerprint": repo.key_fingerprint},
            )
        )
        out.toolkit.append(
            Step(
                "nvidia-container-toolkit-repo",
                "pkgrepo.managed",
                {
                    "name": f"deb [signed-by={repo.keyring}] {url} /",
                    "file": repo.file,
                    "aptkey": False,
                },
            )
        )
    out.toolkit.append(
        Step(
            "nvidia-container-toolkit",
            "pkg.installed",
            {"name": "nvidia-container-toolkit", "pkgs": ["nvidia-container-toolkit"]},
        )
    )
    return out
