"""What the services stage needs around it in tests, benchmarks and the sandbox: the
vendor CRDs on the control plane, Harbor and Woodpecker fakes that know the example's
repositories, and the example pillar pointed at them."""

from __future__ import annotations

import copy
import json
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
    """The example pillar (init.sls merged with secrets.sls), the ``palplat`` mapping."""

    def merge(a, b):
        out = copy.deepcopy(a)
        for key, v in b.items():
            both = isinstance(v, dict) and isinstance(out.get(key), dict)
            out[key] = merge(out[key], v) if both else v
        return out

    base = yaml.safe_load((REPO / "pillar/palplat/init.sls").read_text())
    secrets = yaml.safe_load((REPO / "pillar/palplat/secrets.sls").read_text())
    return merge(base, secrets)["palplat"]


def point_at(services: dict, harbor: HarborFake, wp: WoodpeckerFake) -> dict:
    """``palplat:services`` with Harbor and Woodpecker at the fakes (their credentials)."""
    out = copy.deepcopy(services)
    d = out.setdefault("defaults", {})
    d["harbor"] = {**(d.get("harbor") or {}), "url": harbor.url, "password": HARBOR_PASSWORD}
    d["woodpecker"] = {**(d.get("woodpecker") or {}), "url": wp.url, "token": WOODPECKER_TOKEN}
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
# fakes; their data is kept in DIR/service-fakes/ so that a second `make sandbox` finds
# what the first made (a re-run changes nothing).

SANDBOX_SECRETS = {"harbor": "CHANGE-ME-harbor-admin", "woodpecker": "CHANGE-ME-woodpecker-token"}


def sandbox_value(fpr: str, placeholder: str) -> str:
    """The value sandbox.py encrypts for a CHANGE-ME placeholder of secrets.sls."""
    import hashlib

    return "sandbox-" + hashlib.sha256((fpr + placeholder).encode()).hexdigest()[:24]


class SandboxFakes:
    """Harbor and Woodpecker fakes for the sandbox (or why there are none)."""

    def __init__(self, work: Path, kubeconfig: Path, fpr: str, crds: bool = True):
        """``crds=False``: the platform stage installs the vendor CRDs (the real charts)."""
        self.dir = work / "service-fakes"
        self.why = missing()
        self.harbor: HarborFake | None = None
        self.wp: WoodpeckerFake | None = None
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
        self.harbor = HarborFake(password=sandbox_value(fpr, SANDBOX_SECRETS["harbor"]))
        self.wp = WoodpeckerFake(token=sandbox_value(fpr, SANDBOX_SECRETS["woodpecker"]))
        for fake, name in ((self.harbor, "harbor"), (self.wp, "woodpecker")):
            saved = self.dir / f"{name}.json"
            if saved.exists():
                fake.restore(json.loads(saved.read_text()))
            fake.start()

    def point(self, pillar: dict) -> None:
        """Point ``pillar`` (the palplat mapping) at the fakes; the forge knows its repos.
        Without fakes, every service is left alone (enabled: false) and says why."""
        services = pillar.get("services") or {}
        if self.harbor is None or self.wp is None:
            for name, svc in services.items():
                if name != "defaults":
                    svc["enabled"] = False
            return
        d = services.setdefault("defaults", {})
        d.setdefault("harbor", {})["url"] = self.harbor.url
        d.setdefault("woodpecker", {})["url"] = self.wp.url
        known = {r["full_name"] for r in self.wp.forge_repos.values()}
        for name, svc in services.items():
            if name != "defaults" and svc.get("repo") and svc["repo"] not in known:
                self.wp.add_forge_repo(svc["repo"])

    def stop(self) -> list[str]:
        """Stop the fakes, keep their data; the contract violations they saw."""
        out: list[str] = []
        self.dir.mkdir(parents=True, exist_ok=True)
        for fake, name in ((self.harbor, "harbor"), (self.wp, "woodpecker")):
            if fake is not None:
                fake.stop()
                (self.dir / f"{name}.json").write_text(json.dumps(fake.dump(), indent=1))
                out += fake.violations
        return out


def _served(k) -> bool:
    from palplat import kube

    try:
        k.resource("argoproj.io/v1alpha1", "Application")
        k.resource("postgresql.cnpg.io/v1", "ScheduledBackup")
        k.resource("monitoring.coreos.com/v1", "Probe")
    except kube.UnknownKind:
        return False
    return True
