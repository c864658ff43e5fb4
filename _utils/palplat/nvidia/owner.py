"""Who owns this node's NVIDIA driver: palplat (the distribution's packages) or something
outside palplat (NVIDIA's ``.run`` installer, NVIDIA's CUDA repository, a cloud image).

NVIDIA warns against mixing installers: packages installed over a working driver that
came from elsewhere leave two drivers fighting over one GPU. ``palplat:gpu:driver_managed``:

- ``palplat``: palplat installs the distribution's driver packages (and a driver loaded
  from elsewhere is the operator's business: the plan says so);
- ``external``: the driver is managed outside palplat; palplat installs nothing and only
  checks that a driver is loaded and healthy (the wanted branch is not enforced);
- ``auto`` (the default): palplat owns the driver where its main package is installed
  (then ``pkg.installed`` has nothing to do) or where no driver is loaded (a bare host).
  A loaded, healthy driver of the wanted branch and flavour that did not come from that
  package is recognised and left alone. A loaded driver of another branch or flavour, or
  one that is not healthy, is an error naming both choices: palplat does not guess.

"Healthy": every NVIDIA display device is bound to the ``nvidia`` kernel driver and known
to the loaded driver (``/proc/driver/nvidia/gpus``), and ``nvidia-smi`` (where found)
answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from palplat.model import Gpu
from palplat.nvidia.hardware import Detection

PALPLAT, EXTERNAL = "palplat", "external"
P = "palplat:gpu:driver_managed"


@dataclass
class Health:
    ok: bool
    problems: list[str] = field(default_factory=list)


@dataclass
class Decision:
    """``manage``: run the package steps; otherwise leave the driver alone."""

    manage: bool
    mode: str  # the pillar's value
    reason: str
    error: str | None = None  # auto could not decide: fail with this, change nothing
    packages: dict[str, str | None] = field(default_factory=dict)  # main package -> version

    def as_dict(self) -> dict[str, Any]:
        return {
            "managed_by": PALPLAT if self.manage else EXTERNAL,
            "mode": self.mode,
            "reason": self.error or self.reason,
            "packages": dict(self.packages),
        }


def main_package(gpu: Gpu, os: str) -> str:
    """The package whose presence says "this driver came from the distribution"."""
    open_ = gpu.driver == "nvidia-open"
    if os == "arch":
        return "nvidia-open" if open_ else "nvidia"
    if os == "debian12":
        return "nvidia-open-kernel-dkms" if open_ else "nvidia-kernel-dkms"
    return f"nvidia-driver-{gpu.driver_branch}{'-open' if open_ else ''}"


def branch(gpu: Gpu) -> str:
    """``580`` of ``580`` and ``580-server``."""
    return gpu.driver_branch.split("-", 1)[0]


def health(det: Detection, smi: Mapping[str, Any] | None = None) -> Health:
    """Is the loaded driver driving every NVIDIA device? ``smi``: parsed ``nvidia-smi -q
    -x`` (``{"error": ...}`` when it failed, None where there is no nvidia-smi)."""
    problems = []
    if not det.loaded.loaded:
        problems.append("no nvidia module is loaded")
    known = {g.bus_id for g in det.gpus}
    for d in det.devices:
        if d.driver not in (None, "nvidia"):
            problems.append(f"{d.bus_id} is bound to {d.driver}, not nvidia")
        elif det.loaded.loaded and d.bus_id not in known:
            problems.append(f"{d.bus_id} is not in /proc/driver/nvidia/gpus")
    if smi and smi.get("error"):
        problems.append(str(smi["error"]))
    return Health(not problems, problems)


def _matches(gpu: Gpu, det: Detection, os: str) -> list[str]:
    """Why the loaded driver is not the wanted one (empty: it is)."""
    out = []
    version, flavor = det.loaded.version or "", det.loaded.flavor
    want_flavor = "open" if gpu.driver == "nvidia-open" else "proprietary"
    if flavor and flavor != want_flavor:
        out.append(f"it is the {flavor} module, palplat:gpu:driver is {gpu.driver}")
    if os == "ubuntu2404" and version.split(".", 1)[0] != branch(gpu):
        out.append(
            f"its branch is {version.split('.', 1)[0] or 'unknown'}, "
            f"palplat:gpu:driver_branch is {gpu.driver_branch}"
        )
    return out


def decide(
    gpu: Gpu,
    os: str,
    det: Detection,
    package_version: Callable[[str], str | None],
    smi: Mapping[str, Any] | None = None,
) -> Decision:
    """Whether the driver state installs packages on this node. ``package_version``: the
    installed version of a package ('' or None: not installed), e.g. Salt's
    ``pkg.version``."""
    pkg = main_package(gpu, os)
    have = package_version(pkg) or None
    pkgs = {pkg: have}
    loaded = det.loaded
    what = f"nvidia {loaded.version or '(version unknown)'} ({loaded.flavor or 'flavour unknown'})"
    mode = gpu.driver_managed
    if mode == PALPLAT:
        reason = f"{P} is palplat: the driver packages are installed by palplat"
        if loaded.loaded and not have:
            reason += (
                f"; note: {what} is loaded but {pkg} is not installed: if that driver came "
                "from NVIDIA's installer or another repository, the packages will conflict "
                f"with it (set {P}: external to keep it)"
            )
        return Decision(True, mode, reason, packages=pkgs)
    h = health(det, smi)
    if mode == EXTERNAL:
        reason = f"{P} is external: palplat installs no driver package"
        if loaded.loaded:
            reason += f"; {what} is loaded"
            off = _matches(gpu, det, os)
            if off:
                reason += f" ({'; '.join(off)}: not enforced with {P}: external)"
        return Decision(False, mode, reason, packages=pkgs)
    # auto
    if have:
        return Decision(
            True, mode, f"{pkg} {have} is installed: palplat owns the driver", packages=pkgs
        )
    if not loaded.loaded:
        return Decision(
            True, mode, "no nvidia driver is loaded: palplat installs the packages", packages=pkgs
        )
    off = _matches(gpu, det, os)
    if h.ok and not off:
        return Decision(
            False,
            mode,
            f"{what} is loaded and healthy but was not installed from {pkg} (NVIDIA's "
            "installer, the CUDA repository or the machine image put it there): palplat leaves "
            f"it alone ({P}: auto; set it to external to say so, or to palplat to have palplat "
            "install the packages after removing that driver)",
            packages=pkgs,
        )
    why = "; ".join(off + h.problems)
    return Decision(
        False,
        mode,
        "",
        error=(
            f"{what} is loaded but was not installed from {pkg}, and it is not the wanted "
            f"driver ({why}). Installing packages over it would leave two drivers: set {P}: "
            f"external to keep it, or remove it and set {P}: palplat to have palplat "
            "install the packages"
        ),
        packages=pkgs,
    )
