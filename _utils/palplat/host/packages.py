"""Is a package known to this host's package index? Asked before the host stage installs
anything, in the plan as in the real run: Salt's ``pkg.installed`` says "would be
installed" in test mode for any name, and fails only in the real run (after ``failhard``
has stopped everything after it) when the name does not exist here.

One query per OS family for all names (argv only):

- Debian: ``apt-cache policy NAME...`` (a name with no candidate and not installed is
  unknown); an empty index (no ``/var/lib/apt/lists/*_Packages``) cannot be asked.
- RedHat: ``dnf repoquery`` plus ``rpm -q`` for what is installed.
- Arch: ``pacman -Si`` (sync databases) plus ``pacman -Qq`` (installed).

Names that differ between families (``nfs-utils`` vs Debian's ``nfs-common``) get a hint
with the per-family form of ``host:packages``.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable, Iterable

from palplat import proc
from palplat.errors import CommandError

# well-known packages whose name differs between OS families: name -> {family: name there}
KNOWN_AS: dict[str, dict[str, str]] = {
    "nfs-utils": {"Debian": "nfs-common", "Suse": "nfs-client"},
    "nfs-common": {"RedHat": "nfs-utils", "Arch": "nfs-utils", "Suse": "nfs-client"},
    "openssh-server": {"Arch": "openssh"},
    "openssh": {"Debian": "openssh-server", "RedHat": "openssh-server"},
    "dnsutils": {"RedHat": "bind-utils", "Arch": "bind"},
    "bind-utils": {"Debian": "dnsutils", "Arch": "bind"},
    "open-iscsi": {"RedHat": "iscsi-initiator-utils"},
    "iscsi-initiator-utils": {"Debian": "open-iscsi", "Arch": "open-iscsi"},
    "iputils-ping": {"RedHat": "iputils", "Arch": "iputils"},
    "cron": {"RedHat": "cronie", "Arch": "cronie"},
    "cronie": {"Debian": "cron"},
}
INDEX = {"Debian": "apt", "RedHat": "dnf", "Arch": "pacman"}


def hint(name: str, os_family: str) -> str:
    """How ``name`` is called on ``os_family`` (empty when palplat does not know)."""
    there = KNOWN_AS.get(name, {}).get(os_family)
    if not there:
        return ""
    return (
        f"; {os_family} calls it {there}: write the entry per OS family, e.g. "
        f"{{{os_family}: {there}, ...: {name}}}"
    )


def _apt(names: list[str], run: Callable[..., proc.Result], root: str) -> set[str] | None:
    if not glob.glob(os.path.join(root, "var/lib/apt/lists/*_Packages*")):
        return None  # never updated: Salt's pkg.installed refreshes it first
    res = run(["apt-cache", "policy", *names], check=False, timeout=120)
    known: set[str] = set()
    current = None
    installed = candidate = None
    for line in (res.stdout or "").splitlines() + [""]:
        if line and not line.startswith(" ") and line.endswith(":"):
            current, installed, candidate = line[:-1].split(":", 1)[0], None, None
            continue
        text = line.strip()
        if text.startswith("Installed:"):
            installed = text.split(":", 1)[1].strip()
        elif text.startswith("Candidate:"):
            candidate = text.split(":", 1)[1].strip()
            if current and (candidate != "(none)" or installed not in (None, "(none)")):
                known.add(current)
    return known


def _dnf(names: list[str], run: Callable[..., proc.Result]) -> set[str] | None:
    if not shutil.which("dnf"):
        return None
    res = run(["dnf", "-q", "repoquery", "--qf", "%{name}\\n", *names], check=False, timeout=300)
    known = set(res.stdout.split())
    rpm = run(["rpm", "-q", "--qf", "%{NAME}\\n", *names], check=False, timeout=60)
    known |= {ln.strip() for ln in rpm.stdout.splitlines() if ln.strip() in names}
    return known


def _pacman(names: list[str], run: Callable[..., proc.Result]) -> set[str] | None:
    res = run(["pacman", "-Si", *names], check=False, timeout=120)
    known = {
        ln.split(":", 1)[1].strip()
        for ln in res.stdout.splitlines()
        if ln.startswith("Name") and ":" in ln
    }
    local = run(["pacman", "-Qq", *names], check=False, timeout=60)
    return known | {n for n in local.stdout.split() if n in names}


def unknown(
    names: Iterable[str],
    os_family: str,
    run: Callable[..., proc.Result] = proc.run,
    root: str = "/",
) -> list[str] | None:
    """The names this host's package index does not know; None when it cannot be asked
    (an OS family palplat has no query for, an index never fetched, no package tool)."""
    want = sorted(set(names))
    if not want:
        return []
    try:
        if os_family == "Debian":
            known = _apt(want, run, root)
        elif os_family == "RedHat":
            known = _dnf(want, run)
        elif os_family == "Arch":
            known = _pacman(want, run)
        else:
            return None
    except CommandError:
        return None  # the tool is missing: nothing to say about the names
    if known is None:
        return None
    return [n for n in want if n not in known]
