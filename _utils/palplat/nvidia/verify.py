"""Is this GPU node usable? The chain from the driver to the node's allocatable, link by
link, in the order each depends on the one before:

    driver -> module loaded -> toolkit -> containerd runtime -> RuntimeClass
           -> plugin pod -> node allocatable

:func:`links` checks each link once; :func:`verify` waits (up to
``palplat:gpu:verify_timeout``) until the node reports ``nvidia.com/gpu`` allocatable
equal to its devices times the time-slicing replicas, and otherwise fails naming the first
broken link. Host links (driver to containerd) do not heal by waiting: a broken one fails
at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from palplat import kube as kubelib
from palplat.errors import PalplatError
from palplat.model import PalplatPillar
from palplat.nvidia import cluster, runtime
from palplat.nvidia.hardware import PCI_DEVICES, Detection, rooted

LINKS = (
    "driver",
    "module loaded",
    "toolkit",
    "containerd runtime",
    "RuntimeClass",
    "plugin pod",
    "node allocatable",
)
HOST_LINKS = LINKS[:4]


@dataclass
class Link:
    name: str
    ok: bool
    detail: str


class ChainBroken(PalplatError):
    """A GPU node's chain is broken; ``link`` names the first broken link."""

    def __init__(self, link: Link, checked: list[Link]):
        self.link = link
        self.links = checked
        super().__init__(f"GPU chain broken at '{link.name}': {link.detail}")


def replicas(cfg: PalplatPillar) -> int:
    ts = cfg.gpu.device_plugin.time_slicing
    return ts.replicas if ts else 1


def expected(cfg: PalplatPillar, det: Detection) -> int:
    """``nvidia.com/gpu`` this node should offer: devices x time-slicing replicas."""
    return len(det.devices) * replicas(cfg)


def host_links(cfg: PalplatPillar, det: Detection) -> list[Link]:
    out = []
    loaded, inst = det.loaded, det.installed
    if not det.devices:
        where = rooted(det.root, PCI_DEVICES)
        out.append(Link("driver", False, f"no NVIDIA display device found in {where}"))
    elif inst is None and not loaded.loaded:
        where = f"for kernel {det.kernel}" if det.kernel else "(kernel release unknown)"
        msg = f"no nvidia kernel module is installed {where}: run the GPU stage"
        out.append(Link("driver", False, msg))
    else:
        v = inst.version if inst else loaded.version
        out.append(Link("driver", True, f"nvidia module {v or '(version unknown)'}"))
    if not loaded.loaded and inst is None:
        out.append(Link("module loaded", False, "the nvidia module is not loaded (nor installed)"))
    elif not loaded.loaded:
        out.append(
            Link(
                "module loaded",
                False,
                f"the nvidia module {inst.version or ''} is installed but not loaded: "
                "reboot the node (or modprobe nvidia), palplat never reboots",
            )
        )
    elif det.reboot_required:
        assert inst is not None
        out.append(
            Link(
                "module loaded",
                False,
                f"reboot required: the installed nvidia module is {inst.version}, the loaded "
                f"one is {loaded.version}",
            )
        )
    else:
        out.append(Link("module loaded", True, f"nvidia {loaded.version} ({loaded.flavor})"))
    tk = runtime.find_toolkit(cfg.gpu.root)
    if tk is None:
        out.append(
            Link("toolkit", False, f"{runtime.RUNTIME_BINARY} not found: install the toolkit")
        )
    else:
        out.append(Link("toolkit", True, tk.path))
    cd = runtime.read_containerd(cfg)
    if cfg.k3s.mode == "external" and not cd.exists:
        out.append(Link("containerd runtime", True, "not checked: k3s:mode external"))
    else:
        problem = runtime.containerd_problem(cfg, cd)
        out.append(Link("containerd runtime", problem is None, problem or str(cd.path)))
    return out


def cluster_links(cfg: PalplatPillar, det: Detection, kube: kubelib.Kube, node: str) -> list[Link]:
    out = []
    problem = cluster.runtime_class_problem(cluster.runtime_class(kube))
    out.append(Link("RuntimeClass", problem is None, problem or "handler nvidia"))
    pod, detail = cluster.plugin_pod(kube, cfg.gpu.device_plugin.namespace, node, cfg.gpu.root)
    ready = pod is not None and detail.endswith("is Ready")
    out.append(Link("plugin pod", ready, detail))
    want = expected(cfg, det)
    cap, alloc = cluster.allocatable(cluster.get_node(kube, node))
    have = "none" if alloc is None else alloc
    detail = (
        f"node {node} reports {cluster.RESOURCE} allocatable {have} (capacity "
        f"{'none' if cap is None else cap}), expected {want} = {len(det.devices)} device(s) x "
        f"{replicas(cfg)} time-slicing replica(s)"
    )
    out.append(Link("node allocatable", alloc == want, detail))
    return out


def links(cfg: PalplatPillar, det: Detection, kube: kubelib.Kube | None, node: str) -> list[Link]:
    """Every link, checked once (the cluster links only with a ``kube``)."""
    out = host_links(cfg, det)
    if kube is not None:
        out += cluster_links(cfg, det, kube, node)
    return out


def first_broken(checked: list[Link]) -> Link | None:
    return next((lk for lk in checked if not lk.ok), None)


def verify(
    cfg: PalplatPillar,
    det: Detection,
    kube: kubelib.Kube,
    node: str,
    timeout: float | None = None,
    progress: Callable[..., Any] | None = None,
    interval: float = 2.0,
) -> list[Link]:
    """Wait until every link holds; :class:`ChainBroken` names the first broken one."""
    timeout = float(cfg.gpu.verify_timeout if timeout is None else timeout)
    checked = host_links(cfg, det)
    broken = first_broken(checked)
    if broken is not None:
        raise ChainBroken(broken, checked)
    start = time.monotonic()
    if progress:
        progress("start", f"waiting up to {timeout:g}s for {node}'s {cluster.RESOURCE}")
    while True:
        checked = host_links(cfg, det) + cluster_links(cfg, det, kube, node)
        broken = first_broken(checked)
        if broken is None:
            if progress:
                progress("done", f"{node}: every GPU link holds", force=True)
            return checked
        if time.monotonic() - start >= timeout:
            exc = ChainBroken(broken, checked)
            if progress:
                progress("timeout", str(exc), force=True)
            raise exc
        if progress:
            progress("waiting", f"{node}: waiting for {broken.name}: {broken.detail}")
        time.sleep(interval)


def as_dicts(checked: list[Link]) -> list[dict[str, Any]]:
    return [asdict(lk) for lk in checked]
