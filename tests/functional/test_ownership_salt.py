"""palplat deletes only what it created, on a real master and minion against the test
control plane (vendor CRDs installed) and the Harbor and Woodpecker contract fakes.

- (after the platform test: its stand-in release serves the services' namespaces)
  A service whose namespace and Harbor project existed before palplat (made by hand):
  onboarding adopts them and records it; ``absent`` with ``delete_data`` then deletes
  palplat's own objects but refuses the namespace and the project with an error saying
  why; a service palplat created is deleted whole.
- A platform release key renamed (``minio`` -> ``store``): the old key's Secrets and its
  database backup are reported as orphaned and left alone (nothing pruned); once the old
  key is back with ``enabled: false`` they are pruned and its release uninstalled.
"""

from __future__ import annotations

import copy
import json
import shutil
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from palplat import kube
from palplat.platform.objects import RELEASE_LABEL
from palplat.services import inventory, origin, resolve
from tests.support.fakes import platform as fakes_platform
from tests.support.saltenv import REPO, master_overrides, minion_overrides

why_no_fakes = fakes_platform.missing()
pytestmark = [
    pytest.mark.skipif(why_no_fakes is not None, reason=f"{why_no_fakes} (../shared/reference)"),
    pytest.mark.salt,
    pytest.mark.slow,
    pytest.mark.controlplane,
]

CHART = REPO / "tests" / "fixtures" / "charts" / "cm"
TAG = uuid.uuid4().hex[:6]
ADOPTED, MADE = f"own-hand-{TAG}", f"own-made-{TAG}"
REL_NS = f"own-rel-{TAG}"
BACKUP_KEY = "backup-secret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def fakes(kubeconfig):
    k = kube.Kube(kubeconfig)
    fakes_platform.install_crds(k)
    harbor, wp = fakes_platform.start_fakes()
    try:
        yield harbor, wp
    finally:
        harbor.stop()
        wp.stop()
        for name in (ADOPTED, MADE):  # the control plane is shared with other modules
            for obj in inventory.take(k).objects(resolve.owner_of(name)):
                ref = kube.ref_of(obj)
                try:
                    k.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
                except kube.KubeError:
                    pass
        k.close()
    assert harbor.violations + wp.violations == []


@pytest.fixture(scope="module")
def charts(tmp_path_factory) -> Path:
    """The stand-in chart, also as a chart named like CloudNativePG's (its release is what
    a release with ``database`` needs)."""
    d = tmp_path_factory.mktemp("charts")
    shutil.copytree(CHART, d / "cloudnative-pg")
    return d


def base(kubeconfig: str, fakes, charts: Path, services: dict | None = None) -> dict:
    defaults = dict(fakes_platform.example()["services"]["defaults"])
    defaults.pop("forge", None)  # no Forgejo here: the deployments repository's own credentials
    defaults["releases"] = dict.fromkeys(("argocd", "monitoring", "tailscale", "cnpg"), "cnpg")
    defaults["monitoring"] = {"prober": "blackbox.monitoring.svc:9115"}
    defaults["object_store"] = {
        "endpoint": "http://minio.minio.svc:9000",
        "bucket": "cnpg-backups",
        "release": "cnpg",
        "access_key": "cnpg-backup",
        "secret_key": BACKUP_KEY,
    }
    stand_in = {"wait": False, "values": {"service": False}}
    return {
        "host": {"manage": False},
        "firewall": {"enabled": False},
        "k3s": {"mode": "external", "kubeconfig": kubeconfig},
        "gpu": {"enabled": False},
        "platform": {
            "releases": {
                "cnpg": {
                    "namespace": f"{REL_NS}-cnpg",
                    "chart": {"path": str(charts / "cloudnative-pg")},
                    **stand_in,
                },
                "minio": {
                    "namespace": REL_NS,
                    "chart": {"path": str(CHART)},
                    "needs": ["cnpg"],
                    "secrets": {"minio-backup-user": {"secretKey": "s3cr3t-" + TAG}},
                    "database": {
                        "instances": 1,
                        "size": "1Gi",
                        "backup": {"schedule": "0 0 3 * * *", "retention": "7d"},
                    },
                    **stand_in,
                },
            }
        },
        "services": fakes_platform.point_at({"defaults": defaults, **(services or {})}, *fakes),
    }


@pytest.fixture(scope="module")
def releases_removed(kubeconfig, helm_bin):
    """The control plane is shared with other modules: their platform stage would report
    this module's releases as orphaned. Uninstall them and delete their namespaces."""
    yield
    import subprocess

    for ns in (REL_NS, f"{REL_NS}-cnpg"):
        listed = subprocess.run(
            [helm_bin, "list", "-q", "-n", ns, "--kubeconfig", kubeconfig],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        for name in listed.stdout.split():
            subprocess.run(
                [helm_bin, "uninstall", name, "-n", ns, "--kubeconfig", kubeconfig],
                capture_output=True, check=False,
            )  # fmt: skip
        k = kube.Kube(kubeconfig)
        try:
            k.delete("v1", "Namespace", ns)
        except kube.KubeError:
            pass
        finally:
            k.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory, salt_factories, kubeconfig, helm_bin, fakes, charts, releases_removed):
    pillar_dir = tmp_path_factory.mktemp("pillar")
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - palplat\n")
    state = {}

    def write(p):
        state["pillar"] = p
        (pillar_dir / "palplat.sls").write_text(yaml.safe_dump({"palplat": p}))

    write(base(kubeconfig, fakes, charts))
    master = salt_factories.salt_master_daemon(
        "own-master-" + uuid.uuid4().hex[:6], overrides=master_overrides(pillar_dir)
    )
    with master.started(start_timeout=120):
        minion = master.salt_minion_daemon(
            "own-minion-" + uuid.uuid4().hex[:6],
            overrides=minion_overrides(**{"palplat.helm_bin": helm_bin}),
        )
        with minion.started(start_timeout=120):
            assert minion.salt_call_cli(timeout=300).run("saltutil.sync_all").returncode == 0
            k = kube.Kube(kubeconfig)
            try:
                yield {"minion": minion, "write": write, "state": state, "kube": k}
            finally:
                k.close()


def apply(env, p, sls: str) -> dict:
    env["write"](p)
    cli = env["minion"].salt_call_cli(timeout=900)
    assert cli.run("saltutil.refresh_pillar", "wait=True").returncode == 0
    ret = cli.run("state.apply", sls)
    assert isinstance(ret.data, dict), ret.stdout
    mod = {"palplat.platform": "palplat_platform_|-", "palplat.service": "palplat_service_|-"}
    return next(v for k, v in ret.data.items() if k.startswith(mod[sls]))


def test_a_renamed_release_key_prunes_nothing_until_enabled_false(env, fakes, kubeconfig, charts):
    k = env["kube"]
    p = base(kubeconfig, fakes, charts)
    ret = apply(env, p, "palplat.platform")
    assert ret["result"] is True, ret["comment"]
    cnpg = "postgresql.cnpg.io/v1"
    objs = {
        ("v1", "Secret", "minio-backup-user"),
        ("v1", "Secret", "palplat-backup-store"),
        (cnpg, "ScheduledBackup", "minio-db"),
        (cnpg, "Cluster", "minio-db"),
    }
    for api, kind, name in objs:
        obj = k.get(api, kind, name, REL_NS)
        assert obj is not None, (kind, name)
        assert obj["metadata"]["labels"][RELEASE_LABEL] == "minio"

    # the key renamed (a typo, or on purpose): nothing of the old key is pruned
    renamed = copy.deepcopy(p)
    rel = renamed["platform"]["releases"].pop("minio")
    renamed["platform"]["releases"]["store"] = {
        k_: v for k_, v in rel.items() if k_ not in ("secrets", "database")
    }
    ret = apply(env, renamed, "palplat.platform")
    assert ret["result"] is True, ret["comment"]
    for api, kind, name in objs:
        assert k.get(api, kind, name, REL_NS) is not None, f"{kind}/{name} was pruned"
    assert "orphaned: release key 'minio'" in ret["comment"], ret["comment"]
    assert "ScheduledBackup/" in ret["comment"] and "helm release" in ret["comment"]
    assert not any("minio-backup-user" in key for key in json.dumps(ret["changes"]).split('"'))
    again = apply(env, renamed, "palplat.platform")
    assert again["changes"] == {} and "orphaned: release key 'minio'" in again["comment"]

    # the old key back with enabled: false: its Secrets and backup go, the Cluster stays
    off = copy.deepcopy(renamed)
    off["platform"]["releases"]["minio"] = {**rel, "enabled": False}
    ret = apply(env, off, "palplat.platform")
    assert ret["result"] is True, ret["comment"]
    assert k.get("v1", "Secret", "minio-backup-user", REL_NS) is None
    assert k.get(cnpg, "ScheduledBackup", "minio-db", REL_NS) is None
    assert k.get(cnpg, "Cluster", "minio-db", REL_NS) is not None  # data: never pruned
    assert "orphaned: release key 'minio'" not in ret["comment"]


def test_adopted_namespace_and_project_survive_delete_data(env, fakes, kubeconfig, charts):
    harbor, _ = fakes
    k = env["kube"]
    # made by hand before palplat: a namespace with a workload's data, a Harbor project
    hand = kube.Kube(kubeconfig, field_manager="kubectl-create")
    hand.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ADOPTED}})
    hand.apply(
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "precious", "namespace": ADOPTED}, "data": {"k": "v"}},
    )  # fmt: skip
    hand.close()
    r = requests.post(
        f"{harbor.url}/api/v2.0/projects",
        json={"project_name": ADOPTED, "metadata": {"public": "false"}},
        auth=("admin", fakes_platform.HARBOR_PASSWORD),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    harbor.add_repository(ADOPTED, "web")
    services = {
        ADOPTED: {"repo": f"own/{ADOPTED}", "port": 80},
        MADE: {"repo": f"own/{MADE}", "port": 80},
    }
    p = base(kubeconfig, fakes, charts, services)
    ret = apply(env, p, "palplat.service")
    assert ret["result"] is True, ret["comment"]
    ns = k.get("v1", "Namespace", ADOPTED)
    notes = ns["metadata"]["annotations"]
    assert notes[origin.ORIGIN] == "adopted" and notes[origin.PROJECT_ORIGIN] == "adopted"
    made = k.get("v1", "Namespace", MADE)["metadata"]["annotations"]
    assert made[origin.ORIGIN] == "created" and made[origin.PROJECT_ORIGIN] == "created"
    assert apply(env, p, "palplat.service")["changes"] == {}  # the record is stable

    off = copy.deepcopy(p)
    for name in (ADOPTED, MADE):
        off["services"][name].update(absent=True, delete_data=True)
    ret = apply(env, off, "palplat.service")
    assert ret["result"] is False
    text = ret["comment"]
    assert f"delete_data refused for Namespace/{ADOPTED}" in text, text
    assert f"delete_data refused for Harbor project {ADOPTED}" in text, text
    # what palplat made for the adopted service is gone; the namespace and project stay
    live = k.get("v1", "Namespace", ADOPTED)
    assert live is not None and not live["metadata"].get("deletionTimestamp")
    assert k.get("v1", "ConfigMap", "precious", ADOPTED) is not None
    assert k.get("v1", "ResourceQuota", "palplat-quota", ADOPTED) is None
    assert ADOPTED in harbor.projects and harbor.repositories[ADOPTED]
    # the service palplat created is deleted whole
    gone = k.get("v1", "Namespace", MADE)
    assert gone is None or gone["metadata"].get("deletionTimestamp")
    assert MADE not in harbor.projects
    changed = json.dumps(ret["changes"])
    assert f"Namespace/{MADE}" in changed and f'Namespace/{ADOPTED}"' not in changed
