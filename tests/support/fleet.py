"""A fleet on this machine: one real Salt master and N real minions, each with its own
root and the stand-in k3s under it, forming one cluster on one control plane.

    python -m tests.support.fleet up   --dir DIR --nodes 3+3     # make sandbox NODES=3+3
    python -m tests.support.fleet down --dir DIR                 # make sandbox-down NODES=...

The topology is data (:func:`topology`, or a YAML list of nodes): servers (the first one
``cluster_init``, embedded etcd; the others join it with ``server_url``) and agents, some
with a GPU (their ``palplat:gpu:root`` is a copy of what a real H100 host showed,
../shared/reference/gpu/h100-ubuntu-24.04, with the container toolkit's binary beside).

What each piece is:

- the control plane (tests/support/testenv.py: kine + kube-apiserver + controller-manager
  + kube-scheduler), started once: the cluster's datastore, which every stand-in server
  attaches to (``control_plane`` in its ``fake-k3s.json``), so a server's restart leaves the
  API up for the others as embedded etcd does; its audit log counts API requests;
- the stand-in k3s release (tests/support/fake_k3s) as a ``file://`` release directory;
- Salt: daemons started from this venv (``salt-master``, ``salt-minion -c DIR/salt/<id>``),
  each minion pointed at this checkout (module, state, runner and utils dirs: no sync);
- the pillar (``DIR/pillar``): a common ``palplat.sls`` (host and firewall off, the
  platform: one small release, the GPU device plugin) and one ``nodes/<id>.sls`` per
  minion (its k3s role, join settings and GPU root), assigned in ``top.sls``.

Everything lives under DIR; nothing else on the machine changes. Salt's own tests
(``tests/functional/test_fleet.py``) and ``benchmarks/fleet_bench.py`` use :class:`Fleet`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHARED = REPO.parent / "shared"
H100 = SHARED / "reference" / "gpu" / "h100-ubuntu-24.04"
PLUGIN_CHART = SHARED / "reference" / "charts" / "nvidia-device-plugin-0.20.0.tgz"
APP_CHART = REPO / "tests" / "fixtures" / "charts" / "cm"
VERSIONS = ("v1.33.5+k3s1", "v1.33.6+k3s1")
UNITS = ("k3s.service", "k3s-agent.service")


def say(msg: str) -> None:
    print(f"[fleet] {msg}", flush=True)


# ---------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class Node:
    """One minion of the fleet. ``name`` is both the minion id and the k3s node name."""

    name: str
    role: str = "server"  # server | agent
    cluster_init: bool = False  # the first server (holds the cluster)
    gpus: int = 0  # GPU agents read the H100 reference host's tree


def topology(spec: str, prefix: str = "", gpu_agents: int | None = None) -> list[Node]:
    """``"3+3"``: 3 servers (the first ``cluster_init``) and 3 agents, the first
    ``gpu_agents`` of them with a GPU (default: one in three, at least one when there are
    agents). ``"1"``: one server alone."""
    servers_s, _, agents_s = spec.partition("+")
    servers, agents = int(servers_s), int(agents_s or 0)
    if servers < 1:
        raise ValueError(f"{spec}: a fleet needs a server")
    if gpu_agents is None:
        gpu_agents = (agents + 2) // 3
    nodes = [Node(f"{prefix}srv{i + 1}", "server", i == 0) for i in range(servers)]
    nodes += [
        Node(f"{prefix}agt{i + 1}", "agent", False, 1 if i < gpu_agents else 0)
        for i in range(agents)
    ]
    return nodes


def load_topology(path: Path) -> list[Node]:
    """A YAML list of nodes: ``[{name: srv1, role: server, cluster_init: true}, ...]``."""
    return [Node(**n) for n in yaml.safe_load(Path(path).read_text())]


# ------------------------------------------------------------------------ processes


def _pid(pidfile: Path) -> int | None:
    """A live (not zombie) salt process with the pid in ``pidfile``."""
    try:
        pid = int(pidfile.read_text().strip())
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if stat.rsplit(")", 1)[1].split()[0] == "Z" or b"salt" not in cmdline:
        return None
    return pid


def _descendants(pids: set[int]) -> set[int]:
    """The live processes below ``pids`` (a minion's job processes)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parent[int(d)] = int(
                    Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, ValueError, IndexError):
                continue
    out, todo = set(), set(pids)
    while todo:
        kids = {p for p, pp in parent.items() if pp in todo} - out
        out |= kids
        todo = kids
    return out


def _kill(*pidfiles: Path, timeout: float = 30) -> bool:
    """SIGTERM to every live daemon of ``pidfiles`` at once, then wait for them all
    (SIGKILL after ``timeout``), then to the job processes they leave behind (Salt 3007's
    wait for the master's answer to their return, up to a minute). True when one was
    running."""
    pids = {}
    for pf in pidfiles:
        pid = _pid(pf)
        if pid is not None:
            pids[pf] = pid
    kids = _descendants(set(pids.values()))
    for pid in pids.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_pid(pf) is not None for pf in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pf, pid in pids.items():
        if _pid(pf) is not None:
            os.kill(pid, signal.SIGKILL)
    for pid in kids:  # only salt processes that were below these daemons
        try:
            if b"salt-minion" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    return bool(pids)


def _free_port() -> int:
    from tests.support.testenv import free_port

    return free_port()


# ----------------------------------------------------------------------------- fleet


class Fleet:
    """A master, its minions and their cluster under ``work`` (see the module docstring).

    ``heartbeat``: seconds between the stand-in nodes' status posts. ``detach``: the
    control plane outlives this process (``make sandbox``)."""

    def __init__(
        self,
        work: Path,
        nodes: list[Node],
        *,
        version: str = VERSIONS[0],
        heartbeat: float = 3,
        token: str | None = None,
        detach: bool = False,
        audit: bool = False,
    ):
        self.work = Path(work).resolve()
        self.nodes = {n.name: n for n in nodes}
        self._check_socket_room()
        self.version = version
        self.heartbeat = heartbeat
        self.token = token or "fleet-" + uuid.uuid4().hex
        self.detach = detach
        self.audit = audit
        self.cp = None
        self.state_path = self.work / "fleet.json"
        self.extra_pillar: dict[str, dict] = {}  # per minion, merged over its node pillar

    # a minion's event socket: <work>/salt/<id> + this
    _SOCKET_TAIL = len("/root/var/run/salt/minion/minion_event_0123456789_pub.ipc")

    def _check_socket_room(self, extra: str = "") -> None:
        """A unix socket's path has room for 107 bytes (Salt keeps its sockets under each
        daemon's root): refuse a work directory too deep for them, before anything starts."""
        longest = max([len(m) for m in self.nodes] + [len(extra), len("master")])
        need = len(str(self.salt_dir)) + 1 + longest + self._SOCKET_TAIL
        if need > 107:
            raise ValueError(
                f"{self.work}: too deep for Salt's unix sockets ({need} > 107 bytes); "
                "use a shorter directory (tempfile.mkdtemp(dir='/tmp'))"
            )

    # ----- layout
    @property
    def salt_dir(self) -> Path:
        return self.work / "salt"

    @property
    def master_etc(self) -> Path:
        return self.salt_dir / "master" / "etc"

    def minion_etc(self, mid: str) -> Path:
        return self.salt_dir / mid / "etc"

    def root(self, mid: str) -> Path:
        """The minion's k3s root (``palplat:k3s:root``)."""
        return self.work / "nodes" / mid / "fs"

    def gpu_root(self, mid: str) -> Path:
        return self.work / "nodes" / mid / "gpu"

    def data_dir(self, mid: str) -> Path:
        return self.root(mid) / "var/lib/rancher/k3s"

    @property
    def first(self) -> Node:
        return next(n for n in self.nodes.values() if n.cluster_init)

    @property
    def servers(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.role == "server"]

    @property
    def agents(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.role == "agent"]

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self._ports['supervisor']}"

    @property
    def releases_url(self) -> str:
        return f"file://{self.work / 'releases'}/{{version}}"

    # ----- state
    def _load_state(self) -> None:
        self._ports = {}
        if self.state_path.exists():
            st = json.loads(self.state_path.read_text())
            self._ports = st.get("ports", {})
            self.token = st.get("token", self.token)
        self._load_ports()

    def _load_ports(self) -> None:
        for key in ("publish", "ret", "supervisor"):
            while key not in self._ports:
                port = _free_port()
                if port not in self._ports.values():
                    self._ports[key] = port

    def _save_state(self) -> None:
        st = {
            "ports": self._ports,
            "token": self.token,
            "nodes": [asdict(n) for n in self.nodes.values()],
            "version": self.version,
        }
        self.state_path.write_text(json.dumps(st, indent=1))

    @classmethod
    def attach(cls, work: Path) -> Fleet:
        st = json.loads((Path(work) / "fleet.json").read_text())
        f = cls(work, [Node(**n) for n in st["nodes"]], version=st["version"], token=st["token"])
        f._load_state()
        from tests.support.testenv import ControlPlane

        try:
            f.cp = ControlPlane.attach(f.work / "controlplane")
        except Exception:  # noqa: BLE001 - down already
            f.cp = None
        return f

    # ----- bring-up
    def start(self) -> Fleet:
        t0 = time.monotonic()
        self.work.mkdir(parents=True, exist_ok=True)
        self._load_state()
        self._control_plane()
        self._releases()
        for n in self.nodes.values():
            self._node_dirs(n)
        self.write_pillar()
        for attempt in range(3):
            self._salt_config()
            try:
                self._start_master()
                break
            except subprocess.CalledProcessError:
                # "ports are not available": taken since they were picked; pick others
                if attempt == 2:
                    raise
                del self._ports["publish"], self._ports["ret"]
                self._load_ports()
        for mid in self.nodes:
            self.start_minion(mid, wait=False)
        self.wait_minions(list(self.nodes))
        self._save_state()
        say(f"{len(self.nodes)} minion(s) up in {time.monotonic() - t0:.1f}s")
        return self

    def _control_plane(self) -> None:
        from tests.support.testenv import ControlPlane

        cp_dir = self.work / "controlplane"
        try:
            cp = ControlPlane.attach(cp_dir)
            if all(cp.running().values()):
                self.cp = cp
                return
            cp.stop()
        except Exception:  # noqa: BLE001 - not running: start it
            pass
        cp = ControlPlane(cp_dir, detach=self.detach)
        if self.audit:
            cp.enable_audit()
        cp.start(timeout=120)
        cp.start_scheduler()  # the device plugin's DaemonSet pods
        self.cp = cp

    def _releases(self) -> None:
        from tests.support.fake_k3s import render

        for v in VERSIONS:
            d = self.work / "releases" / v
            if (d / "k3s").exists():
                continue
            d.mkdir(parents=True, exist_ok=True)
            binary = render(v)
            (d / "k3s").write_bytes(binary)
            import hashlib

            (d / "sha256sum-amd64.txt").write_text(f"{hashlib.sha256(binary).hexdigest()}  k3s\n")

    def _node_dirs(self, n: Node) -> None:
        data = self.data_dir(n.name)
        data.mkdir(parents=True, exist_ok=True)
        beh = {"control_plane": str(self.cp.workdir), "heartbeat": self.heartbeat}
        if n.gpus:
            beh["gpus"] = n.gpus
        (data / "fake-k3s.json").write_text(json.dumps(beh))
        if n.cluster_init:  # the join URL is known before the first server starts
            sup = data / "server"
            sup.mkdir(parents=True, exist_ok=True)
            (sup / "supervisor-port").write_text(str(self._ports["supervisor"]))
        gpu = self.gpu_root(n.name)
        if n.gpus and not (gpu / "usr/bin/nvidia-container-runtime").exists():
            from tests.unit.nvidia import trees

            shutil.rmtree(gpu, ignore_errors=True)
            if (H100 / "root").is_dir():
                trees.copy_reference(gpu)
            else:  # without ../shared: the same files written from scratch
                trees.tiny_tree(gpu, gpus=n.gpus)
            trees.toolkit(gpu)
        gpu.mkdir(parents=True, exist_ok=True)

    # ----- pillar
    def common_pillar(self) -> dict:
        plugin = {"path": str(PLUGIN_CHART)} if PLUGIN_CHART.exists() else None
        if plugin is None:
            plugin = {"path": str(REPO / "tests/fixtures/charts/gpu-plugin")}
        return {
            "host": {"manage": False},
            "firewall": {"enabled": False},
            "dora": {"textfile_dir": ""},
            "platform": {
                "releases": {
                    "hello": {
                        "namespace": "fleet",
                        "chart": {"path": str(APP_CHART)},
                        "values": {"greeting": "hello", "service": False},
                        "wait": False,
                    }
                }
            },
            "gpu": {
                "driver_managed": "external",
                "container_toolkit": False,
                "verify_timeout": 180,
                "device_plugin": {"chart": plugin},
            },
        }

    def node_pillar(self, n: Node) -> dict:
        k3s = {
            "version": self.version,
            "token": self.token,
            "role": n.role,
            "service_manager": "processes",
            "root": str(self.root(n.name)),
            "source": {"url": self.releases_url},
            "ready_timeout": 120,
            "config": {"node-name": n.name},
        }
        if n.role == "server" and n.cluster_init:
            k3s["cluster_init"] = True
        else:
            k3s["cluster_init"] = False
            k3s["server_url"] = self.server_url
        out = {"k3s": k3s, "gpu": {"root": str(self.gpu_root(n.name))}}
        return _merge(out, self.extra_pillar.get(n.name, {}))

    def write_pillar(self, common: dict | None = None) -> None:
        d = self.work / "pillar"
        (d / "nodes").mkdir(parents=True, exist_ok=True)
        (d / "palplat.sls").write_text(
            yaml.safe_dump({"palplat": common or self.common_pillar()}, sort_keys=False)
        )
        top = {}
        for n in self.nodes.values():
            (d / "nodes" / f"{n.name}.sls").write_text(
                yaml.safe_dump({"palplat": self.node_pillar(n)}, sort_keys=False)
            )
            top[n.name] = ["palplat", f"nodes.{n.name}"]
        (d / "top.sls").write_text(yaml.safe_dump({"base": top}))

    # ----- salt
    def _common_salt(self, root: Path) -> dict:
        from tests.support.saltenv import CHECKOUT_DIRS

        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        return {
            "root_dir": str(root),
            "log_file": str(root / "log" / "salt.log"),
            "log_level_logfile": "info",
            "publish_port": self._ports["publish"],
            "ret_port": self._ports["ret"],
            "user": user or "root",
            "enable_fqdns_grains": False,
            **CHECKOUT_DIRS,
        }

    def _salt_config(self) -> None:
        mroot = self.salt_dir / "master" / "root"
        master = dict(
            self._common_salt(mroot),
            interface="127.0.0.1",
            auto_accept=True,
            file_roots={"base": [str(REPO / "salt")]},
            pillar_roots={"base": [str(self.work / "pillar")]},
            state_output="changes",
            state_verbose=False,
            worker_threads=max(5, min(16, len(self.nodes) // 2)),
        )
        self.master_etc.mkdir(parents=True, exist_ok=True)
        (mroot / "log").mkdir(parents=True, exist_ok=True)
        (self.master_etc / "master").write_text(yaml.safe_dump(master))
        for mid in self.nodes:
            self._minion_config(mid)

    def _minion_config(self, mid: str) -> None:
        from tests.support.testenv import find_bin

        root = self.salt_dir / mid / "root"
        (root / "log").mkdir(parents=True, exist_ok=True)
        minion = dict(
            self._common_salt(root),
            id=mid,
            master="127.0.0.1",
            master_port=self._ports["ret"],
            palplat_plaintext_secrets=True,  # the fleet's pillar is plain YAML
            acceptance_wait_time=1,
            random_reauth_delay=0,
            grains_refresh_every=0,
        )
        helm = find_bin("helm")
        if helm:
            minion["palplat.helm_bin"] = str(helm)
        self.minion_etc(mid).mkdir(parents=True, exist_ok=True)
        (self.minion_etc(mid) / "minion").write_text(yaml.safe_dump(minion))

    def _pidfile(self, who: str) -> Path:
        daemon = "salt-master" if who == "master" else "salt-minion"
        return self.salt_dir / who / "root" / "var" / "run" / f"{daemon}.pid"

    def _start_master(self) -> None:
        if _pid(self._pidfile("master")) is None:
            subprocess.run([str(BIN / "salt-master"), "-c", str(self.master_etc), "-d"], check=True)

    def minion_alive(self, mid: str) -> bool:
        return _pid(self._pidfile(mid)) is not None

    def start_minion(self, mid: str, wait: bool = True) -> None:
        if self.minion_alive(mid):
            return
        env = dict(os.environ)
        if self.nodes[mid].gpus:
            # k3s finds nvidia-container-runtime on its service's PATH
            env["PATH"] = f"{self.gpu_root(mid) / 'usr/bin'}:{env.get('PATH', '')}"
        subprocess.run(
            [str(BIN / "salt-minion"), "-c", str(self.minion_etc(mid)), "-d"], check=True, env=env
        )
        if wait:
            self.wait_minions([mid])

    def stop_minion(self, mid: str) -> None:
        _kill(self._pidfile(mid))

    def wait_minions(self, mids: list[str], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        want = set(mids)
        while True:
            out = self.salt("*", "test.ping", timeout=10, check=False)
            got = {m for m, v in out.items() if v is True}
            if want <= got:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"minions did not answer within {timeout}s: {want - got}")
            time.sleep(1)

    def add_node(self, *nodes: Node) -> None:
        """New minions, in the pillar's top file, started together."""
        for node in nodes:
            self._check_socket_room(node.name)
            self.nodes[node.name] = node
            self._node_dirs(node)
            self._minion_config(node.name)
        self.write_pillar()
        for node in nodes:
            self.start_minion(node.name, wait=False)
        self.wait_minions([n.name for n in nodes])
        self._save_state()

    def forget_node(self, mid: str) -> None:
        """Stop the minion, its stand-in k3s, and drop it from the pillar and the master."""
        self.stop_k3s(mid)
        self.stop_minion(mid)
        self.nodes.pop(mid, None)
        self.write_pillar()
        self._cli("salt-key", "-d", mid, "-y", check=False)
        self._save_state()

    # ----- commands
    def _cli(self, prog: str, *args: str, timeout: float = 1800, check: bool = True, env=None):
        argv = [str(BIN / prog), "-c", str(self.master_etc), *args]
        cp = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
        if check and cp.returncode not in (0, 1, 2):
            raise RuntimeError(f"{prog} {' '.join(args)}: {cp.returncode}\n{cp.stderr[-3000:]}")
        return cp

    def salt(
        self, tgt: str, fun: str, *args: str, timeout: int = 120, check=True, tgt_type="glob", **kw
    ) -> dict:
        """``salt TGT FUN ARGS --out=json``: ``{minion: return}`` (``tgt_type="list"``:
        ``-L``, minion ids joined by commas)."""
        extra = [f"{k}={v}" for k, v in kw.items()]
        flags = ["-L"] if tgt_type == "list" else []
        cp = self._cli(
            "salt", *flags, tgt, fun, *args, *extra, "--out=json", "--static", f"-t{timeout}",
            timeout=timeout + 60, check=check,
        )  # fmt: skip
        try:
            return json.loads(cp.stdout or "{}")
        except json.JSONDecodeError:
            if check:
                out = cp.stdout[-2000:] + cp.stderr[-2000:]
                raise RuntimeError(f"salt {tgt} {fun}: {out}") from None
            return {}

    def run(self, *args: str, timeout: float = 1800):
        """``salt-run ARGS --out=json``: the completed process, with ``data`` parsed."""
        cp = self._cli("salt-run", *args, "--out=json", timeout=timeout, check=False)
        cp.data = _last_json(cp.stdout)
        return cp

    def orchestrate(self, *args: str, timeout: float = 1800):
        return self.run("state.orchestrate", "palplat.full", *args, timeout=timeout)

    def refresh_pillar(self) -> None:
        self.salt("*", "saltutil.refresh_pillar", "wait=True")

    # ----- API requests (the control plane's audit log, ``audit=True``)
    def audit_mark(self) -> int:
        try:
            return self.cp.audit_log.stat().st_size
        except (AttributeError, FileNotFoundError):
            return 0

    def requests_since(self, mark: int) -> dict[str, int]:
        """API requests since ``mark`` by who made them: ``palplat (<minion>)`` (palplat's
        client names its minion), ``helm``, ``nodes`` (the stand-in k3s), ``cluster`` (the
        controllers and the scheduler)."""
        out: dict[str, int] = {}
        try:
            with open(self.cp.audit_log, "rb") as fh:
                fh.seek(mark)
                lines = fh.read().splitlines()
        except (AttributeError, FileNotFoundError):
            return out
        for line in lines:
            try:
                ua = json.loads(line).get("userAgent") or ""
            except ValueError:
                continue
            if ua.startswith("palplat"):
                who = ua
            elif ua.lower().startswith("helm"):
                who = "helm"
            elif ua.startswith("k3s-standin"):
                who = "nodes"
            else:
                who = "cluster"
            out[who] = out.get(who, 0) + 1
        return out

    # ----- nodes
    def units(self, mid: str):
        from palplat import units

        return units.Processes(self.root(mid))

    def stop_k3s(self, mid: str) -> None:
        pm = self.units(mid)
        for unit in UNITS:
            pm.stop(unit)

    def events(self, mid: str) -> list[str]:
        unit = UNITS[0] if self.nodes[mid].role == "server" else UNITS[1]
        return self.units(mid).events(unit)

    def started_at(self, mid: str) -> list[float]:
        """When k3s (re)started on ``mid``, oldest first (the stand-in's unit events)."""
        unit = UNITS[0] if self.nodes[mid].role == "server" else UNITS[1]
        path = self.units(mid).state_dir / f"{unit}.events"
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [float(ln.split()[0]) for ln in lines if ln.endswith(" start")]

    def behave(self, mid: str, **changes) -> None:
        """Change what the stand-in k3s on ``mid`` does at its next start (``fake-k3s.json``:
        ``never_ready``, ``gpus``, ...; None removes a key)."""
        path = self.data_dir(mid) / "fake-k3s.json"
        beh = json.loads(path.read_text()) if path.exists() else {}
        beh.update(changes)
        path.write_text(json.dumps({k: v for k, v in beh.items() if v is not None}))

    def stop(self) -> None:
        """Stop every minion, the stand-ins, the master and the control plane."""
        _kill(*(self._pidfile(mid) for mid in self.nodes))
        from concurrent.futures import ThreadPoolExecutor

        from palplat import units

        def stop_k3s(d: Path) -> None:
            pm = units.Processes(d)
            for unit in UNITS:
                pm.stop(unit)

        roots = list((self.work / "nodes").glob("*/fs")) if (self.work / "nodes").is_dir() else []
        with ThreadPoolExecutor(max(1, len(roots))) as pool:
            list(pool.map(stop_k3s, roots))
        _kill(self._pidfile("master"))
        if self.cp is not None:
            self.cp.stop()


def _last_json(text: str):
    """The runner's return: the last JSON document of the output (progress events a
    runner fires are printed before it)."""
    text = text.strip()
    if not text:
        return None
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n" and text[i + 1 : i + 2] == "{"]
    for start in reversed(starts):
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            continue
    return None


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ------------------------------------------------------------------------------- CLI


def up(work: Path, spec: str) -> int:
    sys.path.insert(0, str(REPO / "_utils"))
    nodes = load_topology(Path(spec)) if Path(spec).is_file() else topology(spec)
    fleet = Fleet(work, nodes, detach=True).start()
    say(f"control plane {fleet.cp.server}; {len(fleet.servers)} server(s), "
        f"{len(fleet.agents)} agent(s)")  # fmt: skip
    t0 = time.monotonic()
    run = fleet.orchestrate()
    ok = run.returncode == 0
    say(f"palplat.full {'succeeded' if ok else 'FAILED'} in {time.monotonic() - t0:.1f}s")
    if not ok:
        print(run.stdout[-6000:])
        return 1
    plan = fleet.run("palplat.plan")
    say(f"plan after apply: exit {plan.returncode} (0: no change)")
    say(f"salt: {BIN}/salt -c {fleet.master_etc} '*' test.ping")
    say(f"      {BIN}/salt-run -c {fleet.master_etc} palplat.status")
    say(f"kubeconfig: {fleet.cp.kubeconfig}")
    return 0 if plan.returncode == 0 else 1


def down(work: Path) -> int:
    sys.path.insert(0, str(REPO / "_utils"))
    if not (Path(work) / "fleet.json").exists():
        say(f"no fleet in {work}")
        return 0
    Fleet.attach(work).stop()
    say("stopped the minions, their k3s stand-ins, the master and the control plane")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--nodes", default="3+3", help="S+A (servers+agents) or a topology YAML file")
    args = ap.parse_args(argv)
    return up(args.dir, args.nodes) if args.action == "up" else down(args.dir)


if __name__ == "__main__":
    sys.exit(main())
