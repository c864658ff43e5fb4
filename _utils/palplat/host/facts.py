"""Checks of ``palplat:host`` against the host itself, run on the minion by
``palplat_host.checked`` before any host state: things the master cannot know (which
kernel modules and parameters this kernel has, this host's tz database). Same form as the
pillar checks: one :class:`PillarProblem` per problem, with its pillar path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from palplat import proc
from palplat.errors import PillarProblem
from palplat.host import packages as pkgindex
from palplat.host.kernel import module_known
from palplat.host.settings import SYSCTL_FROM_MODULE, modules, package_names, settings, sysctls

if TYPE_CHECKING:  # pragma: no cover
    from palplat.model import PalplatPillar

BASE = "palplat:host"


def sysctl_path(name: str, root: str | Path = "/") -> Path:
    """``net.ipv4.ip_forward`` -> ``/proc/sys/net/ipv4/ip_forward`` (a ``/`` in a name
    stands for a ``.`` inside one component, as sysctl(8) writes interface names)."""
    parts = [p.replace("/", ".") for p in name.split(".")]
    return Path(root, "proc/sys", *parts)


def package_problems(
    cfg: PalplatPillar, os_family: str, run=proc.run, root: str | Path = "/"
) -> list[PillarProblem]:
    """Every package the host and firewall stages would install that this host's package
    index does not know (nothing when the index cannot be asked)."""
    s = settings(cfg, os_family)
    pillar = package_names(cfg, os_family)
    names = [*s["packages"], *s["firewall_packages"]]
    missing = pkgindex.unknown(names, os_family, run, str(root))
    if not missing:
        return []
    tool = pkgindex.INDEX.get(os_family, "the package manager")
    out = []
    for name in missing:
        where = next((i for i, n in pillar if n == name), None)
        if where is not None:
            entry = cfg.host.packages[where]
            path = f"{BASE}:packages:{where}" + ("" if isinstance(entry, str) else f":{os_family}")
            why = ""
        else:
            path = BASE
            why = f"needs the package {name} (the host or firewall stage installs it): "
        out.append(
            PillarProblem(
                path,
                f"{why}{name} is not in {tool}'s package index on this host ({os_family})"
                f"{pkgindex.hint(name, os_family)}; check the name, or add the repository "
                "that has it, then re-run",
                name,
            )
        )
    return out


def problems(
    cfg: PalplatPillar, root: str | Path = "/", os_family: str | None = None, run=proc.run
) -> list[PillarProblem]:
    """What this host cannot take; ``os_family`` (Salt's grain) also checks the packages
    against the package index."""
    h = cfg.host
    out: list[PillarProblem] = []
    if not h.manage:
        return out
    if os_family:
        out.extend(package_problems(cfg, os_family, run, root))
    loaded_later = set(modules(cfg))
    release = os.uname().release
    for name in modules(cfg):
        if module_known(name, root) is not False:
            continue
        own = name in h.kernel_modules
        out.append(
            PillarProblem(
                f"{BASE}:kernel_modules:{h.kernel_modules.index(name)}"
                if own
                else f"{BASE}:k3s_prerequisites",
                ("" if own else f"needs the kernel module {name}: ")
                + f"no such kernel module for the running kernel {release} (not loaded, not "
                f"built in, not in /lib/modules/{release}/modules.dep); check the name "
                "(`modinfo <name>`) or install the kernel's extra modules package",
                name,
            )
        )
    for name in sysctls(cfg):
        if sysctl_path(name, root).exists():
            continue
        module = next((m for p, m in SYSCTL_FROM_MODULE.items() if name.startswith(p)), None)
        if module and module in loaded_later:
            continue  # appears once the stage has loaded the module
        hint = (
            f"; it appears once the {module} module is loaded (add it to host:kernel_modules)"
            if module
            else ""
        )
        own = name in h.sysctl
        out.append(
            PillarProblem(
                f"{BASE}:sysctl:{name}" if own else f"{BASE}:k3s_prerequisites",
                ("" if own else f"needs {name}: ")
                + f"no such kernel parameter on this host ({sysctl_path(name, root)} does not "
                f"exist){hint}; `sysctl -a` lists them",
            )
        )
    if h.timezone and not Path(root, "usr/share/zoneinfo", h.timezone).is_file():
        out.append(
            PillarProblem(
                f"{BASE}:timezone",
                "is not in this host's tz database (/usr/share/zoneinfo); "
                "`timedatectl list-timezones` lists them",
                h.timezone,
            )
        )
    return out
