"""What the services stage needs around it in tests, benchmarks and the sandbox: the
vendor CRDs on the control plane, Harbor, Woodpecker and Forgejo fakes that know the
example's repositories, and the example pillar pointed at them."""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.fakes import contract
from tests.support.fakes.harbor import HarborFake
from tests.support.fakes.woodpecker import WoodpeckerFake

REPO = contract.REPO
CRDS = REPO.parent / "shared" / "reference" / "crds"
# the CRDs the services stage creates objects of (Argo CD, Prometheus Operator, CNPG)
CRD_FILES = (
    "argoproj.io_application.yaml",
    "monitoring.coreos.com_servicemonitors.yaml",
    "monitoring.coreos.com_prometheusrules.yaml",
    "monitoring.coreos.com_probes.yaml",
    "postgresql.cnpg.io_clusters.yaml",
    "postgresql.cnpg.io_scheduledbackups.yaml",
)
HARBOR_PASSWORD = "harbor-admin-Secret-1"
WOODPECKER_TOKEN = "woodpecker-token-Secret-2"
ARGOCD_TOKEN = "argocd-forge-token-Secret-3"


def missing() -> str | None:
    """Why the vendor references cannot be used here (None: they can)."""
    absent = [f for f in CRD_FILES if not (CRDS / f).exists()]
    if absent:
        return f"vendor CRDs not found in {CRDS} ({', '.join(absent)})"
    ok, why = contract.available()
    return None if ok else why


def install_crds(k) -> None:
    """Server-side apply the vendor CRDs (owner test-crds) and wait until Established."""
    from palplat import kube

    docs = [yaml.safe_load((CRDS / f).read_text()) for f in CRD_FILES]
    kube.converge(k, docs, owner="test-crds", dry_run=False)


def start_fakes() -> tuple[HarborFake, WoodpeckerFake]:
    harbor = HarborFake(password=HARBOR_PASSWORD).start()
    wp = WoodpeckerFake(token=WOODPECKER_TOKEN).start()
    return harbor, wp


def example() -> dict:
    """The example pillar (init.sls merged with secrets.sls, placeholders filled with
    test values), the ``palplat`` mapping."""
    from tests.support import example as example_pillar

    return example_pillar.palplat()


def point_at(services: dict, harbor: HarborFake, wp: WoodpeckerFake) -> dict:
    """``palplat:services`` with Harbor and Woodpecker at the fakes (their credentials)."""
    out = copy.deepcopy(services)
    d = out.setdefault("defaults", {})
    # the fakes serve plain http on loopback: allow_http (documented for exactly that)
    d["harbor"] = {
        **(d.get("harbor") or {}),
        "url": harbor.url,
        "password": HARBOR_PASSWORD,
        "allow_http": True,
    }
    d["woodpecker"] = {
        **(d.get("woodpecker") or {}),
        "url": wp.url,
        "token": WOODPECKER_TOKEN,
        "allow_http": True,
    }
    # what the platform stage would make in Forgejo (palplat.platform.forge), given here
    d.setdefault("deployments_credentials", {"username": "argocd", "password": ARGOCD_TOKEN})
    for name, svc in out.items():
        if name != "defaults" and isinstance(svc, dict) and "repo" in svc:
            if not any(r["full_name"] == svc["repo"] for r in wp.forge_repos.values()):
                wp.add_forge_repo(svc["repo"])
    return out


def synthetic_services(n: int, start: int = 0) -> dict:
    """``n`` services shaped like the example's (funnel, database with backups, metrics,
    alerts, secrets), for benchmarks."""
    out = {}
    for i in range(start, start + n):
        name = f"svc-{i:03d}"
        svc: dict = {"repo": f"bench/{name}", "port": 8080}
        if i % 2 == 0:
            svc["funnel"] = True
            svc["metrics"] = {"path": "/metrics"}
        if i % 3 == 0:
            svc["database"] = {
                "instances": 1,
                "size": "1Gi",
                "backup": {"schedule": "0 0 3 * * *", "retention": "14d"},
            }
        if i % 4 == 0:
            svc["secrets"] = {"API_KEY": f"bench-secret-value-{i:03d}"}
            svc["alerts"] = [{"name": "Custom", "expr": "vector(0) > 1"}]
        out[name] = svc
    return out


# ------------------------------------------------------------------------- sandbox
# `make sandbox` (tests/support/sandbox.py) onboards the example services against these
# fakes. They run as a detached process (python -m tests.support.fakes.serve) that
# outlives `sandbox up`, as the control plane and the Salt daemons do, so that
# `salt-run palplat.plan` and `palplat.status` reach them later; `make sandbox-down`
# stops it. Their data is kept in DIR/service-fakes/ so that a restarted fake, and a
# second `make sandbox`, finds what the first made (a re-run changes nothing).

SANDBOX_SECRETS = {"harbor": "CHANGE-ME-harbor-admin", "woodpecker": "CHANGE-ME-woodpecker-token"}
SERVE_MODULE = "tests.support.fakes.serve"


def sandbox_value(fpr: str, placeholder: str) -> str:
    """The value sandbox.py encrypts for a CHANGE-ME placeholder of secrets.sls."""
    import hashlib

    return "sandbox-" + hashlib.sha256((fpr + placeholder).encode()).hexdigest()[:24]


def _say(msg: str) -> None:
    print(f"[sandbox] {msg}", flush=True)


class SandboxFakes:
    """Harbor and Woodpecker fakes for the sandbox, served by a detached process (or why
    there are none). Files in DIR/service-fakes: ``serve.json`` (pid, ports, what it was
    started with; the ports are kept across restarts, the pillar holds the URLs),
    ``serve.log``, ``violations.log`` (contract violations, appended as seen), and the
    fakes' data ``harbor.json``, ``woodpecker.json``."""

    def __init__(self, work: Path, kubeconfig: Path, fpr: str, crds: bool = True):
        """``crds=False``: the platform stage installs the vendor CRDs (the real charts)."""
        self.work = work
        self.dir = work / "service-fakes"
        self.fpr = fpr
        self.state = self.dir / "serve.json"
        self.log = self.dir / "serve.log"
        self.violations_log = self.dir / "violations.log"
        # what this run adds to the violations log is what violations() reports
        self._seen = self.violations_log.stat().st_size if self.violations_log.exists() else 0
        self.kubeconfig = kubeconfig
        self.harbor_url: str | None = None
        self.wp_url: str | None = None
        self.forgejo_url: str | None = None
        self.secrets: dict[str, str] = {}  # where the fakes read generated admin passwords
        self.why = missing()
        if self.why:
            return
        from palplat import kube

        k = kube.Kube(str(kubeconfig))
        try:  # the stand-in charts carry no CRDs: install the vendor's
            served = _served(k)
            if crds and not served:
                install_crds(k)
        finally:
            k.close()

    def point(self, pillar: dict) -> None:
        """Point ``pillar`` (the palplat mapping) at the fakes, started (or reused) with
        the forge knowing every service's repository. Without fakes, every service is left
        alone (enabled: false) and says why."""
        services = pillar.get("services") or {}
        if self.why:
            for name, svc in services.items():
                if name != "defaults":
                    svc["enabled"] = False
            # no Forgejo fake either: nothing is made in Forgejo
            (services.get("defaults") or {}).pop("forge", None)
            return
        repos = sorted(
            svc["repo"]
            for name, svc in services.items()
            if name != "defaults" and isinstance(svc, dict) and svc.get("repo")
        )
        self.secrets = generated_admins(pillar)
        self.ensure(repos)
        d = services.setdefault("defaults", {})
        d.setdefault("harbor", {}).update(url=self.harbor_url, allow_http=True)
        d.setdefault("woodpecker", {}).update(url=self.wp_url, allow_http=True)
        if isinstance(d.get("forge"), dict):
            # what palplat makes in Forgejo, it makes in the fake (its API address)
            d["forge"].update(api_url=self.forgejo_url, allow_http=True)

    def ensure(self, repos: list[str]) -> None:
        """The fakes' process, reused when it is alive with this key and knows ``repos``,
        else (re)started on the ports it had (its data is saved on SIGTERM and restored)."""
        info = _read(self.state)
        alive = _alive(info)
        names = ("harbor", "woodpecker", "forgejo")
        ports = tuple(info.get(f"{n}_port") for n in names)
        if (
            alive
            and info.get("fpr") == self.fpr
            and info.get("secrets", {}) == self.secrets
            and set(repos) <= set(info.get("repos", []))
            and all(p and _port_open(p) for p in ports)
        ):
            self._urls(*ports)
            _say(f"service fakes already serving (Harbor {self.harbor_url}, "
                 f"Woodpecker {self.wp_url}, pid {info['pid']})")  # fmt: skip
            return
        if alive:  # another key or new repositories: restart with the data kept
            _terminate(info)
        chosen: list[int] = []  # the ports it had, else stable ones (the pillar has them)
        for port, name in zip(ports, names, strict=True):
            ok = port and port not in chosen and _port_free(port)
            chosen.append(port if ok else _stable_port(self.work, name, avoid=chosen))
        ports = tuple(chosen)
        argv = [sys.executable, "-m", SERVE_MODULE, f"--work={self.work}", f"--fpr={self.fpr}",
                f"--harbor-port={ports[0]}", f"--woodpecker-port={ports[1]}",
                f"--forgejo-port={ports[2]}", f"--kubeconfig={self.kubeconfig}"]  # fmt: skip
        argv += [f"--{k}-secret={v}" for k, v in sorted(self.secrets.items())]
        argv += [f"--forge-repo={r}" for r in repos]
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        all_repos = sorted(set(repos) | set(info.get("repos", [])))
        self.state.write_text(
            json.dumps(
                {"pid": proc.pid, "harbor_port": ports[0], "woodpecker_port": ports[1],
                 "forgejo_port": ports[2], "fpr": self.fpr, "repos": all_repos,
                 "secrets": self.secrets}
            )
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not all(_port_open(p) for p in ports):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"[sandbox] the service fakes did not start; see {self.log}")
            time.sleep(0.2)
        self._urls(*ports)
        _say(f"service fakes serving (Harbor {self.harbor_url}, Woodpecker {self.wp_url}, "
             f"Forgejo {self.forgejo_url}, pid {proc.pid}; log {self.log})")  # fmt: skip

    def _urls(self, harbor_port: int, wp_port: int, forgejo_port: int) -> None:
        self.harbor_url = f"http://127.0.0.1:{harbor_port}"
        self.wp_url = f"http://127.0.0.1:{wp_port}"
        self.forgejo_url = f"http://127.0.0.1:{forgejo_port}"

    def violations(self) -> list[str]:
        """The contract violations the fakes saw since this object was made."""
        if not self.violations_log.exists():
            return []
        with self.violations_log.open("rb") as fh:
            fh.seek(self._seen)
            return [line for line in fh.read().decode().splitlines() if line.strip()]

    @staticmethod
    def stop(work: Path) -> bool:
        """Stop the fakes' process of the sandbox in ``work`` (it saves its data on
        SIGTERM); whether one was running."""
        info = _read(work / "service-fakes" / "serve.json")
        if not _alive(info):
            return False
        _terminate(info)
        return True


def generated_admins(pillar: dict) -> dict[str, str]:
    """Where the example's generated admin passwords are (what the charts read):
    ``{"harbor": "NS/NAME/KEY", "forgejo": "NS/NAME"}`` (only those it generates)."""
    releases = (pillar.get("platform") or {}).get("releases") or {}
    out = {}
    harbor = releases.get("harbor") or {}
    name = (harbor.get("values") or {}).get("existingSecretAdminPassword")
    if name and name in (harbor.get("generated") or {}):
        key = harbor["values"].get("existingSecretAdminPasswordKey", "HARBOR_ADMIN_PASSWORD")
        out["harbor"] = f"{harbor['namespace']}/{name}/{key}"
    forgejo = releases.get("forgejo") or {}
    admin = ((forgejo.get("values") or {}).get("gitea") or {}).get("admin") or {}
    name = admin.get("existingSecret")
    if name and name in (forgejo.get("generated") or {}):
        out["forgejo"] = f"{forgejo['namespace']}/{name}"
    return out


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _alive(info: dict) -> bool:
    try:
        pid = int(info["pid"])
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (KeyError, OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and SERVE_MODULE.encode() in cmdline


def _terminate(info: dict, timeout: float = 20) -> None:
    """SIGTERM, and wait until it has saved its data and exited."""
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(info) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(info):
        os.kill(pid, signal.SIGKILL)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _stable_port(work: Path, name: str, avoid=()) -> int:
    """A free port for fake ``name`` of the sandbox in ``work``: the same one each time it
    is free, and below the kernel's ephemeral range (32768 and up on Linux), which is
    where the outgoing connections' ports and every other `bind(0)` server's come from."""
    import hashlib

    seed = int(hashlib.sha256(f"{work.resolve()}:{name}".encode()).hexdigest(), 16)
    low, span = 20000, 12000
    for i in range(span):
        port = low + (seed + i) % span
        if port not in avoid and _port_free(port):
            return port
    raise SystemExit(f"[sandbox] no free port in {low}-{low + span - 1} for the {name} fake")


def _served(k) -> bool:
    from palplat import kube

    try:
        k.resource("argoproj.io/v1alpha1", "Application")
        k.resource("postgresql.cnpg.io/v1", "ScheduledBackup")
        k.resource("monitoring.coreos.com/v1", "Probe")
    except kube.UnknownKind:
        return False
    return True
