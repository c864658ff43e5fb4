#!/usr/bin/env python3
"""Stand-in for the ``k3s`` executable (tests only): behaves as k3s does for palplat.

Served by :class:`tests.support.fake_k3s.ReleaseServer`, which fills in the version, the
interpreter and the repository path. What it does:

- ``k3s --version``: ``k3s version <VERSION> (...)`` like the real binary;
- ``k3s server --config FILE``: checks the token against ``<data-dir>/server/token`` (k3s
  refuses a different token for existing data), starts the test control plane
  (``tests.support.testenv.ControlPlane``) in ``<data-dir>/server/controlplane``, writes the
  kubeconfig where k3s writes it (``write-kubeconfig``, mode ``write-kubeconfig-mode``),
  serves the supervisor endpoints agents use (``/cacerts``, ``/v1-k3s/client-ca.crt`` with
  basic auth by token) on a stable port recorded in ``<data-dir>/server/supervisor-url``,
  registers its Node and keeps it Ready;
- ``k3s agent --config FILE``: validates the token against ``server`` like k3s
  (CA hash of a full token, then basic auth), writes ``<data-dir>/agent/kubelet.kubeconfig``,
  registers its Node and keeps it Ready.

``<data-dir>/fake-k3s.json`` can hold (the fleet test bed, tests/support/fleet.py, writes it):

- ``never_ready: true``: the process runs but nothing ever becomes ready;
- ``control_plane: DIR``: the cluster's datastore and API server already run (a
  ``testenv.ControlPlane`` in DIR): a server attaches to it instead of starting its own,
  as a k3s server with embedded etcd joins the cluster's etcd; restarting one server then
  leaves the API up for the others, as in an HA cluster;
- ``heartbeat: SECONDS``: how often the node posts its status (default 2);
- ``gpus: N``: the node has N NVIDIA GPUs and plays the device plugin: once a pod of the
  ``nvidia-device-plugin`` DaemonSet runs on it, the node offers ``nvidia.com/gpu: N``.

A server with ``server`` in its config joins: it checks its token with that server's
supervisor as an agent does, takes the cluster's kubeconfig from there and registers a
control-plane node; servers of an embedded-etcd cluster (``cluster-init``, or joined)
carry k3s's ``node-role.kubernetes.io/etcd`` label. Like the kubelet, the node reports
capacity (cpu, memory, pods) and turns the pods bound to it Running and Ready.

Like k3s, at every start (server and agent) it merges the drop-ins ``<config>.d/*.yaml``
over its config, looks for ``nvidia-container-runtime`` (``/usr/local/nvidia/toolkit``,
then its PATH) and writes the containerd config k3s generates,
``<data-dir>/agent/etc/containerd/config.toml``: with an ``nvidia`` runtime only when it
found the binary, and ``default_runtime_name`` from ``default-runtime``.
"""

import base64
import datetime
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "@@VERSION@@"
REPO = "@@REPO@@"
sys.path.insert(0, REPO)

import yaml  # noqa: E402

STOP = threading.Event()


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} k3s-standin {VERSION}: {msg}", flush=True)


def sd_notify(state="READY=1"):
    """Tell systemd the service is up, as k3s does (its unit is Type=notify)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall(state.encode())


def parse_args(argv):
    cfg_path = "/etc/rancher/k3s/config.yaml"
    flags = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--config", "-c"):
            cfg_path = argv[i + 1]
            i += 2
            continue
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            flags[k] = v
        i += 1
    cfg = {}
    if os.path.exists(cfg_path):
        cfg = yaml.safe_load(Path(cfg_path).read_text()) or {}
    cfg.update(flags)
    return cfg


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


RESOURCES = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"}
GPU_RESOURCE = "nvidia.com/gpu"
PLUGIN = "nvidia-device-plugin"


def _pod_ready_patch(pod):
    """The status a kubelet posts for a pod whose containers started."""
    containers = [c.name for c in pod.spec.containers or []]
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now()}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": c,
                    "ready": True,
                    "restartCount": 0,
                    "image": "standin",
                    "imageID": "",
                    "started": True,
                    "state": {"running": {"startedAt": now()}},
                }
                for c in containers
            ],
            "startTime": now(),
        }
    }


def kubelet_pods(api, name, gpus):
    """Like the kubelet: finish the graceful deletion of pods on this node, and run the
    others (Running, Ready). Returns whether a device plugin pod runs here."""
    plugin = False
    pods = api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}")
    for pod in pods.items:
        if pod.metadata.deletion_timestamp is not None:
            api.delete_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
            )
            continue
        if pod.status is None or pod.status.phase in (None, "Pending"):
            api.patch_namespaced_pod_status(
                pod.metadata.name, pod.metadata.namespace, _pod_ready_patch(pod)
            )
        owners = pod.metadata.owner_references or []
        if gpus and any(o.kind == "DaemonSet" and PLUGIN in o.name for o in owners):
            plugin = True
    return plugin


def node_loop(kubeconfig, name, role, labels_extra=None, beh=None):
    """Register the node and keep its Ready condition fresh (what the kubelet does)."""
    from kubernetes import client, config

    beh = beh or {}
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    # the fleet benchmark tells palplat's requests from the nodes' by this
    api_client.user_agent = f"k3s-standin/{VERSION}"
    api = client.CoreV1Api(api_client)
    labels = {"kubernetes.io/hostname": name, "palplat.test/fake-k3s": "true"}
    if role == "server":
        labels["node-role.kubernetes.io/control-plane"] = "true"
    labels.update(labels_extra or {})
    heartbeat = float(beh.get("heartbeat", 2))
    gpus = int(beh.get("gpus", 0))
    plugin = False
    first = now()
    while not STOP.is_set():
        try:
            try:
                api.read_node(name)
            except client.exceptions.ApiException as exc:
                if exc.status != 404:
                    raise
                api.create_node(
                    client.V1Node(metadata=client.V1ObjectMeta(name=name, labels=labels))
                )
            resources = dict(RESOURCES)
            if plugin:  # the device plugin registered the node's GPUs with the kubelet
                resources[GPU_RESOURCE] = str(gpus)
            api.patch_node_status(
                name,
                {
                    "status": {
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "KubeletReady",
                                "message": "k3s stand-in is posting ready status",
                                "lastHeartbeatTime": now(),
                                "lastTransitionTime": first,
                            }
                        ],
                        "nodeInfo": {
                            "kubeletVersion": VERSION,
                            "kubeProxyVersion": VERSION,
                            "containerRuntimeVersion": "containerd://fake",
                            "operatingSystem": "linux",
                            "architecture": "amd64",
                            "machineID": "",
                            "systemUUID": "",
                            "bootID": "",
                            "kernelVersion": "",
                            "osImage": "fake",
                        },
                        "capacity": resources,
                        "allocatable": resources,
                    }
                },
            )
            plugin = kubelet_pods(api, name, gpus)
        except Exception as exc:  # noqa: BLE001 - keep trying like a kubelet
            log(f"node status: {exc}")
        STOP.wait(heartbeat)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token_parts(token, default_user):
    m = re.match(r"^K10([0-9a-f]{64})::([^:]+):(.+)$", token)
    if m:
        return m.group(1), m.group(2), m.group(3)
    return None, default_user, token


def serve_supervisor(port, pki, passwords, kubeconfig):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _authed(self):
            h = self.headers.get("Authorization", "")
            if not h.startswith("Basic "):
                return False
            try:
                user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
            except ValueError:
                return False
            return user in ("server", "node") and pw in passwords

        def _send(self, code, body=b"", ctype="text/plain"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802
            if self.path == "/cacerts":
                return self._send(200, (pki / "ca.crt").read_bytes())
            if self.path == "/ping":
                return self._send(200, b"pong")
            if self.path.startswith("/v1-k3s/"):
                if not self._authed():
                    return self._send(401, b"Unauthorized")
                if self.path == "/v1-k3s/client-ca.crt":
                    return self._send(200, (pki / "ca.crt").read_bytes())
                if self.path == "/v1-k3s/standin-kubeconfig":
                    return self._send(200, Path(kubeconfig).read_bytes())
            return self._send(404, b"not found")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def behaviour(data_dir):
    try:
        return json.loads((data_dir / "fake-k3s.json").read_text())
    except (OSError, ValueError):
        return {}


def from_supervisor(server_url, token, default_user):
    """Validate ``token`` with the server's supervisor as k3s does (CA hash of a full
    token, then basic auth) and take the cluster's kubeconfig from it: ``(ca, kubeconfig)``
    or an exit code."""
    ca_hash, user, password = token_parts(token, default_user)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    while not STOP.is_set():
        try:
            with urllib.request.urlopen(f"{server_url}/cacerts", context=ctx, timeout=5) as r:  # noqa: S310
                ca = r.read()
            if ca_hash and hashlib.sha256(ca).hexdigest() != ca_hash:
                log("token CA hash does not match the server's CA")
                return 1
            req = urllib.request.Request(f"{server_url}/v1-k3s/standin-kubeconfig", headers=auth)
            with urllib.request.urlopen(req, context=ctx, timeout=5) as r:  # noqa: S310
                return ca, r.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                log("failed to validate token: Unauthorized")
                return 1
            log(f"waiting for server: {exc}")
        except OSError as exc:
            log(f"waiting for server: {exc}")
        STOP.wait(2)
    return 0


def write_file(path, data, mode=0o600):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def server(cfg):
    from tests.support import testenv

    data_dir = Path(cfg.get("data-dir", "/var/lib/rancher/k3s"))
    beh = behaviour(data_dir)
    sdir = data_dir / "server"
    sdir.mkdir(parents=True, exist_ok=True)
    token_file = sdir / "token"
    want = str(cfg.get("token", ""))
    join_url = str(cfg.get("server", "")).rstrip("/")
    have = None
    if token_file.exists():
        _, _, have = token_parts(token_file.read_text().strip(), "server")
        if want and token_parts(want, "server")[2] != have:
            log("starting k3s: bootstrap data already found and encrypted with different token")
            return 1
    cp, pki, cluster_kc = None, None, None
    if join_url:  # a further server: the cluster's datastore is elsewhere
        if not want:
            log("--token is required to join")
            return 1
        got = from_supervisor(join_url, want, "server")
        if not isinstance(got, tuple):
            return got
        ca, cluster_kc = got
        if beh.get("control_plane"):
            pki = Path(beh["control_plane"]) / "pki"
    else:
        if beh.get("control_plane"):  # the fleet's datastore and API server run already
            cp = testenv.ControlPlane.attach(beh["control_plane"])
        else:
            cp = testenv.ControlPlane(sdir / "controlplane")
            testenv.make_pki(cp.pki)
        pki = cp.pki
        ca = (pki / "ca.crt").read_bytes()
    ca_hash = hashlib.sha256(ca).hexdigest()
    password = have or (token_parts(want, "server")[2] if want else secrets.token_hex(16))
    if have is None:
        write_file(token_file, f"K10{ca_hash}::server:{password}\n".encode())
    if beh.get("never_ready"):
        log("never_ready: running without ever becoming ready")
        STOP.wait()
        return 0
    own = cp is not None and not beh.get("control_plane")
    if own:
        cp.start(timeout=90)
    if cp is not None:
        cluster_kc = cp.kubeconfig.read_bytes()
    kubeconfig = Path(cfg.get("write-kubeconfig", "/etc/rancher/k3s/k3s.yaml"))
    write_file(kubeconfig, cluster_kc, int(str(cfg.get("write-kubeconfig-mode", "0600")), 8))
    cred = sdir / "cred" / "admin.kubeconfig"
    write_file(cred, cluster_kc)
    port_file = sdir / "supervisor-port"
    port = int(port_file.read_text()) if port_file.exists() else free_port()
    port_file.write_text(str(port))
    passwords = {password}
    if cfg.get("agent-token"):
        passwords.add(token_parts(str(cfg["agent-token"]), "node")[2])
    srv = None
    if pki is not None and (pki / "apiserver.key").exists():
        srv = serve_supervisor(port, pki, passwords, cred)
        (sdir / "supervisor-url").write_text(f"https://127.0.0.1:{port}\n")
    name = str(cfg.get("node-name") or socket.gethostname()).lower()
    labels = {}
    if cfg.get("cluster-init") or join_url:  # embedded etcd: k3s marks its members
        labels = {"node-role.kubernetes.io/etcd": "true", "node-role.kubernetes.io/master": "true"}
    t = threading.Thread(target=node_loop, args=(cred, name, "server", labels, beh), daemon=True)
    t.start()
    api = cp.server if cp is not None else join_url
    log(f"server ready: api {api}, supervisor https://127.0.0.1:{port}, node {name}")
    sd_notify()
    STOP.wait()
    if srv is not None:
        srv.shutdown()
    if own:
        cp.stop()
    return 0


def agent(cfg):
    data_dir = Path(cfg.get("data-dir", "/var/lib/rancher/k3s"))
    server_url = str(cfg.get("server", "")).rstrip("/")
    token = str(cfg.get("token", ""))
    if not server_url or not token:
        log("--server and --token are required")
        return 1
    got = from_supervisor(server_url, token, "node")
    if not isinstance(got, tuple):
        return got
    _, kc = got
    beh = behaviour(data_dir)
    if beh.get("never_ready"):
        STOP.wait()
        return 0
    kpath = data_dir / "agent" / "kubelet.kubeconfig"
    write_file(kpath, kc)
    name = str(cfg.get("node-name") or socket.gethostname()).lower()
    t = threading.Thread(target=node_loop, args=(kpath, name, "agent", {}, beh), daemon=True)
    t.start()
    log(f"agent joined {server_url} as node {name}")
    sd_notify()
    STOP.wait()
    return 0


def config_path(argv):
    for i, a in enumerate(argv):
        if a in ("--config", "-c") and i + 1 < len(argv):
            return argv[i + 1]
    return "/etc/rancher/k3s/config.yaml"


def drop_ins(cfg_path):
    """k3s merges ``<config>.d/*.yaml`` over its config file, in name order."""
    out = {}
    d = Path(str(cfg_path) + ".d")
    for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
        out.update(yaml.safe_load(f.read_text()) or {})
    return out


NVIDIA_SEARCH = ["/usr/local/nvidia/toolkit"]


def find_nvidia_runtime():
    """Where k3s finds nvidia-container-runtime at start: the GPU operator's toolkit dir,
    then the PATH it was started with."""
    for d in NVIDIA_SEARCH:
        path = os.path.join(d, "nvidia-container-runtime")
        if os.access(path, os.X_OK):
            return path
    return shutil.which("nvidia-container-runtime")


def write_containerd_config(cfg):
    """The containerd config k3s generates at start (config version 3, k3s 1.33+)."""
    data_dir = Path(cfg.get("data-dir", "/var/lib/rancher/k3s"))
    path = data_dir / "agent" / "etc" / "containerd" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    plugin = "plugins.'io.containerd.cri.v1.runtime'.containerd"
    lines = [
        "# File generated by k3s (palplat stand-in). DO NOT EDIT.",
        "version = 3",
        f'root = "{data_dir}/agent/containerd"',
        "",
        f"[{plugin}]",
        '  snapshotter = "overlayfs"',
    ]
    if cfg.get("default-runtime"):
        lines.append(f'  default_runtime_name = "{cfg["default-runtime"]}"')
    runtimes = {"runc": None}
    found = find_nvidia_runtime()
    if found:
        runtimes["nvidia"] = found
        log(f"found nvidia container runtime at {found}")
    else:
        log("no nvidia container runtime found")
    for name, binary in runtimes.items():
        lines += ["", f"[{plugin}.runtimes.'{name}']", '  runtime_type = "io.containerd.runc.v2"']
        lines += ["", f"[{plugin}.runtimes.'{name}'.options]"]
        if binary:
            lines.append(f'  BinaryName = "{binary}"')
        lines.append("  SystemdCgroup = true")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main(argv):
    if not argv or argv[0] in ("--version", "-v", "version"):
        print(f"k3s version {VERSION} (palplat-standin)\ngo version go1.24.0")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    cfg = parse_args(argv[1:])
    cfg.update(drop_ins(config_path(argv[1:])))
    write_containerd_config(cfg)
    if argv[0] == "server":
        return server(cfg)
    if argv[0] == "agent":
        return agent(cfg)
    print(f"k3s stand-in: unsupported command {argv[0]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
