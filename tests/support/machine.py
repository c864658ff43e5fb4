"""A booted Debian 12 machine for tests: systemd as PID 1, reboots, a veth to the test.

The image comes from ``tools/build-machine`` (debootstrap + Salt from PyPI, provisioned by
``tools/provision.sh``, cached by content hash beside the test tools). Each
:class:`Machine` boots it with ``systemd-nspawn --boot`` on an overlay (the cached image
is the read-only lower layer, so every machine starts from the same bytes and a reboot
keeps what the machine wrote), with only a veth pair for a network: ``host_ip`` on the
test's side, ``ip`` (``eth0``) inside, a /30 the test picks. Commands run inside with
``nsenter`` into the machine's PID 1 namespaces. ``reboot()`` is a real one: ``systemctl
reboot`` ends the container and the next start boots it again from its own disk.

    m = Machine(image_dir, workdir, binds={REPO: "/srv/palplat"})
    m.start()                      # boots, waits for systemd, brings eth0 up
    m.run(["systemctl", "is-active", "ssh"])
    m.path("/etc/nftables.conf")   # the machine's file, seen from the test
    m.reboot(); m.destroy()

Why nspawn and not a VM: KVM does not work on these machines and QEMU's emulation is
slow; a container boots systemd in ~15 s and gives every path palplat needs systemd for
(units, transient timers, boot-time services). What it cannot give: its own kernel (no
module loading, /proc/sys outside net.* is read-only, so systemd-sysctl and
systemd-modules-load skip at boot), and systemd-timesyncd (ConditionVirtualization).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class MachineError(RuntimeError):
    pass


def build_image(timeout: float = 3600) -> tuple[Path, float]:
    """``tools/build-machine`` (cached): the image directory and the seconds it took."""
    t0 = time.monotonic()
    out = subprocess.run(
        [str(REPO / "tools/build-machine")], capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        raise MachineError(f"tools/build-machine failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1]), time.monotonic() - t0


def missing_requirements() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter", "ip", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            return (
                f"needs {tool} (apt-get install systemd-container debootstrap util-linux "
                "iproute2 openssh-client)"
            )
    return None


def _used_addresses() -> str:
    return subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout


def pick_net() -> tuple[str, str]:
    """A free /30 in 10.200.0.0/13 for the veth pair: (test side, machine side)."""
    used = _used_addresses()
    for _ in range(100):
        a, b = random.randint(200, 207), random.randint(0, 255)
        c = random.randrange(0, 256, 4)
        host, ip = f"10.{a}.{b}.{c + 1}", f"10.{a}.{b}.{c + 2}"
        if f" {host}/" not in used and f" {ip}/" not in used:
            return host, ip
    raise MachineError("no free /30 for the machine's veth")


class Machine:
    def __init__(
        self,
        image: Path,
        workdir: Path,
        *,
        name: str | None = None,
        binds: dict[str | Path, str] | None = None,
        host_ip: str | None = None,
        ip: str | None = None,
    ):
        self.image = Path(image)
        self.work = Path(workdir)
        token = f"{random.getrandbits(24):06x}"
        self.name = name or f"palplat-{token}"
        self.veth_host, self.veth_machine = f"pp{token}h", f"pp{token}m"
        picked = pick_net() if not (host_ip and ip) else (host_ip, ip)
        self.host_ip, self.ip = picked
        self.binds = {str(k): v for k, v in (binds or {}).items()}
        self.root = self.work / "root"
        self.proc: subprocess.Popen | None = None
        self.leader: int | None = None
        self.boots: list[float] = []
        self._mounted = False

    # ------------------------------------------------------------------ lifecycle

    def _mount(self) -> None:
        if self._mounted:
            return
        for d in ("upper", "ovwork", "root"):
            (self.work / d).mkdir(parents=True, exist_ok=True)
        lower = self.image / "root"
        opts = f"lowerdir={lower},upperdir={self.work / 'upper'},workdir={self.work / 'ovwork'}"
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", opts, str(self.root)], check=True
        )
        self._mounted = True

    def _veth(self) -> None:
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        if f" {self.veth_host}@" in links or f" {self.veth_host}:" in links:
            subprocess.run(["ip", "link", "del", self.veth_host], check=False)
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                self.veth_host,
                "type",
                "veth",
                "peer",
                "name",
                self.veth_machine,
            ],
            check=True,
        )
        subprocess.run(
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth_host], check=True
        )
        subprocess.run(["ip", "link", "set", self.veth_host, "up"], check=True)

    def prepare(self) -> None:
        """Overlay and veth without booting (so a test server can bind ``host_ip`` first)."""
        self._mount()
        self._veth()

    def start(self, timeout: float = 120) -> float:
        """Boot; wait for systemd (running or degraded) and bring eth0 up. Seconds taken."""
        t0 = time.monotonic()
        self._mount()
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        if f" {self.veth_machine}@" not in links:
            self._veth()
        argv = [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            f"--directory={self.root}",
            f"--machine={self.name}",
            "--register=no",
            "--keep-unit",
            "--private-network",
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
            "--console=read-only",
        ]
        for src, dst in self.binds.items():
            argv.append(f"--bind-ro={src}:{dst}")
        if Path("/dev/net/tun").exists():
            argv.append("--bind=/dev/net/tun")  # tailscaled's TUN device, as on a host
        log = open(self.work / "console.log", "ab")  # noqa: SIM115 - kept open with the process
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.leader = self._find_leader(timeout)
        # moved in by hand: nspawn's --network-interface wants udev to know the link
        subprocess.run(
            ["ip", "link", "set", self.veth_machine, "netns", str(self.leader)], check=True
        )
        deadline = t0 + timeout
        state = ""
        while time.monotonic() < deadline:
            res = self.run(["systemctl", "is-system-running"], check=False, timeout=30)
            state = res.stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        else:
            raise MachineError(f"{self.name} did not finish booting ({state}):\n{self.console()}")
        self.run(["ip", "link", "set", self.veth_machine, "name", "eth0"])
        self.run(["ip", "addr", "add", f"{self.ip}/30", "dev", "eth0"])
        self.run(["ip", "link", "set", "eth0", "up"])
        took = time.monotonic() - t0
        self.boots.append(took)
        return took

    def _find_leader(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise MachineError(
                    f"systemd-nspawn exited {self.proc.returncode}:\n{self.console()}"
                )
            for pid in _descendants(self.proc.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                nspid = next(
                    (ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), []
                )
                if len(nspid) >= 2 and nspid[-1] == "1":
                    return pid
            time.sleep(0.1)
        raise MachineError(f"no PID 1 in {self.name}:\n{self.console()}")

    def console(self, lines: int = 60) -> str:
        try:
            text = (self.work / "console.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_stopped(self, timeout: float = 90) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.leader = None

    def reboot(self, timeout: float = 120) -> float:
        """``systemctl reboot`` inside, wait for the container to end, boot it again."""
        self.run(["systemctl", "reboot"], check=False, timeout=30)
        self.wait_stopped(timeout)
        return self.start(timeout)

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        t0 = time.monotonic()
        # the end of a test: no clean shutdown needed (a reboot is clean: reboot())
        if self.leader is not None:
            with contextlib.suppress(MachineError, subprocess.TimeoutExpired):
                self.run(["systemctl", "poweroff", "--force", "--force"], check=False, timeout=20)
        # else systemd-nspawn turns SIGTERM into a clean shutdown of the container
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.wait_stopped(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        with open(self.work / "commands.log", "a") as log:
            log.write(f"{time.monotonic() - t0:7.1f}s stop\n")

    def destroy(self) -> None:
        self.stop()
        subprocess.run(["ip", "link", "del", self.veth_host], capture_output=True, check=False)
        if self._mounted:
            subprocess.run(["umount", str(self.root)], check=False)
            self._mounted = False
        # the logs (console, commands with their durations) stay for a post-mortem
        for d in ("upper", "ovwork", "root"):
            shutil.rmtree(self.work / d, ignore_errors=True)

    # -------------------------------------------------------------------- inside

    def run(
        self,
        argv: list[str],
        *,
        check: bool = True,
        timeout: float = 600,
        input: str | None = None,  # noqa: A002 - mirrors subprocess
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the machine (all of its namespaces, a clean environment)."""
        if self.leader is None:
            raise MachineError(f"{self.name} is not running")
        envs = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        full = [
            "nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "--",
            "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in envs.items()), *argv,
        ]  # fmt: skip
        t0 = time.monotonic()
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input)
        with open(self.work / "commands.log", "a") as log:
            log.write(f"{time.monotonic() - t0:7.1f}s rc={res.returncode} {' '.join(argv)[:200]}\n")
        if check and res.returncode != 0:
            raise MachineError(
                f"{' '.join(argv)} exited {res.returncode} in {self.name}:\n"
                f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
            )
        return res

    def salt(self, *args: str, timeout: float = 600) -> tuple[int, object]:
        """``salt '*' <args> --out=json`` through the machine's master: (exit, output)."""
        res = self.run(["salt", "--out=json", "--static", "*", *args], check=False, timeout=timeout)
        return res.returncode, _json(res.stdout)

    def salt_run(self, *args: str, timeout: float = 900) -> tuple[int, object]:
        res = self.run(["salt-run", "--out=json", *args], check=False, timeout=timeout)
        return res.returncode, _json(res.stdout)

    def path(self, inside: str) -> Path:
        """A path of the machine's filesystem as the test sees it (through the overlay)."""
        return self.root / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        p = self.path(inside)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.chmod(p, mode)

    def unit(self, name: str, *props: str) -> dict[str, str]:
        out = self.run(["systemctl", "show", name, *(f"--property={p}" for p in props)]).stdout
        return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return {"unparsed": text[-4000:]}


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                for k in kids:
                    out.append(int(k))
                    todo.append(int(k))
    return out


def tcp_open(host: str, port: int, timeout: float = 2.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ------------------------------------------------------------ what the machine downloads


class FileServer:
    """Static files over HTTP on the test's end of the veth (the machine's only network):
    ``files`` maps URL paths to bytes; ``requests`` records every path asked for."""

    def __init__(self, host: str):
        self.host = host
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self._srv = None

    @property
    def base(self) -> str:
        assert self._srv is not None
        return f"http://{self.host}:{self._srv.server_address[1]}"

    def start(self) -> FileServer:
        import http.server
        import threading
        import urllib.parse

        files, requests = self.files, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802
                path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
                requests.append(path)
                body = files.get(path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self._srv = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None


def testbin_binds() -> dict[str, str]:
    """The test tools (the stand-in k3s runs the real control plane) at the same paths
    inside the machine: the bin directory and every directory its links point into."""
    from tests.support.testenv import testbin_dir

    bindir = testbin_dir()
    dirs = {str(bindir)}
    for p in bindir.iterdir():
        dirs.add(str(Path(os.path.realpath(p)).parent))
    return {d: d for d in sorted(dirs)}


def add_k3s_release(srv: FileServer, version: str, python: str, repo: str) -> str:
    """Publish the stand-in k3s for ``version`` as the machine runs it (its Python, the
    checkout's path inside, the test tools); returns the ``source.url`` pattern."""
    import hashlib

    from tests.support import fake_k3s
    from tests.support.testenv import testbin_dir

    text = fake_k3s.render(version).decode()
    lines = text.split("\n")
    lines[0] = f"#!{python}"
    text = "\n".join(lines).replace(f'REPO = "{fake_k3s.REPO}"', f'REPO = "{repo}"')
    text = text.replace(
        "import yaml  # noqa: E402",
        f'os.environ.setdefault("PALPLAT_TESTBIN", "{testbin_dir()}")\nimport yaml  # noqa: E402',
    )
    binary = text.encode()
    base = f"{fake_k3s.PREFIX}/{version}"
    srv.files[f"{base}/k3s"] = binary
    digest = hashlib.sha256(binary).hexdigest()
    srv.files[f"{base}/sha256sum-amd64.txt"] = f"{digest}  k3s\n".encode()
    # over plain http the pillar pins the checksum (palplat.transport): kept for the tests
    srv.sha256 = {**getattr(srv, "sha256", {}), f"k3s {version}": digest}
    return f"{srv.base}{fake_k3s.PREFIX}/{{version}}"


def add_helm_release(srv: FileServer) -> dict[str, str]:
    """Publish the test tools' helm as get.helm.sh lays it out; the platform stage's pin."""
    import hashlib
    import io
    import tarfile

    from tests.support.testenv import find_bin

    helm = find_bin("helm")
    if helm is None:
        raise MachineError("helm is not built: run tools/build-testbin")
    version = subprocess.run(
        [str(helm), "version", "--template", "{{.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(Path(helm).resolve(), arcname="linux-amd64/helm")
    data = buf.getvalue()
    srv.files[f"/helm/helm-{version}-linux-amd64.tar.gz"] = data
    return {
        "version": version,
        "url": f"{srv.base}/helm/helm-{{version}}-linux-{{arch}}.tar.gz",
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def add_tailscale_release(srv: FileServer, bindir: Path) -> dict[str, str]:
    """Publish tailscale + tailscaled (tools/build-tailscale) as pkgs.tailscale.com lays out
    its static archives, with the ``.sha256`` beside; the pillar's version, url."""
    import hashlib
    import io
    import tarfile

    out = subprocess.run([str(bindir / "tailscaled"), "--version"], capture_output=True, text=True)
    version = out.stdout.strip().splitlines()[0].split("-")[0]
    top = f"tailscale_{version}_amd64"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("tailscale", "tailscaled"):
            tar.add(bindir / name, arcname=f"{top}/{name}")
    data = buf.getvalue()
    srv.files[f"/tailscale/{top}.tgz"] = data
    digest = hashlib.sha256(data).hexdigest()
    srv.files[f"/tailscale/{top}.tgz.sha256"] = digest.encode()
    # over plain http the pillar pins the checksum (palplat.transport)
    return {
        "version": version,
        "url": f"{srv.base}/tailscale/tailscale_{{version}}_{{arch}}.tgz",
        "sha256": digest,
    }
