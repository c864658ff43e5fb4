"""The NVIDIA container toolkit from a directory on the node (``palplat:gpu:toolkit_from``)
instead of a package: air-gapped hosts, and the GPU proof kit (tools/gpu-proof).

The binaries (``nvidia-container-runtime`` and ``nvidia-ctk`` required,
``nvidia-cdi-hook`` when present) are copied into ``/usr/local/nvidia/toolkit``, the first
place k3s looks for the runtime, and the runtime gets a config of palplat's
(``/etc/nvidia-container-runtime/config.toml``) in ``jit-cdi`` mode: the runtime builds
the CDI edits for the requested GPUs when a container starts (from NVML and the driver's
files), so neither libnvidia-container nor a pre-generated CDI spec is needed. Files are
compared by sha256, written atomically (a temporary file renamed over the old one) and
read back; the installed ``nvidia-ctk --version`` must run.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palplat import proc
from palplat.errors import CommandError, InputError, PalplatError
from palplat.nvidia.hardware import rooted

P = "palplat:gpu:toolkit_from"
REQUIRED = ("nvidia-container-runtime", "nvidia-ctk")
OPTIONAL = ("nvidia-cdi-hook",)
INSTALL_DIR = "usr/local/nvidia/toolkit"  # default of palplat:gpu:toolkit_dir
CONFIG = "etc/nvidia-container-runtime/config.toml"


def config_text(install_dir: str = INSTALL_DIR) -> str:
    ctk = f"/{install_dir.strip('/')}/nvidia-ctk"
    return (
        f"# Managed by palplat ({P}): CDI mode, the edits made when a container starts.\n"
        "[nvidia-container-runtime]\n"
        'mode = "jit-cdi"\n'
        'log-level = "info"\n'
        "\n"
        "[nvidia-container-runtime.modes.cdi]\n"
        'default-kind = "nvidia.com/gpu"\n'
        'spec-dirs = ["/etc/cdi", "/var/run/cdi"]\n'
        'annotation-prefixes = ["cdi.k8s.io/"]\n'
        "\n"
        "[nvidia-ctk]\n"
        f'path = "{ctk}"\n'
    )


def _unwritable(path: Path) -> Path | None:
    """The nearest existing directory of ``path`` when it cannot be written (access(2)
    says so on a read-only mount, also for root); None when it can."""
    node = Path(path)
    while not node.exists() and node != node.parent:
        node = node.parent
    return None if os.access(node, os.W_OK) else node


def _sha256(path: Path) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    except FileNotFoundError:
        return None


@dataclass
class Item:
    dest: Path  # under the root
    shown: str  # the path on the node
    new_sha: str
    old_sha: str | None
    source: Path | None = None  # None: ``text``
    mode: int = 0o755
    text: bytes = b""


@dataclass
class LocalPlan:
    source: str
    items: list[Item] = field(default_factory=list)

    @property
    def changes(self) -> dict[str, Any]:
        return {
            it.shown: {
                "old": it.old_sha and f"sha256:{it.old_sha[:12]}",
                "new": f"sha256:{it.new_sha[:12]}",
                "from": str(it.source) if it.source else "palplat (jit-cdi mode)",
            }
            for it in self.items
            if it.old_sha != it.new_sha
        }


def plan(root: str, source: str, install_dir: str = INSTALL_DIR) -> LocalPlan:
    """What would be copied from ``source`` (a directory on the node) into
    ``install_dir`` (``palplat:gpu:toolkit_dir``); InputError naming the pillar path when
    a required binary is missing there."""
    install_dir = install_dir.strip("/")
    src = Path(source)
    missing = [b for b in REQUIRED if not (src / b).is_file()]
    if missing:
        raise InputError(
            f"{P}: {source} has no {', '.join(missing)}: point it at a directory with "
            f"{', '.join(REQUIRED + OPTIONAL)} (e.g. the GPU proof kit's toolkit/), or unset it "
            "to install the package"
        )
    for where, what in ((rooted(root, install_dir), "palplat:gpu:toolkit_dir"),
                        (rooted(root, CONFIG).parent, "its config")):  # fmt: skip
        stop = _unwritable(where)
        if stop is not None:
            raise InputError(
                f"{P}: cannot install into {where} ({what}): {stop} is not writable (a "
                "read-only file system?); set palplat:gpu:toolkit_dir to a writable "
                "directory on k3s's PATH, e.g. /usr/local/bin"
            )
    p = LocalPlan(source=source)
    for name in REQUIRED + OPTIONAL:
        f = src / name
        if not f.is_file():
            continue
        dest = rooted(root, install_dir) / name
        p.items.append(Item(dest, f"/{install_dir}/{name}", _sha256(f), _sha256(dest), f))
    text = config_text(install_dir).encode()
    dest = rooted(root, CONFIG)
    p.items.append(
        Item(dest, f"/{CONFIG}", hashlib.sha256(text).hexdigest(), _sha256(dest), None, 0o644, text)
    )
    return p


def _write_atomic(dest: Path, data_from: Path | None, mode: int, text: bytes = b"") -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.palplat-tmp")
    with open(tmp, "wb") as out:
        if data_from is None:
            out.write(text)
        else:
            with open(data_from, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, dest)


def apply(p: LocalPlan) -> dict[str, Any]:
    """Copy what changed, then read every file back and run ``nvidia-ctk --version``."""
    changes = p.changes
    for it in p.items:
        if it.old_sha != it.new_sha:
            _write_atomic(it.dest, it.source, it.mode, it.text)
    for it in p.items:
        if _sha256(it.dest) != it.new_sha:
            raise PalplatError(f"verify failed: {it.dest} does not hold what was written")
    ctk = next(it.dest for it in p.items if it.dest.name == "nvidia-ctk")
    try:
        proc.run([str(ctk), "--version"], timeout=30)
    except CommandError as exc:
        raise PalplatError(
            f"verify failed: the installed {ctk} does not run ({exc}): was it built for this "
            f"machine? ({P}: {p.source})"
        ) from None
    return changes
