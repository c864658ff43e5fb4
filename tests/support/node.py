"""A real Kubernetes node for the test bed and the GPU proof kit: containerd + runc + CNI +
kubelet as plain processes (no systemd), joined to a :class:`~tests.support.testenv.ControlPlane`.

The node runs inside a private mount namespace (``unshare --mount``) held by a small
supervisor (``python -m tests.support.node supervise SPEC``), so every mount containerd and
the kubelet make (overlay rootfs, volumes, network namespaces) disappears with it. The
node leaves the host as it found it:

* the host directories containerd, the CNI plugins and the kubelet write to whatever
  their configuration says (``/run/containerd``: shim sockets and runc's state;
  ``/var/lib/cni``: IP leases and results; ``/var/log/containers``; ``/var/lib/kubelet``,
  whose ``device-plugins`` the NVIDIA device plugin's chart expects) are the node's own
  directories, bind-mounted over them inside the namespace (a mount point the host lacked
  is removed again on stop);
* the kernel settings the kubelet would set on the host (``vm.overcommit_memory``,
  ``kernel.panic`` and four more: ``KUBELET_SYSCTLS``) and the bridge plugin's
  ``net.ipv4.ip_forward`` are files with the wanted values bind-mounted over
  ``/proc/sys`` inside the namespace: the kubelet finds them set, the host's stay;
* the kubelet finds no ``iptables`` (a stub first on its PATH): it adds no chains to the
  host's firewall; no kube-proxy runs, and the CNI config is a bridge without
  masquerading or port maps (pods that must reach the API server use the host network);
* the pods live in a cgroup of their own (``cgroupRoot``), killed on stop; their network
  namespaces are pinned under containerd's state directory; the bridge is deleted on stop.

    node = Node(cp, workdir, bins=NodeBins.from_dir(path)).start(images=[Path("pause.tar")])
    node.wait_pod("default", "hello")
    node.remove()       # the test bed: pods gone, node stopped, Node/Lease/CSINode deleted
    node.stop()         # the GPU kit: only stop it

Images cannot be pulled here: :mod:`tests.support.ociimage` makes them, ``ctr`` imports
them (``pause`` is the sandbox image, ``PAUSE_REF``). :func:`preflight` says why a node
cannot run on this machine (no root, no usable cgroups, no overlayfs).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.support import ociimage
from tests.support.testenv import (
    ControlPlane,
    ControlPlaneError,
    free_port,
    tail,
    testbin_dir,
    write_kubeconfig,
)

PAUSE_REF = "palplat.invalid/pause:1"
POD_SUBNET = "10.88.0.0/16"
BRIDGE = "palplat0"
# Host directories the node's programs write to whatever their config says: private to
# the node (its own directories bind-mounted over them in its mount namespace).
PRIVATE_DIRS = ("/run/containerd", "/var/lib/cni", "/var/log/containers")
KUBELET_DIR = "/var/lib/kubelet"  # the device plugin API's socket dir is fixed below it
# What the kubelet sets on the host when it differs (setupKernelTunables), and the bridge
# plugin's forwarding switch (a gateway bridge turns it on): seen as set inside the node's
# namespace, left alone on the host.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
    "net/ipv4/ip_forward": "1",
}
RETIRING_TAINT = "palplat.test/node-removed"  # NoExecute: evicts every pod on remove()
NO_IPTABLES = "#!/bin/sh\necho 'no iptables for the node (tests/support/node.py)' >&2\nexit 1\n"
CGROUP = Path("/sys/fs/cgroup")
CGROUP_V1_SUBSYSTEMS = (
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "blkio",
    "devices",
    "freezer",
    "hugetlb",
    "systemd",
)


class NodeError(ControlPlaneError):
    """The node did not start, or a pod did not do what it should (with diagnostics)."""


@dataclass
class NodeBins:
    """Where the node's programs are."""

    containerd: str
    shim: str  # containerd-shim-runc-v2
    ctr: str
    runc: str
    kubelet: str
    cni_dir: str  # loopback, bridge, host-local

    @classmethod
    def from_dir(cls, bindir: Path, cni_dir: Path | None = None) -> NodeBins:
        b = Path(bindir)
        return cls(
            containerd=str(b / "containerd"),
            shim=str(b / "containerd-shim-runc-v2"),
            ctr=str(b / "ctr"),
            runc=str(b / "runc"),
            kubelet=str(b / "kubelet"),
            cni_dir=str(cni_dir or b / "cni"),
        )

    def missing(self) -> list[str]:
        out = [
            p
            for p in (self.containerd, self.shim, self.ctr, self.runc, self.kubelet)
            if not os.access(p, os.X_OK)
        ]
        out += [
            f"{self.cni_dir}/{p}"
            for p in ("loopback", "bridge", "host-local")
            if not os.access(f"{self.cni_dir}/{p}", os.X_OK)
        ]
        return out


def cgroup_v2() -> bool:
    return (CGROUP / "cgroup.controllers").exists()


def cgroup_problem() -> str | None:
    """Why the kubelet could not manage the pods' cgroups here (None: it can)."""
    if cgroup_v2():
        have = set((CGROUP / "cgroup.controllers").read_text().split())
        lacking = sorted({"cpu", "memory", "pids"} - have)
        if lacking:
            return f"cgroup v2 here lacks the {', '.join(lacking)} controller(s) the kubelet needs"
        if not os.access(CGROUP, os.W_OK):
            return f"{CGROUP} (cgroup v2) is read-only: the kubelet cannot make the pods' cgroups"
        return None
    need = ("cpu", "cpuacct", "cpuset", "memory", "pids")
    lacking = [c for c in need if not (CGROUP / c).is_dir()]
    if lacking:
        return (
            "neither cgroup v2 nor the cgroup v1 hierarchies the kubelet needs "
            f"({', '.join(lacking)} missing under {CGROUP})"
        )
    ro = [c for c in need if not os.access(CGROUP / c, os.W_OK)]
    if ro:
        return f"the cgroup v1 hierarchies {', '.join(ro)} are read-only here"
    return None


def overlay_problem(work: Path) -> str | None:
    """Why containerd's overlayfs snapshotter could not work in ``work`` (None: it can):
    a trial mount in a throwaway mount namespace."""
    d = Path(work) / "overlay-check"
    dirs = {k: d / k for k in ("lower", "upper", "work", "merged")}
    try:
        for p in dirs.values():
            p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot try overlayfs in {work}: {exc}"
    opts = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
    try:
        res = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--"]
            + ["mount", "-t", "overlay", "overlay", "-o", opts, str(dirs["merged"])],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if res.returncode != 0:
        return (
            f"overlayfs cannot be mounted in {work} ({res.stderr.strip() or res.returncode}): "
            "containerd's snapshotter needs it"
        )
    return None


def preflight(work: Path) -> str | None:
    """Why a real node cannot run on this machine, in words for a skip (None: it can)."""
    if os.geteuid() != 0:
        return "the real node needs root (mounts, cgroups, the pods' network)"
    for tool, pkg in (("unshare", "util-linux"), ("mount", "mount"), ("ip", "iproute2")):
        if not shutil.which(tool):
            return f"the real node needs `{tool}` ({pkg})"
    res = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if res.returncode != 0:
        return (
            f"no mount namespace can be made here ({res.stderr.strip() or res.returncode}): "
            "the real node needs CAP_SYS_ADMIN"
        )
    return cgroup_problem() or overlay_problem(work)


def containerd_major(containerd: str) -> int:
    out = subprocess.run(
        [containerd, "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout
    for word in out.split():
        w = word.lstrip("v")
        if w[:1].isdigit() and "." in w:
            return int(w.split(".")[0])
    return 2


# network namespaces pinned under containerd's state directory (not /run/netns); no
# AppArmor profile loaded into the host's kernel for the pods
RUNTIME_PRIVATE = "  netns_mounts_under_state_dir = true\n  disable_apparmor = true\n"


def containerd_config(work: Path, bins: NodeBins, runtimes: dict[str, str], major: int) -> str:
    """containerd's config: its own root, state and socket under ``work``, runc and the
    CNI plugins from ``bins``, extra runtimes (name -> BinaryName) beside runc. Config
    version 3 (containerd 2.x: ``io.containerd.cri.v1.*``) or 2 (1.x: ``grpc.v1.cri``)."""
    sock = work / "run" / "containerd.sock"
    rts = {"runc": bins.runc, **runtimes}
    if major >= 2:
        rt, img = "plugins.'io.containerd.cri.v1.runtime'", "plugins.'io.containerd.cri.v1.images'"
        head = "version = 3\n"
    else:
        rt = img = "plugins.'io.containerd.grpc.v1.cri'"
        head = "version = 2\n"
    lines = [
        head + f"root = '{work}/containerd/root'\nstate = '{work}/containerd/state'\n",
        f"[grpc]\n  address = '{sock}'\n",
        f"[{img}]\n  snapshotter = 'overlayfs'\n"
        if major >= 2
        else f"[{img}]\n  sandbox_image = '{PAUSE_REF}'\n  enable_cdi = true\n"
        "  restrict_oom_score_adj = true\n" + RUNTIME_PRIVATE,
    ]
    if major >= 2:
        lines.append(f"[{img}.pinned_images]\n  sandbox = '{PAUSE_REF}'\n")
        # no lower OOM score than containerd's own: lowering it needs a privilege a
        # container host may not grant (runc init: "failed to update oom_score_adj")
        lines.append(f"[{rt}]\n  restrict_oom_score_adj = true\n" + RUNTIME_PRIVATE)
    lines.append(
        f"[{rt}.containerd]\n  default_runtime_name = 'runc'\n"
        + ("  snapshotter = 'overlayfs'\n" if major < 2 else "")
    )
    for name, binary in rts.items():
        lines.append(
            f"[{rt}.containerd.runtimes.{name}]\n  runtime_type = 'io.containerd.runc.v2'\n"
            f"[{rt}.containerd.runtimes.{name}.options]\n  BinaryName = '{binary}'\n"
            "  SystemdCgroup = false\n"
        )
    lines.append(
        f"[{rt}.cni]\n  bin_dir{'s' if major >= 2 else ''} = "
        + (f"['{bins.cni_dir}']" if major >= 2 else f"'{bins.cni_dir}'")
        + f"\n  conf_dir = '{work}/cni/net.d'\n"
    )
    if major >= 2:
        lines.append(
            "[plugins.'io.containerd.grpc.v1.cri']\n  stream_server_address = '127.0.0.1'\n"
        )
        lines.append("[plugins.'io.containerd.nri.v1.nri']\n  disable = true\n")
    lines.append(f"[plugins.'io.containerd.internal.v1.opt']\n  path = '{work}/containerd/opt'\n")
    return "\n".join(lines)


def cni_config(bridge: str = BRIDGE, subnet: str = POD_SUBNET, data_dir: str | None = None) -> str:
    """A bridge without masquerading or port maps (no iptables on the GPU host, none
    touched on a test machine); host-local keeps its leases in ``data_dir``."""
    ipam: dict = {
        "type": "host-local",
        "ranges": [[{"subnet": subnet}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    if data_dir:
        ipam["dataDir"] = data_dir
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "palplat",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": False,
                    "ipam": ipam,
                }
            ],
        },
        indent=2,
    )


@dataclass
class Spec:
    """What the supervisor runs (written as JSON for it)."""

    work: str
    containerd: list[str]
    kubelet: list[str]
    env: dict[str, str]
    binds: list[tuple[str, str]] = field(default_factory=list)
    cgroup_root: str = ""
    socket: str = ""
    # host directories made the node's own (see PRIVATE_DIRS), /proc/sys keys seen as set
    private: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)


CREATED = "created-mount-points.json"  # host directories the supervisor had to create


class Node:
    """containerd + kubelet joined to ``cp``; ``runtimes`` adds containerd runtimes (e.g.
    ``{"nvidia": "/usr/local/nvidia/toolkit/nvidia-container-runtime"}``); ``taints`` are
    registered with the node (keeps other tests' pods off it); ``bridge`` and
    ``pod_subnet`` name the pods' network (unique per node on one machine)."""

    def __init__(
        self,
        cp: ControlPlane,
        workdir: Path | str,
        bins: NodeBins,
        *,
        name: str = "palplat-node",
        runtimes: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        kubelet_dir: str = KUBELET_DIR,
        containerd_config_path: Path | None = None,
        labels: dict[str, str] | None = None,
        pod_logs_dir: Path | None = None,
        taints: list[dict] | None = None,
        bridge: str = BRIDGE,
        pod_subnet: str = POD_SUBNET,
        node_ip: str = "127.0.0.1",
    ):
        self.cp = cp
        self.work = Path(workdir).resolve()
        self.bins = bins
        self.name = name
        self.runtimes = runtimes or {}
        self.env = env or {}
        # The kubelet's root: its own directory, bind-mounted at ``kubelet_dir``
        # (/var/lib/kubelet, where the device plugin API and its chart look) inside the
        # namespace.
        self.kubelet_dir = kubelet_dir
        self.taints = taints or []
        self.bridge = bridge
        self.pod_subnet = pod_subnet
        # The kubelet's address. 127.0.0.1 (the GPU kit: no `ip` there) leaves the Node
        # without addresses (the kubelet refuses a loopback one), so the API server cannot
        # reach it (pod logs: read from the files). An address of ``pod_subnet`` (the
        # test bed: its first one) goes on the bridge, made before the kubelet starts.
        self.node_ip = node_ip
        self.containerd_config_path = containerd_config_path or self.work / "containerd.toml"
        self.labels = labels or {}
        # where the kubelet writes the pods' logs (a GPU node: /var/log/pods, where
        # palplat's check reads the device plugin's last words)
        self.pod_logs_dir = Path(pod_logs_dir) if pod_logs_dir else self.work / "pod-logs"
        self.proc: subprocess.Popen | None = None
        self.cgroup_root = f"palplat-{name}-{os.getpid()}"

    @property
    def socket(self) -> Path:
        return self.work / "run" / "containerd.sock"

    @property
    def logdir(self) -> Path:
        return self.work / "logs"

    def logs(self) -> dict[str, Path]:
        return {c: self.logdir / f"{c}.log" for c in ("supervisor", "containerd", "kubelet")}

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"----- {c} ({p}) -----\n{tail(p, lines) or '(empty)'}" for c, p in self.logs().items()
        )

    # ----------------------------------------------------------------------- set-up
    def _write_configs(self) -> Spec:
        w = self.work
        self.pod_logs_dir.mkdir(parents=True, exist_ok=True)
        for d in (
            "run",
            "cni/net.d",
            "kubelet",
            "pod-logs",
            "volume-plugins",
            "logs",
            "containerd",
            "cni/leases",
            "no-iptables",
        ):
            (w / d).mkdir(parents=True, exist_ok=True)
        for name in ("iptables", "ip6tables"):
            stub = w / "no-iptables" / name
            stub.write_text(NO_IPTABLES)
            stub.chmod(0o755)
        major = containerd_major(self.bins.containerd)
        path = self.containerd_config_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(containerd_config(w, self.bins, self.runtimes, major))
        (w / "cni/net.d/10-palplat.conflist").write_text(
            cni_config(self.bridge, self.pod_subnet, str(w / "cni/leases"))
        )
        kcfg = w / "kubelet.kubeconfig"
        write_kubeconfig(kcfg, self.cp.server, self.cp.pki, "admin")
        root_dir = self.kubelet_dir
        port = free_port()
        kubelet_cfg = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.node_ip,
            "port": port,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.cp.pki / "ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_root}",
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "imageServiceEndpoint": f"unix://{self.socket}",
            "podLogsDir": str(self.pod_logs_dir),
            "volumePluginDir": str(w / "volume-plugins"),
            "resolvConf": "",
            "clusterDomain": "cluster.local",
            # no DNS server runs (nor is one reachable): an address in the service range
            # keeps the kubelet from warning on every pod (MissingClusterDNS)
            "clusterDNS": ["10.0.0.10"],
            "serializeImagePulls": False,
            "protectKernelDefaults": False,
            "registerNode": True,
            **({"registerWithTaints": self.taints} if self.taints else {}),
            "evictionHard": {
                "memory.available": "50Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s",
            "runtimeRequestTimeout": "2m",
            "logging": {"format": "text"},
        }
        (w / "kubelet.yaml").write_text(json.dumps(kubelet_cfg, indent=2))
        node_labels = ",".join(f"{k}={v}" for k, v in self.labels.items())
        kubelet = [
            self.bins.kubelet,
            f"--config={w / 'kubelet.yaml'}",
            f"--kubeconfig={kcfg}",
            f"--root-dir={root_dir}",
            f"--cert-dir={w / 'kubelet-pki'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.node_ip}",
            "--v=2",
        ] + ([f"--node-labels={node_labels}"] if node_labels else [])
        path_env = os.pathsep.join(
            [
                str(w / "no-iptables"),
                str(Path(self.bins.shim).parent),
                str(Path(self.bins.runc).parent),
                self.env.get("PATH") or os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            ]
        )
        env = {**os.environ, **self.env, "PATH": path_env}
        return Spec(
            work=str(w),
            containerd=[self.bins.containerd, f"--config={path}"],
            kubelet=kubelet,
            env=env,
            binds=[(str(w / "kubelet"), self.kubelet_dir)],
            cgroup_root=self.cgroup_root,
            socket=str(self.socket),
            private=list(PRIVATE_DIRS),
            sysctls=dict(KUBELET_SYSCTLS),
        )

    def start(self, timeout: float = 120, images: list[Path] | None = None) -> Node:
        """Start containerd, import ``images`` (the pause image among them), start the
        kubelet and wait until the node is Ready. NodeError (with log tails) otherwise."""
        missing = self.bins.missing()
        if missing:
            raise NodeError(f"the node's programs are missing: {', '.join(missing)}")
        spec = self._write_configs()
        if ipaddress.ip_address(self.node_ip) in ipaddress.ip_network(self.pod_subnet):
            self._make_bridge()
        spec_path = self.work / "node-spec.json"
        spec_path.write_text(json.dumps(asdict(spec), indent=2))
        log = open(self.logs()["supervisor"], "ab")  # noqa: SIM115 - handed to the child
        repo = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [repo] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            ),
        }
        try:
            self.proc = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    sys.executable,
                    "-m",
                    "tests.support.node",
                    "supervise",
                    str(spec_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        try:
            self._wait(lambda: self.socket.exists() and self._ctr_ok(), deadline, "containerd")
            for image in images or []:
                self.import_image(image)
            (self.work / "images-imported").write_text("1")
            self._wait(self._ready, deadline, f"node {self.name} Ready")
        except BaseException:
            self.stop()
            raise
        return self

    def _ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.bins.ctr, "--address", str(self.socket), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def _ctr_ok(self) -> bool:
        return self._ctr("version", timeout=10).returncode == 0

    def import_image(self, archive: Path) -> None:
        res = self._ctr("images", "import", "--platform", "linux/amd64", str(archive))
        if res.returncode != 0:
            raise NodeError(
                f"ctr images import {archive}: {res.stderr.strip()}\n{self.log_tails()}"
            )

    def images(self) -> str:
        return self._ctr("images", "list", "-q").stdout

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _wait(self, pred, deadline: float, what: str) -> None:
        while True:
            if not self._alive():
                raise NodeError(
                    f"the node's supervisor exited while waiting for {what}\n{self.log_tails()}"
                )
            try:
                if pred():
                    return
            except (OSError, subprocess.SubprocessError):
                pass
            if time.monotonic() > deadline:
                raise NodeError(f"timed out waiting for {what}\n{self.log_tails()}")
            time.sleep(0.5)

    def node(self) -> dict | None:
        code, out = self.cp._get(f"/api/v1/nodes/{self.name}")
        return json.loads(out) if code == 200 else None

    def _ready(self) -> bool:
        node = self.node() or {}
        conds = (node.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

    def conditions(self) -> list[dict]:
        return ((self.node() or {}).get("status") or {}).get("conditions") or []

    # ----------------------------------------------------------------------- pods
    def pod(self, namespace: str, name: str) -> dict | None:
        code, out = self.cp._get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        return json.loads(out) if code == 200 else None

    def create(self, path: str, body: dict) -> dict:
        code, out = self.cp._get(path, body=body, timeout=10)
        if code not in (200, 201):
            raise NodeError(f"POST {path}: HTTP {code} {out[-500:]!r}")
        return json.loads(out)

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        q = f"?container={container}" if container else ""
        code, out = self.cp._get(f"/api/v1/namespaces/{namespace}/pods/{name}/log{q}", timeout=10)
        if code == 200:
            return out.decode(errors="replace")
        # the files the kubelet writes, when the API server cannot reach it
        sub = f"{namespace}_{name}_*/{container or '*'}/*.log"
        texts = []
        for f in sorted(self.pod_logs_dir.glob(sub)):
            for line in f.read_text(errors="replace").splitlines():
                # CRI log format: <time> <stream> <P|F> <text>; P: a partial line
                parts = line.split(" ", 3)
                if len(parts) == 4:
                    texts.append(parts[3] + ("" if parts[2] == "P" else "\n"))
        return "".join(texts) or f"(no log: HTTP {code} {out[-200:]!r})"

    def events(self, namespace: str, name: str | None = None) -> list[str]:
        sel = f"?fieldSelector=involvedObject.name%3D{name}" if name else ""
        code, out = self.cp._get(f"/api/v1/namespaces/{namespace}/events{sel}", timeout=10)
        if code != 200:
            return [f"(events: HTTP {code})"]
        items = json.loads(out).get("items") or []
        items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return [
            f"{e.get('lastTimestamp') or e.get('eventTime')} {e.get('type')} "
            f"{e.get('reason')} {e['involvedObject'].get('kind')}/{e['involvedObject'].get('name')}"
            f": {e.get('message')}"
            for e in items
        ]

    def wait_pod(
        self,
        namespace: str,
        name: str,
        timeout: float = 120,
        phases: tuple[str, ...] = ("Succeeded",),
    ) -> dict:
        """Wait until the pod reaches one of ``phases``; NodeError with its status,
        events and the node's logs when it fails or the time is up."""
        deadline = time.monotonic() + timeout
        pod: dict | None = None
        while time.monotonic() < deadline:
            pod = self.pod(namespace, name)
            phase = ((pod or {}).get("status") or {}).get("phase")
            if phase in phases:
                return pod
            if phase == "Failed" and "Failed" not in phases:
                break
            if not self._alive():
                break
            time.sleep(1)
        status = json.dumps((pod or {}).get("status"), indent=1)[-3000:]
        raise NodeError(
            f"pod {namespace}/{name} did not reach {'/'.join(phases)}: status {status}\n"
            + "\n".join(self.events(namespace, name))
            + "\n"
            + self.log_tails(30)
        )

    # ----------------------------------------------------------------------- stop
    def stop(self) -> None:
        """Stop the supervisor (it stops the kubelet, the pods, containerd)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        _kill_cgroups(self.cgroup_root)
        _kill_shims(str(self.socket))
        self._host_cleanup()

    def _make_bridge(self) -> None:
        """The pods' bridge with the node's address (the CNI bridge plugin takes it as
        it finds it: the gateway is the subnet's first address)."""
        prefix = ipaddress.ip_network(self.pod_subnet).prefixlen
        for argv in (
            ["ip", "link", "add", "name", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{self.node_ip}/{prefix}", "dev", self.bridge],
            ["ip", "link", "set", "dev", self.bridge, "up"],
        ):
            res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
            if res.returncode != 0:
                self._host_cleanup()
                raise NodeError(f"{' '.join(argv)}: {res.stderr.strip()}")

    def _host_cleanup(self) -> None:
        """The pods' bridge, and the mount points the supervisor had to create."""
        if shutil.which("ip") and Path(f"/sys/class/net/{self.bridge}").exists():
            subprocess.run(
                ["ip", "link", "delete", "dev", self.bridge],
                capture_output=True,
                check=False,
                timeout=30,
            )
        try:
            created = json.loads((self.work / CREATED).read_text())
        except (OSError, ValueError):
            created = []
        for d in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(d)

    # ----------------------------------------------------------------- the cluster
    def remove(self, timeout: float = 60) -> None:
        """Take the node out of the cluster and stop it, leaving the control plane as it
        was: a ``NoExecute`` taint evicts its pods (DaemonSets' too) and they are deleted
        while the kubelet still runs (their containers really stop); then the node stops
        and its Node, Lease, CSINode and events are deleted (a pod still bound to it is
        deleted at once)."""
        try:
            if self._alive() and self.node() is not None:
                self._retire_pods(timeout)
        finally:
            self.stop()
            self._deregister()

    def pods_on_node(self) -> list[dict]:
        sel = urllib.parse.quote(f"spec.nodeName={self.name}")
        code, out = self.cp.request("GET", f"/api/v1/pods?fieldSelector={sel}", timeout=10)
        return (json.loads(out).get("items") or []) if code == 200 else []

    def _retire_pods(self, timeout: float) -> None:
        taints = [*self.taints, {"key": RETIRING_TAINT, "effect": "NoExecute"}]
        self.cp.request(
            "PATCH",
            f"/api/v1/nodes/{self.name}",
            body={"spec": {"taints": taints}},
            content_type="application/merge-patch+json",
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = self.pods_on_node()
            if not pods:
                return
            for pod in pods:
                md = pod["metadata"]
                if not md.get("deletionTimestamp"):
                    self.cp.request(
                        "DELETE", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}"
                    )
            if not self._alive():
                return
            time.sleep(1)

    def _deregister(self) -> None:
        for pod in self.pods_on_node():
            md = pod["metadata"]
            self.cp.request(
                "DELETE",
                f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}",
                body={"gracePeriodSeconds": 0},
            )
        for path in (
            f"/api/v1/nodes/{self.name}",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}",
            f"/apis/storage.k8s.io/v1/csinodes/{self.name}",
        ):
            self.cp.request("DELETE", path)
        sel = urllib.parse.quote(f"involvedObject.kind=Node,involvedObject.name={self.name}")
        self.cp.request("DELETE", f"/api/v1/namespaces/default/events?fieldSelector={sel}")

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- the test bed

NODEAPP_REF = "palplat.invalid/nodeapp:1"
# The test bed's node joins the shared control plane: other tests' pods stay off it.
TESTBED_NODE = "palplat-real-node"
TESTBED_LABEL = "palplat.test/real-node"
TESTBED_TAINT = {"key": TESTBED_LABEL, "value": "true", "effect": "NoSchedule"}
TESTBED_TOLERATION = {"key": TESTBED_LABEL, "operator": "Exists", "effect": "NoSchedule"}
TESTBED_SUBNETS = "10.199.0.0/16"  # a free /24 of it per node (several runs on one machine)


def testbed_bins() -> tuple[NodeBins, list[str]]:
    """The node's programs as ``tools/build-testbin`` links them (``$BIN/node``), and
    what is missing there."""
    d = testbin_dir() / "node"
    bins = NodeBins.from_dir(d, d / "cni")
    progs = [str(d / p) for p in ("pause", "nodeapp") if not os.access(d / p, os.X_OK)]
    return bins, bins.missing() + progs


def testbed_images(dest: Path) -> list[Path]:
    """The test bed's two images as OCI layouts: the pause (sandbox) and ``nodeapp``
    (tests/support/nodeapp: ``serve PORT TEXT``, ``say CODE TEXT``)."""
    d = testbin_dir() / "node"
    pause = ociimage.Image(PAUSE_REF, entrypoint=["/pause"]).add_file("/pause", d / "pause")
    app = ociimage.Image(NODEAPP_REF, entrypoint=["/nodeapp"], cmd=["serve", "8080", "hello"])
    app.add_file("/nodeapp", d / "nodeapp").add_dir("/tmp", 0o1777)
    return [pause.write(dest / "pause.tar"), app.write(dest / "nodeapp.tar")]


def free_subnet(pool: str = TESTBED_SUBNETS) -> str:
    """A /24 of ``pool`` that no route of this machine overlaps (another node's)."""
    out = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout
    used = []
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word, strict=False))
    nets = list(ipaddress.ip_network(pool).subnets(new_prefix=24))
    start = os.getpid() % len(nets)
    for net in nets[start:] + nets[:start]:
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return str(net)
    raise NodeError(f"no free /24 in {pool} for the node's pods")


def testbed_node(cp: ControlPlane, work: Path) -> Node:
    """The node ``make test`` runs: tainted and labelled (``TESTBED_*``), its own bridge
    and pod subnet, its address the subnet's first one (on the bridge: the API server
    reaches the kubelet for logs), the pods' logs under ``work/host/var/log/pods`` (as on
    a host whose root is ``work/host``: palplat's GPU link reads them there)."""
    bins, _ = testbed_bins()
    subnet = free_subnet()
    return Node(
        cp,
        work,
        bins,
        name=TESTBED_NODE,
        taints=[TESTBED_TAINT],
        labels={TESTBED_LABEL: "true"},
        bridge=f"pptest{os.getpid() % 1000000}",
        pod_subnet=subnet,
        node_ip=str(next(ipaddress.ip_network(subnet).hosts())),
        pod_logs_dir=Path(work) / "host" / "var" / "log" / "pods",
    )


# --------------------------------------------------------------------------- cgroups


def _cgroup_dirs(root: str) -> list[Path]:
    if cgroup_v2():
        return [CGROUP / root]
    return [CGROUP / s / root for s in CGROUP_V1_SUBSYSTEMS if (CGROUP / s).is_dir()]


def prepare_cgroups(root: str) -> None:
    """The pods' cgroup root, with the controllers the kubelet needs."""
    if cgroup_v2():
        want = {"cpu", "cpuset", "memory", "pids", "io", "hugetlb"}
        have = set((CGROUP / "cgroup.controllers").read_text().split())
        ctl = " ".join(f"+{c}" for c in sorted(want & have))
        with contextlib.suppress(OSError):
            (CGROUP / "cgroup.subtree_control").write_text(ctl)
        (CGROUP / root).mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            (CGROUP / root / "cgroup.subtree_control").write_text(ctl)
        return
    for d in _cgroup_dirs(root):
        d.mkdir(exist_ok=True)
        if d.parent.name == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                with contextlib.suppress(OSError):
                    (d / f).write_text((d.parent / f).read_text())


def _procs_under(d: Path) -> list[int]:
    pids = []
    for dirpath, _dirs, files in os.walk(d):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                pids += [int(x) for x in Path(dirpath, "cgroup.procs").read_text().split()]
    return pids


def _kill_cgroups(root: str) -> None:
    """Kill every process in the pods' cgroups, then remove them (deepest first)."""
    for d in _cgroup_dirs(root):
        if not d.is_dir():
            continue
        for _ in range(50):
            pids = _procs_under(d)
            if not pids:
                break
            if (d / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (d / "cgroup.kill").write_text("1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for dirpath, _dirs, _files in sorted(os.walk(d), key=lambda t: -len(t[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def _kill_shims(socket: str) -> None:
    """containerd's shims for this node (their command line names its socket)."""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if socket.encode() in argv and any(b"containerd-shim" in a for a in argv[:1]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(p.name), signal.SIGKILL)


# --------------------------------------------------------------------------- supervisor


def _mkdirs(path: Path, created: list[str]) -> None:
    """mkdir -p, noting each directory it had to create (removed again on stop)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir()
        created.append(str(d))


def isolate(spec: Spec, say) -> None:  # pragma: no cover - runs in its own namespace
    """The node's own directories over the host's (``spec.private``, ``spec.binds``) and
    the kernel settings the kubelet wants, as files over ``/proc/sys`` (``spec.sysctls``),
    all inside this mount namespace only."""
    work = Path(spec.work)
    created: list[str] = []
    binds = [(str(work / "private" / d.strip("/").replace("/", "_")), d) for d in spec.private]
    for src, dst in binds + [(a, b) for a, b in spec.binds]:
        Path(src).mkdir(parents=True, exist_ok=True)
        _mkdirs(Path(dst), created)
        (work / CREATED).write_text(json.dumps(created))
        subprocess.run(["mount", "--bind", src, dst], check=True)
        say(f"bind {src} -> {dst}")
    for key, want in spec.sysctls.items():
        target = Path("/proc/sys") / key
        try:
            have = target.read_text().strip()
        except OSError:
            continue
        if have == want:
            continue
        fake = work / "sysctl" / key.replace("/", ".")
        fake.parent.mkdir(exist_ok=True)
        fake.write_text(want + "\n")
        subprocess.run(["mount", "--bind", str(fake), str(target)], check=True)
        say(f"{key}: {have} on the host, {want} inside the node's namespace")


def supervise(spec_path: str) -> int:  # pragma: no cover - runs in its own namespace
    """Inside the private mount namespace: bind mounts, cgroups, containerd, then (once
    the images are imported) the kubelet; on SIGTERM stop all of it, pods included."""
    spec = Spec(**json.loads(Path(spec_path).read_text()))
    work = Path(spec.work)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))

    def say(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} [node] {msg}", flush=True)

    isolate(spec, say)
    prepare_cgroups(spec.cgroup_root)
    procs: dict[str, subprocess.Popen] = {}

    def spawn(name: str, argv: list[str]) -> None:
        log = open(work / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        procs[name] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=spec.env,
            cwd=work,
        )
        log.close()
        say(f"started {name} (pid {procs[name].pid}): {' '.join(argv)}")

    spawn("containerd", spec.containerd)
    rc = 0
    while not stop["now"]:
        if "kubelet" not in procs and (work / "images-imported").exists():
            spawn("kubelet", spec.kubelet)
        dead = [n for n, p in procs.items() if p.poll() is not None]
        if dead:
            say(f"{', '.join(dead)} exited ({[procs[n].returncode for n in dead]})")
            rc = 1
            break
        time.sleep(0.3)
    say("stopping")
    for name in ("kubelet",):
        p = procs.get(name)
        if p and p.poll() is None:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
            if p.poll() is None:
                p.kill()
    _kill_cgroups(spec.cgroup_root)
    _kill_shims(spec.socket)
    p = procs.get("containerd")
    if p and p.poll() is None:
        p.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=15)
        if p.poll() is None:
            p.kill()
    say("stopped")
    return rc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "supervise":
        return supervise(args[1])
    print("usage: python -m tests.support.node supervise SPEC.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "NODEAPP_REF",
    "PAUSE_REF",
    "TESTBED_LABEL",
    "TESTBED_TOLERATION",
    "Node",
    "NodeBins",
    "NodeError",
    "preflight",
    "testbed_bins",
    "testbed_images",
    "testbed_node",
]
