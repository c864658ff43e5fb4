"""k3s and the NVIDIA container runtime on one node.

k3s looks for ``nvidia-container-runtime`` when it starts (``/usr/local/nvidia/toolkit``,
then the service's PATH) and writes a containerd config with an ``nvidia`` runtime only
when it finds it: ``<data-dir>/agent/etc/containerd/config.toml``, rewritten at every
start. So a toolkit installed (or upgraded) after k3s started needs one restart, and
nothing else does. :func:`plan` decides that from what is on disk:

- the containerd config has no ``nvidia`` runtime while the toolkit is installed: k3s
  started before the toolkit appeared;
- the toolkit's binary changed (inode ctime: package managers keep the build's mtime)
  after k3s wrote its containerd config (= after k3s started);
- the k3s config drop-in of the GPU stage (``config.yaml.d/50-palplat-gpu.yaml``, holding
  ``default-runtime: nvidia`` when ``palplat:gpu:default_runtime``) changed.

:func:`apply` writes the drop-in, restarts the k3s unit, waits until the node is Ready
and k3s has rewritten its containerd config, and checks that it holds the runtime.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palplat import k3s
from palplat.config import RUNTIME_CLASS
from palplat.errors import PalplatError
from palplat.model import PalplatPillar
from palplat.nvidia.hardware import rooted

RUNTIME_BINARY = "nvidia-container-runtime"
# k3s's own search (GPU operator's toolkit dir first), then systemd's default PATH
TOOLKIT_DIRS = (
    "usr/local/nvidia/toolkit",
    "usr/local/sbin",
    "usr/local/bin",
    "usr/sbin",
    "usr/bin",
    "sbin",
    "bin",
)
DROPIN_NAME = "50-palplat-gpu.yaml"
CONTAINERD_CONFIG = "agent/etc/containerd/config.toml"


class RuntimeError_(PalplatError):  # noqa: N801 - avoid shadowing the builtin
    """k3s's containerd lacks the NVIDIA runtime (or k3s cannot be restarted)."""


@dataclass
class Toolkit:
    path: str  # on the node
    changed_at: float  # ctime of the binary


def find_toolkit(root: str = "/") -> Toolkit | None:
    """``nvidia-container-runtime`` where k3s would find it."""
    for d in TOOLKIT_DIRS:
        f = rooted(root, d) / RUNTIME_BINARY
        if f.is_file() and os.access(f, os.X_OK):
            return Toolkit(path=f"/{d}/{RUNTIME_BINARY}", changed_at=f.stat().st_ctime)
    return None


# ------------------------------------------------------------------ containerd config

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEYVAL = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=\s*(.*?)\s*(#.*)?$""")


def _split_key(key: str) -> list[str]:
    parts, cur, quote = [], "", None
    for ch in key:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def _value(raw: str) -> Any:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    if raw in ("true", "false"):
        return raw == "true"
    return raw


def parse_containerd(text: str) -> tuple[dict[str, str | None], str | None]:
    """(runtimes: name -> BinaryName, default_runtime_name) of a containerd config, for
    both config versions k3s writes (v2 ``io.containerd.grpc.v1.cri``, v3
    ``io.containerd.cri.v1.runtime``)."""
    runtimes: dict[str, str | None] = {}
    default = None
    table: list[str] = []
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            table = _split_key(m.group(1))
            if "runtimes" in table:
                i = table.index("runtimes")
                if i + 1 < len(table):
                    runtimes.setdefault(table[i + 1], None)
            continue
        kv = _KEYVAL.match(line)
        if not kv:
            continue
        key, val = _split_key(kv.group(1))[-1], _value(kv.group(2))
        if key == "default_runtime_name" and table and table[-1] == "containerd":
            default = str(val)
        if key == "BinaryName" and "runtimes" in table:
            i = table.index("runtimes")
            if i + 1 < len(table):
                runtimes[table[i + 1]] = str(val)
    return runtimes, default


@dataclass
class Containerd:
    path: Path
    written_at: float | None  # mtime: when k3s (re)wrote it, i.e. started
    runtimes: dict[str, str | None] = field(default_factory=dict)
    default_runtime: str | None = None

    @property
    def exists(self) -> bool:
        return self.written_at is not None

    @property
    def has_nvidia(self) -> bool:
        return RUNTIME_CLASS in self.runtimes


def containerd_config_path(cfg: PalplatPillar) -> Path:
    return k3s.paths(cfg).data_dir / CONTAINERD_CONFIG


def read_containerd(cfg: PalplatPillar) -> Containerd:
    path = containerd_config_path(cfg)
    try:
        st = path.stat()
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return Containerd(path=path, written_at=None)
    runtimes, default = parse_containerd(text)
    return Containerd(path, st.st_mtime, runtimes, default)


# --------------------------------------------------------------------------- drop-in


def dropin_path(cfg: PalplatPillar) -> Path:
    """k3s reads ``<config>.d/*.yaml`` after its config file, in name order."""
    return Path(str(k3s.paths(cfg).config) + ".d") / DROPIN_NAME


def desired_dropin(cfg: PalplatPillar) -> str | None:
    if not cfg.gpu.default_runtime:
        return None
    return (
        "# Managed by palplat (Salt): palplat:gpu:default_runtime. Only on GPU nodes.\n"
        f"default-runtime: {RUNTIME_CLASS}\n"
    )


def wants_default_runtime(cfg: PalplatPillar) -> bool:
    return cfg.gpu.default_runtime or cfg.k3s.config.get("default-runtime") == RUNTIME_CLASS


# ------------------------------------------------------------------------------ plan


@dataclass
class RuntimePlan:
    managed: bool  # palplat runs k3s on this node (k3s:mode install)
    toolkit: Toolkit | None
    containerd: Containerd
    dropin: Path
    dropin_old: str | None
    dropin_new: str | None
    reasons: list[str] = field(default_factory=list)

    @property
    def restart(self) -> bool:
        return bool(self.reasons)

    @property
    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.dropin_old != self.dropin_new:
            out["dropin"] = {
                "old": self.dropin_old,
                "new": self.dropin_new,
                "path": str(self.dropin),
            }
        if self.restart:
            out["k3s"] = {"old": "running", "new": "restarted", "why": "; ".join(self.reasons)}
        return out


def plan(cfg: PalplatPillar, toolkit_pending: bool = False) -> RuntimePlan:
    """Whether k3s must restart to pick up the NVIDIA runtime. ``toolkit_pending``: test
    mode, the toolkit state would install the toolkit first."""
    managed = cfg.k3s.mode == "install"
    toolkit = find_toolkit(cfg.gpu.root)
    cd = read_containerd(cfg)
    dpath = dropin_path(cfg)
    try:
        old = dpath.read_text()
    except FileNotFoundError:
        old = None
    p = RuntimePlan(managed, toolkit, cd, dpath, old, desired_dropin(cfg) if managed else old)
    if not managed:
        return p
    if not cd.exists:
        raise RuntimeError_(
            f"k3s has not written its containerd config {cd.path}: k3s is not running on this "
            "node; run the k3s stage (palplat.k3s) first"
        )
    if toolkit is None:
        if toolkit_pending:
            p.reasons.append("nvidia-container-toolkit would be installed after k3s started")
            return p
        raise RuntimeError_(
            f"{RUNTIME_BINARY} is not installed (looked in "
            f"{', '.join('/' + d for d in TOOLKIT_DIRS)}): install nvidia-container-toolkit "
            "(palplat:gpu:container_toolkit: true)"
        )
    if not cd.has_nvidia:
        p.reasons.append(
            f"k3s started before {RUNTIME_BINARY} was installed (its containerd config has no "
            "nvidia runtime)"
        )
    elif cd.written_at is not None and toolkit.changed_at > cd.written_at:
        p.reasons.append(f"{toolkit.path} changed after k3s started")
    if p.dropin_old != p.dropin_new:
        p.reasons.append(f"the k3s config drop-in {DROPIN_NAME} changed")
    elif wants_default_runtime(cfg) and cd.default_runtime != RUNTIME_CLASS:
        p.reasons.append(
            f"containerd's default runtime is {cd.default_runtime or 'runc'}, not {RUNTIME_CLASS}"
        )
    return p


def apply(cfg: PalplatPillar, p: RuntimePlan, progress=None, timeout: float | None = None) -> dict:
    """Write the drop-in, restart k3s, wait for Ready and the rewritten containerd config,
    then verify it holds the NVIDIA runtime. Returns the changes."""
    if not p.restart and p.dropin_old == p.dropin_new:
        return {}
    if p.dropin_new is None:
        p.dropin.unlink(missing_ok=True)
    else:
        p.dropin.parent.mkdir(parents=True, exist_ok=True)
        p.dropin.write_text(p.dropin_new)
        os.chmod(p.dropin, 0o600)
    if not p.restart:
        return p.changes
    sm = k3s.service_manager(cfg)
    unit = k3s.unit_name(cfg.k3s)
    if progress:
        progress("restart", f"restarting {unit}: {'; '.join(p.reasons)}", force=True)
    started = time.time()
    sm.restart(unit)
    k3s.wait_ready(cfg, progress=progress)
    cd = wait_containerd(cfg, since=started, timeout=timeout or cfg.k3s.ready_timeout)
    problem = containerd_problem(cfg, cd)
    if problem:
        raise RuntimeError_(f"verify failed after restarting {unit}: {problem}")
    return p.changes


def wait_containerd(cfg: PalplatPillar, since: float, timeout: float) -> Containerd:
    """The containerd config once k3s has rewritten it after ``since``."""
    deadline = time.monotonic() + timeout
    while True:
        cd = read_containerd(cfg)
        if cd.written_at is not None and cd.written_at >= since - 0.05:
            return cd
        if time.monotonic() >= deadline:
            raise RuntimeError_(
                f"k3s did not rewrite {cd.path} within {timeout:g}s of its restart: see the k3s "
                "log (journalctl -u k3s)"
            )
        time.sleep(0.5)


def containerd_problem(cfg: PalplatPillar, cd: Containerd) -> str | None:
    """What is wrong with k3s's containerd config for GPU pods (None: nothing)."""
    if not cd.exists:
        return f"k3s has not written {cd.path} (k3s is not running)"
    if not cd.has_nvidia:
        return (
            f"{cd.path} has no nvidia runtime: k3s did not find {RUNTIME_BINARY} when it "
            "started (is nvidia-container-toolkit installed where k3s looks, /usr/bin or "
            "/usr/local/nvidia/toolkit?)"
        )
    if wants_default_runtime(cfg) and cd.default_runtime != RUNTIME_CLASS:
        return (
            f"{cd.path} has default runtime {cd.default_runtime or 'runc'}, not "
            f"{RUNTIME_CLASS} (palplat:gpu:default_runtime)"
        )
    return None
