"""A real Kubernetes control plane for tests: kine (sqlite) + kube-apiserver + controller-manager.

The binaries come from ``tools/build-testbin`` (Go modules, cached outside the repo). Every
process listens on 127.0.0.1 only, on free ports, with a throwaway PKI kept in the work
directory; the kine database lives there too, so data survives an API server restart and a
``down``/``up`` cycle of the same directory.

Library::

    cp = ControlPlane(workdir)
    cp.start()            # waits for /readyz and the controller-manager, writes a kubeconfig
    cp.kubeconfig, cp.server, cp.logs()
    cp.stop_apiserver(); cp.start_apiserver()   # simulate an API outage
    cp.stop()

With ``kwok=True`` the cluster looks like the example's k3s host: kube-scheduler and kwok
fake nodes (pods report Running, Jobs complete), ``gpu_nodes`` of them labelled and sized as
palplat's GPU stage and the NVIDIA device plugin leave a GPU host (plus the ``nvidia``
RuntimeClass), and k3s's storage: the default StorageClass ``local-path`` (provisioner
``rancher.io/local-path``) whose claims bind (``tests/support/localpath.py``). Its API
server does not call admission webhooks: no kwok pod can serve one (``WEBHOOKS_OFF``).

CLI (state in ``DIR/controlplane.json``, so a later command can reattach)::

    python -m tests.support.testenv up   --dir DIR [--kwok] [--gpu-nodes N]
    python -m tests.support.testenv env  --dir DIR   # prints export lines for a shell
    python -m tests.support.testenv down --dir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE_FILE = "controlplane.json"
COMPONENTS = ("kine", "kube-apiserver", "kube-controller-manager")
# Optional: fake nodes (kwok) whose pods report Running; kwok schedules nothing itself.
KWOK_COMPONENTS = ("kube-scheduler", "kwok")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# k3s's storage (a Python loop here, see localpath.py): on by default with kwok nodes.
STORAGE_COMPONENT = "local-path-provisioner"
# kwok's node heartbeat: a node Lease, as a kubelet keeps one (see start_kwok)
NODE_LEASE_S = 40
# What palplat's GPU stage and the device plugin (time-slicing replicas 4) leave on a GPU
# node: the node label, the RuntimeClass, and nvidia.com/gpu allocatable.
GPU_NODE_LABEL = "nvidia.com/gpu.present"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_REPLICAS = "4"
RUNTIME_CLASS = "nvidia"
# kwok pods run no code, so no chart's admission webhook (CloudNativePG's: failurePolicy
# Fail) can ever answer: a control plane with kwok nodes stores webhook configurations but
# does not call them, as if every webhook server accepted everything.
WEBHOOKS_OFF = ["--disable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook"]
POD_CIDR = "10.244.0.1/16"
SERVICE_CIDR = "10.0.0.0/24"
GRACE_S = {"kube-apiserver": 5.0, "kube-controller-manager": 5.0}
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """The control plane did not start, or a component died; the message has log tails."""


# --------------------------------------------------------------------------- binaries


def testbin_dir() -> Path:
    """The directory with the built test tools (``$PALPLAT_TESTBIN`` or build-testbin --print)."""
    env = os.environ.get("PALPLAT_TESTBIN")
    if env:
        return Path(env)
    key = (os.environ.get("PALPLAT_TESTBIN_CACHE"), os.environ.get("XDG_CACHE_HOME"))
    if key not in _TESTBIN_DIRS:
        _TESTBIN_DIRS[key] = _ask_build_testbin()
    return _TESTBIN_DIRS[key]


_TESTBIN_DIRS: dict[tuple, Path] = {}


def _ask_build_testbin() -> Path:
    try:
        out = subprocess.run(
            [str(REPO / "tools" / "build-testbin"), "--print"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        lines = [ln for ln in out.splitlines() if ln.strip()]
        if lines:
            return Path(lines[-1].strip())
    except (OSError, subprocess.SubprocessError):
        pass
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("PALPLAT_TESTBIN_CACHE") or cache / "palplat" / "testbin") / "bin"


def find_bin(name: str) -> Path | None:
    """Path of a built test tool (``kube-apiserver``, ``kubectl``, ``helm``...), or None."""
    path = testbin_dir() / name
    if path.is_file() and os.access(path, os.X_OK):
        return path
    return None


def missing_bins(names=COMPONENTS) -> list[str]:
    """The names among ``names`` that are not built yet."""
    return [n for n in names if find_bin(n) is None]


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int | None, exe: str | None = None) -> bool:
    """True when ``pid`` runs and (if given) its argv[0] is ``exe`` (guards against PID reuse)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if exe:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
            return argv0 == exe
    except (OSError, IndexError):
        pass
    return True


def _terminate(pid: int, exe: str | None, timeout: float = 15) -> None:
    if not _pid_alive(pid, exe):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _pid_alive(pid, exe):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """preexec_fn: kill the child when the test process dies (PR_SET_PDEATHSIG).

    SIGKILL, not SIGTERM: kube-apiserver can hang for minutes in its graceful shutdown."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:  # noqa: S110 - best effort only
        pass


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# --------------------------------------------------------------------------- PKI


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def make_pki(pki: Path) -> None:
    """Create a throwaway CA, serving cert, client certs and SA key in ``pki`` (once)."""
    if (pki / "admin.crt").exists() and (pki / "sa.key").exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=365)

    def key_pem(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "palplat-test-ca")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(name: x509.Name, server: bool):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
        )
        if server:
            names = [
                x509.DNSName(n)
                for n in (
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                )
            ]
            names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "10.0.0.1")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    def subject(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    pem = serialization.Encoding.PEM
    _write(pki / "ca.key", key_pem(ca_key))
    _write(pki / "ca.crt", ca.public_bytes(pem), 0o644)
    for stem, name, server in (
        ("apiserver", subject("kube-apiserver"), True),
        # system:masters: the test admin may do anything.
        ("admin", subject("palplat-test-admin", "system:masters"), False),
        # The controller-manager runs every controller under its own identity; masters keeps
        # the namespace controller and garbage collector free of RBAC gaps.
        ("controller-manager", subject("system:kube-controller-manager", "system:masters"), False),
    ):
        key, cert = leaf(name, server)
        _write(pki / f"{stem}.key", key_pem(key))
        _write(pki / f"{stem}.crt", cert.public_bytes(pem), 0o644)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki / "sa.key", key_pem(sa))
    _write(
        pki / "sa.pub",
        sa.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
        0o644,
    )


def _b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    """A kubeconfig (JSON is valid YAML) with the CA and the client cert embedded."""
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "palplat-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pki / f"{user}.crt"),
                    "client-key-data": _b64(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "palplat-test", "context": {"cluster": "palplat-test", "user": user}}
        ],
        "current-context": "palplat-test",
    }
    _write(path, json.dumps(cfg, indent=2).encode())


def _kwok_node(name: str, gpu: bool = False) -> dict:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
    }
    if gpu:
        resources[GPU_RESOURCE] = GPU_REPLICAS
        labels[GPU_NODE_LABEL] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake"},
            "labels": labels,
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


# --------------------------------------------------------------------------- control plane


class ControlPlane:
    """kine + kube-apiserver + kube-controller-manager rooted in ``workdir``."""

    def __init__(self, workdir: Path | str, *, detach: bool = False):
        self.workdir = Path(workdir).resolve()
        # detach=False: the components get SIGKILL when this Python process dies, so a
        # crashed test run leaves nothing behind. The CLI's `up` detaches.
        self.detach = detach
        self.pki = self.workdir / "pki"
        self.logdir = self.workdir / "logs"
        self.state: dict = {"pids": {}, "exes": {}, "ports": {}}
        self._procs: dict[str, subprocess.Popen] = {}

    # ----- public properties
    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.state['ports']['kube-apiserver']}"

    def logs(self) -> dict[str, Path]:
        """Log file of each component (they exist once the component was started)."""
        return {c: self.logdir / f"{c}.log" for c in self._components()}

    def _components(self) -> tuple[str, ...]:
        return tuple(self.state.get("components") or COMPONENTS)

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every component log, as one printable block."""
        out = []
        for comp, path in self.logs().items():
            out.append(f"----- {comp} ({path}) -----\n{tail(path, lines) or '(empty)'}")
        return "\n".join(out)

    def print_log_tails(self, lines: int = 40, file=None) -> None:
        print(self.log_tails(lines), file=file or sys.stderr)

    # ----- state file
    @property
    def state_path(self) -> Path:
        return self.workdir / STATE_FILE

    def _save(self) -> None:
        self.state["workdir"] = str(self.workdir)
        self.state["kubeconfig"] = str(self.kubeconfig)
        if self.state["ports"].get("kube-apiserver"):
            self.state["server"] = self.server
        _write(self.state_path, json.dumps(self.state, indent=2).encode(), 0o644)

    @classmethod
    def attach(cls, workdir: Path | str) -> ControlPlane:
        """Reattach to a control plane started (e.g. by the CLI) in ``workdir``."""
        cp = cls(workdir, detach=True)
        try:
            cp.state = json.loads(cp.state_path.read_text())
        except FileNotFoundError:
            raise ControlPlaneError(f"no control plane state in {cp.state_path}") from None
        return cp

    def _alive(self, comp: str) -> bool:
        proc = self._procs.get(comp)
        if proc is not None:  # our child (it may not have exec'd yet: argv0 is not checked)
            return proc.poll() is None
        return _pid_alive(self.state["pids"].get(comp), self.state["exes"].get(comp))

    def running(self) -> dict[str, bool]:
        """Whether each component's recorded process is alive."""
        return {c: self._alive(c) for c in self._components()}

    # ----- processes
    def _spawn(self, comp: str, argv: list[str]) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = open(self.logdir / f"{comp}.log", "ab")  # noqa: SIM115 - handed to the child
        log.write(f"\n===== {time.strftime('%H:%M:%S')} starting {comp}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=None if self.detach else _die_with_parent,  # noqa: PLW1509
            )
        finally:
            log.close()
        self._procs[comp] = proc
        self.state["pids"][comp] = proc.pid
        self.state["exes"][comp] = argv[0]
        self._save()

    def _stop(self, comp: str) -> None:
        # kube-apiserver stops serving at once on SIGTERM but can then hang for a long time
        # on open watches; its data is in kine, so a SIGKILL after 5 s is harmless.
        grace = GRACE_S.get(comp, 15)
        proc = self._procs.pop(comp, None)
        pid = self.state["pids"].get(comp)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        elif pid:
            _terminate(pid, self.state["exes"].get(comp), grace)
        self.state["pids"].pop(comp, None)
        self._save()

    def _check_alive(self, comp: str) -> None:
        if not self._alive(comp):
            raise ControlPlaneError(f"{comp} exited during start-up\n{tail(self.logs()[comp], 60)}")

    def _bin(self, name: str) -> str:
        path = find_bin(name)
        if path is None:
            raise ControlPlaneError(
                f"{name} is not built: run tools/build-testbin (looked in {testbin_dir()})"
            )
        return str(path)

    # ----- components
    def _start_kine(self) -> None:
        port = self.state["ports"].get("kine") or free_port()
        self.state["ports"]["kine"] = port
        db = self.workdir / "kine" / "state.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "kine",
            [
                self._bin("kine"),
                f"--listen-address=127.0.0.1:{port}",
                "--metrics-bind-address=0",
                f"--endpoint=sqlite://{db}?_journal=WAL&cache=shared&_busy_timeout=30000",
            ],
        )

    def start_apiserver(self, timeout: float = 60) -> None:
        """Start (or restart after ``stop_apiserver``) kube-apiserver on its old port."""
        port = self.state["ports"].get("kube-apiserver") or free_port()
        self.state["ports"]["kube-apiserver"] = port
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                self._bin("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.state['ports']['kine']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                # to a real node's kubelet (pod logs, exec): the admin's client cert
                f"--kubelet-client-certificate={pki / 'admin.crt'}",
                f"--kubelet-client-key={pki / 'admin.key'}",
                # by its address: a test node's name resolves nowhere
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                "--authorization-mode=RBAC",
                "--endpoint-reconciler-type=none",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--profiling=false",
                "--v=1",
            ]
            + WEBHOOKS_OFF * (not self.state.get("webhooks", True))
            + self._audit_args(),
        )
        self._wait_ready(timeout)
        self._save()

    @property
    def audit_log(self) -> Path:
        """Every API request (metadata level, one JSON line each) once :meth:`enable_audit`
        was called before the start: who asked (``user.username``, ``userAgent``), the verb
        and the resource. The fleet benchmark counts palplat's requests there."""
        return self.workdir / "audit.log"

    def enable_audit(self) -> None:
        """Log every request to :attr:`audit_log` from the next API server start on."""
        self.state["audit"] = True

    def _audit_args(self) -> list[str]:
        if not self.state.get("audit"):
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
            "rules:\n  - level: Metadata\n"
        )
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
        ]

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (kine and its data stay): an API outage."""
        self._stop("kube-apiserver")

    def _start_controller_manager(self) -> None:
        kcfg = self.workdir / "controller-manager.kubeconfig"
        write_kubeconfig(kcfg, self.server, self.pki, "controller-manager")
        pki = self.pki
        self._spawn(
            "kube-controller-manager",
            [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={kcfg}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                # Default set: namespace, garbagecollector, serviceaccount(-token),
                # deployment, replicaset, job, ... (node-less ones simply idle).
                "--controllers=*",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=false",
                "--profiling=false",
                "--v=1",
            ],
        )

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _get(self, path: str, timeout: float = 2, body: dict | None = None) -> tuple[int, bytes]:
        """GET (or POST ``body`` as JSON) as the admin user: (status, response body)."""
        return self.request("GET" if body is None else "POST", path, body=body, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 10,
    ) -> tuple[int, bytes]:
        """One API request as the admin user: (status, response body)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": content_type}
        req = urllib.request.Request(self.server + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl_context()) as r:  # noqa: S310
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self._check_alive("kine")
            self._check_alive("kube-apiserver")
            try:
                code, body = self._get("/readyz")
                if code == 200:
                    return
                last = f"HTTP {code}: {body.decode(errors='replace')[-500:]}"
            except (OSError, ssl.SSLError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {timeout}s ({last})\n{self.log_tails(30)}"
        )

    def _wait_controllers(self, timeout: float) -> None:
        """The serviceaccount controller has made `default/default`: controllers run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive("kube-controller-manager")
            try:
                code, _ = self._get("/api/v1/namespaces/default/serviceaccounts/default")
                if code == 200:
                    return
            except (OSError, ssl.SSLError):
                pass
            time.sleep(0.2)
        raise ControlPlaneError(
            f"kube-controller-manager did not start its controllers in {timeout}s\n"
            f"{self.log_tails(30)}"
        )

    # ----- lifecycle
    def start(
        self,
        timeout: float = 60,
        kwok: bool = False,
        kwok_nodes: int = 1,
        *,
        gpu_nodes: int = 0,
        storage: bool | None = None,
    ) -> ControlPlane:
        """Start everything, wait until usable, write ``kubeconfig``. Returns self.

        ``kwok=True`` adds kube-scheduler and kwok with ``kwok_nodes`` fake nodes, so pods
        get scheduled and report Running (Deployments become Available, ``helm --wait``);
        the first ``gpu_nodes`` of them are GPU nodes (see :meth:`start_kwok`).
        ``storage`` (default: as ``kwok``) adds k3s's default StorageClass ``local-path``
        and its provisioner (:meth:`start_storage`). With ``kwok`` the API server does not
        call admission webhooks (no kwok pod can serve one; see ``WEBHOOKS_OFF``).
        """
        for name in COMPONENTS + (KWOK_COMPONENTS if kwok else ()):
            self._bin(name)
        if self.state_path.exists():
            old = ControlPlane.attach(self.workdir)
            if any(old.running().values()):
                raise ControlPlaneError(
                    f"a control plane already runs in {self.workdir}; stop it first"
                )
            # Same workdir again: keep the data, PKI and ports (if still free).
            self.state["ports"] = {
                k: v for k, v in old.state.get("ports", {}).items() if v and not _port_open(v)
            }
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state["webhooks"] = not kwok
        started = time.monotonic()
        try:
            make_pki(self.pki)
            self._start_kine()
            self.start_apiserver(timeout=timeout)
            write_kubeconfig(self.kubeconfig, self.server, self.pki, "admin")
            self._start_controller_manager()
            self._wait_controllers(max(5.0, timeout - (time.monotonic() - started)))
            if kwok:
                left = max(5.0, timeout - (time.monotonic() - started))
                self.start_kwok(kwok_nodes, left, gpu_nodes=gpu_nodes)
            if kwok if storage is None else storage:
                self.start_storage()
        except BaseException:
            self.stop()
            raise
        self.state["started_s"] = round(time.monotonic() - started, 2)
        self._save()
        return self

    def stop(self) -> None:
        """Stop every component this control plane started (data stays in ``workdir``)."""
        for comp in reversed(self._components()):
            self._stop(comp)

    def _add_components(self, names) -> None:
        comps = list(self._components())
        self.state["components"] = comps + [n for n in names if n not in comps]

    def start_kwok(self, nodes: int = 1, timeout: float = 60, *, gpu_nodes: int = 0) -> list[str]:
        """Add kube-scheduler, kwok and ``nodes`` fake nodes to a running control plane.

        The nodes (``kwok-node-<i>``, annotation ``kwok.x-k8s.io/node: fake``, no taints)
        take any pod; kwok reports the pods Running and Ready, and Job pods Succeeded.
        The first ``gpu_nodes`` are GPU hosts as palplat's GPU stage leaves them: label
        ``nvidia.com/gpu.present=true``, ``nvidia.com/gpu`` allocatable (4: the example's
        time-slicing replicas) and the ``nvidia`` RuntimeClass. Returns the node names.
        """
        for name in KWOK_COMPONENTS:
            self._bin(name)
        self._add_components(KWOK_COMPONENTS)
        kcfg = self.workdir / "controller-manager.kubeconfig"
        if not self._alive("kube-scheduler"):
            self._spawn(
                "kube-scheduler",
                [
                    self._bin("kube-scheduler"),
                    f"--kubeconfig={kcfg}",
                    "--bind-address=127.0.0.1",
                    "--secure-port=0",
                    "--leader-elect=false",
                    "--profiling=false",
                    "--v=1",
                ],
            )
        if not self._alive("kwok"):
            self._spawn(
                "kwok",
                [
                    self._bin("kwok"),
                    f"--kubeconfig={kcfg}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                    "--node-ip=127.0.0.1",
                    f"--cidr={POD_CIDR}",
                    # Heartbeats by node Lease, as a kubelet does. Without, kwok patches
                    # node status about once a minute, past the node monitor's grace
                    # period: the node flaps NotReady and kube-controller-manager marks
                    # its pods not ready, which kwok never undoes (`helm --wait` hangs).
                    f"--node-lease-duration-seconds={NODE_LEASE_S}",
                ],
            )
        names = [f"kwok-node-{i}" for i in range(nodes)]
        for i, name in enumerate(names):
            self._create("/api/v1/nodes", _kwok_node(name, gpu=i < gpu_nodes))
        if gpu_nodes:
            runtime_class = {
                "apiVersion": "node.k8s.io/v1",
                "kind": "RuntimeClass",
                "metadata": {"name": RUNTIME_CLASS},
                "handler": RUNTIME_CLASS,
            }
            self._create("/apis/node.k8s.io/v1/runtimeclasses", runtime_class)
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive("kwok")
            self._check_alive("kube-scheduler")
            ready = [n for n in names if self._node_ready(n)]
            if len(ready) == len(names):
                break
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kwok nodes not Ready after {timeout}s ({ready} of {names})\n"
                    f"{self.log_tails(30)}"
                )
            time.sleep(0.2)
        self._save()
        return names

    def start_scheduler(self) -> bool:
        """Add kube-scheduler (a real node's pods, DaemonSets' pods, need it); True when
        this call started it (False: it ran already)."""
        self._bin("kube-scheduler")
        self._add_components(["kube-scheduler"])
        started = not self._alive("kube-scheduler")
        if started:
            self._spawn(
                "kube-scheduler",
                [
                    self._bin("kube-scheduler"),
                    f"--kubeconfig={self.workdir / 'controller-manager.kubeconfig'}",
                    "--bind-address=127.0.0.1",
                    "--secure-port=0",
                    "--leader-elect=false",
                    "--profiling=false",
                    "--v=1",
                ],
            )
        self._save()
        return started

    def stop_scheduler(self) -> None:
        """Stop the kube-scheduler :meth:`start_scheduler` added (a shared control plane
        goes back to scheduling nothing)."""
        self._stop("kube-scheduler")
        self.state["components"] = [c for c in self._components() if c != "kube-scheduler"]
        self._save()

    def start_storage(self, binding_mode: str = "WaitForFirstConsumer") -> None:
        """k3s's storage: the default StorageClass ``local-path`` (provisioner
        ``rancher.io/local-path``) and a provisioner process that binds its claims to
        hostPath volumes under ``workdir/storage`` (``tests/support/localpath.py``)."""
        from tests.support import localpath

        self._create(
            "/apis/storage.k8s.io/v1/storageclasses", localpath.storage_class(binding_mode)
        )
        self._add_components([STORAGE_COMPONENT])
        if not self._alive(STORAGE_COMPONENT):
            pki = self.pki
            self._spawn(
                STORAGE_COMPONENT,
                [
                    sys.executable,
                    str(Path(localpath.__file__).resolve()),
                    f"--server={self.server}",
                    f"--ca={pki / 'ca.crt'}",
                    f"--cert={pki / 'admin.crt'}",
                    f"--key={pki / 'admin.key'}",
                    f"--root={self.workdir / 'storage'}",
                ],
            )
        time.sleep(0.2)
        self._check_alive(STORAGE_COMPONENT)
        self._save()

    def _create(self, path: str, body: dict) -> None:
        """POST ``body`` to ``path``; an object that already exists is fine."""
        code, out = self._get(path, body=body)
        if code not in (201, 409):
            name = body["metadata"]["name"]
            raise ControlPlaneError(f"creating {body['kind']} {name}: HTTP {code} {out[-300:]!r}")

    def _node_ready(self, name: str) -> bool:
        code, out = self._get(f"/api/v1/nodes/{name}")
        if code != 200:
            return False
        conditions = json.loads(out).get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment for a shell or subprocess: KUBECONFIG and PATH with the testbin."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{testbin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        }


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.testenv", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=("up", "down", "env", "logs"))
    parser.add_argument("--dir", required=True, type=Path, help="work directory (state, data)")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument(
        "--kwok",
        action="store_true",
        help="up: add kube-scheduler, kwok, a fake node and k3s's local-path storage",
    )
    parser.add_argument(
        "--gpu-nodes", type=int, default=0, help="up --kwok: how many of the nodes have a GPU"
    )
    args = parser.parse_args(argv)

    if args.command == "up":
        with contextlib.suppress(ControlPlaneError):
            if any(ControlPlane.attach(args.dir).running().values()):
                print(f"already running in {args.dir}", file=sys.stderr)
                return 0
        cp = ControlPlane(args.dir, detach=True)
        try:
            cp.start(timeout=args.timeout, kwok=args.kwok, gpu_nodes=args.gpu_nodes)
        except ControlPlaneError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"control plane up in {cp.state['started_s']}s: {cp.server}", file=sys.stderr)
        print(f"kubeconfig: {cp.kubeconfig}", file=sys.stderr)
        return 0
    try:
        cp = ControlPlane.attach(args.dir)
    except ControlPlaneError as exc:
        print(exc, file=sys.stderr)
        return 0 if args.command == "down" else 1
    if args.command == "down":
        cp.stop()
        print(f"control plane in {args.dir} stopped", file=sys.stderr)
    elif args.command == "env":
        for key, value in cp.env().items():
            print(f"export {key}='{value}'")
    else:
        cp.print_log_tails(file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
