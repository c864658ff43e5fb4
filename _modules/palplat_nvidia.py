"""Execution module: NVIDIA GPUs on a minion (detection, status, the package plan, the
chain check). Thin: the logic is in ``palplat.nvidia``; see docs/gpu.md.
"""

import os

from palplat import config, k3s, loaderkit, nvidia
from palplat import kube as kubelib
from palplat.errors import PalplatError
from palplat.nvidia import cluster as gpu_cluster
from palplat.nvidia import owner, packages, smi, verify

__virtualname__ = "palplat_nvidia"


def __virtual__():
    return __virtualname__


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _root(cfg, root):
    return root or cfg.gpu.root


@loaderkit.translate
def detect(root=None):
    """
    What this node has: NVIDIA display devices (sysfs), the loaded nvidia module (version,
    open or proprietary), per-GPU facts (procfs), the module installed for the running
    kernel, whether a reboot is required, and whether the GPU stage acts here
    (``palplat:gpu:enabled``; ``auto``: only where a device is found).

    root
        Filesystem root to read under (default ``palplat:gpu:root``, normally ``/``).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nvidia.detect
    """
    cfg = _env().config()
    if root:
        cfg = cfg.model_copy(update={"gpu": cfg.gpu.model_copy(update={"root": root})})
    out = nvidia.detect(cfg.gpu.root).as_dict()
    try:
        g = nvidia.gate(cfg)
        out["stage"] = {"active": g.active, "reason": g.reason}
    except PalplatError as exc:
        out["stage"] = {"active": False, "reason": str(exc)}
    return out


@loaderkit.translate
def status(root=None, kubeconfig=None, smi_bin=None, cluster=True):
    """
    A table per GPU: model, memory, driver, bus id and ``nvidia.com/gpu`` allocatable
    (from the node). Reads ``nvidia-smi -q -x`` where the binary exists (else the model
    from procfs and no memory figure).

    root
        Filesystem root to read under (default ``palplat:gpu:root``).
    kubeconfig
        Kubeconfig for the node's allocatable (default: palplat's, on an agent the
        node's own credentials).
    smi_bin
        The nvidia-smi binary (default: PATH, then /usr/local/nvidia/bin).
    cluster
        False: do not ask the API (``salt-run palplat.status`` takes the allocatable
        from the Node list of the minion that holds the cluster).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nvidia.status
        salt '*' palplat_nvidia.status --out=txt
    """
    e = _env()
    cfg = e.config()
    det = nvidia.detect(_root(cfg, root))
    parsed = smi.read(det.root, exe=smi_bin)
    node = k3s.node_name(cfg.k3s)
    alloc, note = None, None
    if cluster and det.devices:
        try:
            kube = e.kube(kubeconfig or config.node_kubeconfig(cfg), cfg=cfg)
            _, alloc = gpu_cluster.allocatable(gpu_cluster.get_node(kube, node))
        except PalplatError as exc:
            note = f"node {node}: {exc}"
    rows = nvidia.status_rows(det, parsed, alloc)
    out = {
        "node": node,
        "gpus": rows,
        "table": nvidia.render_table(rows),
        "node_allocatable": alloc,
        "driver": (parsed or {}).get("driver_version") or det.loaded.version,
        "cuda": (parsed or {}).get("cuda_version"),
        "nvidia_smi": "not found" if parsed is None else parsed.get("error", "ok"),
    }
    if note:
        out["cluster"] = note
    return out


@loaderkit.translate
def plan():
    """
    The package plan for this minion's OS: the Salt ``pkgrepo.managed`` /
    ``pkg.installed`` calls (and the pinned keyring step) of the driver and the toolkit,
    and who owns the driver (``driver_owner``: palplat or managed outside palplat,
    ``palplat:gpu:driver_managed``; no driver steps when it is not palplat).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nvidia.plan
    """
    cfg = _env().config()
    plan_ = packages.plan(cfg.gpu, __grains__)
    out = plan_.as_dict()
    det = nvidia.detect(cfg.gpu.root)
    decision = owner.decide(
        cfg.gpu, plan_.os, det, lambda n: __salt__["pkg.version"](n), smi.read(det.root)
    )
    out["driver_owner"] = decision.as_dict()
    if not decision.manage:
        out["driver"] = []
    return out


@loaderkit.translate
def check(kubeconfig=None):
    """
    Check every link of the GPU chain once, in order (driver, module loaded, toolkit,
    containerd runtime, RuntimeClass, plugin pod, node allocatable); nothing changes.
    Before k3s runs (no kubeconfig yet) or while the cluster does not answer, the host
    links are checked and ``cluster`` says why the cluster links are not.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nvidia.check
    """
    e = _env()
    cfg = e.config()
    g = nvidia.gate(cfg)
    if not g.active:
        return {"active": False, "reason": g.reason, "links": []}
    node = k3s.node_name(cfg.k3s)
    path = kubeconfig or config.node_kubeconfig(cfg)
    kube, cluster_note = None, None
    if not os.path.exists(path):
        cluster_note = f"cluster links: k3s not running yet (no kubeconfig at {path})"
    else:
        kube = e.kube(path, cfg=cfg)
    try:
        checked = verify.links(cfg, g.detection, kube, node)
    except kubelib.Unreachable as exc:
        checked = verify.host_links(cfg, g.detection)
        cluster_note = f"cluster links: the cluster does not answer ({exc})"
    broken = verify.first_broken(checked)
    out = {
        "active": True,
        "node": node,
        "expected": verify.expected(cfg, g.detection),
        "links": verify.as_dicts(checked),
        "first_broken": broken.name if broken else None,
    }
    if cluster_note:
        out["cluster"] = cluster_note
    return out
