"""The host side of the firewall: where palplat keeps its files (:class:`Paths`, under
``firewall.root``), the boot-time config (palplat's table file, included once from the
distribution's main nftables file) and ``nftables.service``."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

from palplat import proc
from palplat.errors import PalplatError
from palplat.nft.ruleset import FAMILY


def rooted(root: str, path: str) -> str:
    return path if (root or "/") == "/" else os.path.join(root, path.lstrip("/"))


def state_key(fw) -> str:
    """Names palplat's state files for one table: ``<netns or host>-inet-<table>``."""
    where = re.sub(r"[^A-Za-z0-9_.-]", "_", fw.netns) if fw.netns else "host"
    return f"{where}-{FAMILY}-{fw.table}"


@dataclass
class Paths:
    persist_file: str
    main_config: str
    state_dir: str
    record: str

    @classmethod
    def of(cls, fw) -> Paths:
        state = rooted(fw.root, "/var/lib/palplat/nftables")
        return cls(
            persist_file=rooted(fw.root, f"/etc/nftables.d/palplat-{fw.table}.nft"),
            main_config=rooted(fw.root, fw.main_config),
            state_dir=state,
            record=os.path.join(state, f"pending-{state_key(fw)}.json"),
        )

    @property
    def include_line(self) -> str:
        return f'include "{self.persist_file}"'


INCLUDE_COMMENT = "# palplat: its firewall table (palplat_nftables; the file is managed by Salt)"
PERSIST_HEADER = (
    "#!/usr/sbin/nft -f\n# Managed by palplat (Salt state palplat_nftables.managed); edits are "
    "replaced.\n# Replaces only table {family} {name}; included from {main}."
)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        pass
    tmp = f"{path}.palplat-tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def persist_plan(paths: Paths, content: str) -> dict[str, Any]:
    """What persisting ``content`` would change: the table file and the include line."""
    changes: dict[str, Any] = {}
    cur = _read(paths.persist_file)
    if cur != content:
        changes[paths.persist_file] = {
            "old": None if cur is None else "differs",
            "new": "palplat's table",
        }
    main = _read(paths.main_config)
    if main is None or paths.include_line not in main.splitlines():
        changes[paths.main_config] = {
            "old": None if main is None else "no palplat include",
            "new": paths.include_line,
        }
    return changes


def persist_write(paths: Paths, content: str) -> None:
    """Write palplat's table file; append one include line to the distribution's main file
    (its content is otherwise kept byte for byte; created when the distribution has none)."""
    if _read(paths.persist_file) != content:
        _write_atomic(paths.persist_file, content)
    main = _read(paths.main_config)
    if main is None:
        _write_atomic(
            paths.main_config, f"#!/usr/sbin/nft -f\n{INCLUDE_COMMENT}\n{paths.include_line}\n"
        )
    elif paths.include_line not in main.splitlines():
        sep = "" if main.endswith("\n") or not main else "\n"
        _write_atomic(paths.main_config, f"{main}{sep}{INCLUDE_COMMENT}\n{paths.include_line}\n")


# ---------------------------------------------------------------- nftables.service

SERVICE = "nftables.service"


def _systemctl(root: str) -> list[str] | None:
    if not shutil.which("systemctl"):
        return None
    return ["systemctl"] + ([f"--root={root}"] if (root or "/") != "/" else [])


def service_enabled(root: str, run=proc.run) -> bool | None:
    """Whether nftables.service starts at boot; None when there is no systemctl."""
    base = _systemctl(root)
    if base is None:
        return None
    res = run(base + ["is-enabled", SERVICE], check=False, timeout=60)
    if res.returncode != 0 and not res.stdout.strip():
        where = "" if (root or "/") == "/" else f" under {root}"
        raise PalplatError(
            f"{SERVICE} is not installed{where} ({res.stderr.strip()}): install the nftables "
            "package (Debian and Arch: nftables), or set palplat:firewall:persist: false"
        )
    return res.stdout.strip() in ("enabled", "enabled-runtime", "static", "alias")


def service_enable(root: str, run=proc.run) -> None:
    base = _systemctl(root)
    if base is not None:
        run(base + ["enable", SERVICE], timeout=60)
