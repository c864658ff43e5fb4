"""Where k3s lives on a host: every path under ``palplat:k3s:root`` (``/`` on real hosts, a
tmp dir in tests), the kubeconfig, the unit for the role and the service manager."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from palplat import units
from palplat.model import K3s, PalplatPillar

K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"


def kubeconfig_path(cfg: PalplatPillar) -> str:
    """The kubeconfig every Kubernetes/Helm state uses: the pillar's, else k3s's own
    (under ``palplat:k3s:root``, which is ``/`` outside tests)."""
    if cfg.k3s.kubeconfig:
        return cfg.k3s.kubeconfig
    root = cfg.k3s.root or "/"
    return K3S_KUBECONFIG if root == "/" else root.rstrip("/") + K3S_KUBECONFIG


def holds_the_cluster(cfg: PalplatPillar) -> bool:
    """Whether this minion runs the cluster-wide stages (platform releases, services): an
    external cluster's minion, or the first server (a server that joins none). Agents have
    no admin kubeconfig, and further servers leave the cluster-wide work to the first, so
    one ``salt.state`` across the cluster converges each release once."""
    k = cfg.k3s
    return k.mode == "external" or (k.role == "server" and not k.server_url)


def node_kubeconfig(cfg: PalplatPillar) -> str:
    """The kubeconfig for this node's own objects (its Node, the pods on it, reading the
    RuntimeClass): palplat's kubeconfig where there is one (servers, external mode, a
    pillar ``kubeconfig``), else, on a k3s agent, the node's own credentials that k3s
    writes there (``<data-dir>/agent/kubelet.kubeconfig``: the kubelet may read and label
    its own Node, list its pods and read RuntimeClasses)."""
    k = cfg.k3s
    if k.kubeconfig or k.mode == "external" or k.role == "server":
        return kubeconfig_path(cfg)
    return str(paths(cfg).kubelet_kubeconfig)


CLUSTER_STAGE_ELSEWHERE = (
    "nothing to do on this node: the cluster-wide stages run on the first server "
    "(the k3s server that joins none) or on the minion of an external cluster"
)


def rooted(root: str, path: str) -> Path:
    return Path(root) / path.lstrip("/") if root not in ("", "/") else Path(path)


@dataclass(frozen=True)
class Paths:
    root: str
    binary: Path
    config: Path
    registries: Path
    kubeconfig: Path
    data_dir: Path
    stamp: Path

    @property
    def token_file(self) -> Path:
        return self.data_dir / "server" / "token"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.data_dir / "agent" / "kubelet.kubeconfig"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "agent" / "images"


def paths(cfg: PalplatPillar) -> Paths:
    k = cfg.k3s
    root = k.root or "/"
    data_dir = k.config.get("data-dir") or str(rooted(root, "/var/lib/rancher/k3s"))
    return Paths(
        root=root,
        binary=rooted(root, "/usr/local/bin/k3s"),
        config=rooted(root, "/etc/rancher/k3s/config.yaml"),
        registries=rooted(root, "/etc/rancher/k3s/registries.yaml"),
        kubeconfig=Path(kubeconfig_path(cfg)),
        data_dir=Path(data_dir),
        stamp=rooted(root, "/var/lib/palplat/k3s.applied"),
    )


def unit_name(k: K3s) -> str:
    return "k3s.service" if k.role == "server" else "k3s-agent.service"


def node_name(k: K3s) -> str:
    return str(k.config.get("node-name") or socket.gethostname()).lower()


def service_manager(cfg: PalplatPillar) -> units.ServiceManager:
    return units.manager(cfg.k3s.service_manager, cfg.k3s.root or "/")
