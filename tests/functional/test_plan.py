"""`salt-run palplat.plan` and `palplat.status` on a real master and minion, against the
test control plane (a Helm release from a local chart) and the firewall in a network
namespace, with one onboarded service (Harbor and Woodpecker contract fakes, the vendor
CRDs): an unchanged pillar plans exit 0; one change to a release value, a firewall rule or
a service shows exactly that and exits 2; an invalid pillar exits 1 with every error and
changes nothing; no secret in the Markdown, the JSON or the logs; status sees a release
broken on purpose and a service whose objects were deleted; events per stage and item
reach the master's bus. (The k3s config key and the agent minion: test_k3s_runner_salt.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import kubernetes
import pytest
import yaml

from palplat import kube
from palplat.gpgtool import encrypt, yaml_block
from palplat.services import inventory, resolve
from tests.support.fakes import platform as fakes_platform
from tests.support.saltenv import (
    REPO,
    find_secrets,
    make_gpg_home,
    master_overrides,
    minion_overrides,
    read,
)

why_no_fakes = fakes_platform.missing()
pytestmark = [
    pytest.mark.skipif(why_no_fakes is not None, reason=f"{why_no_fakes} (../shared/reference)"),
    pytest.mark.salt,
    pytest.mark.slow,
    pytest.mark.controlplane,
    pytest.mark.netns,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
        reason="needs root, nft and ip (apt-get install -y nftables iproute2)",
    ),
]

CHART = REPO / "tests" / "fixtures" / "charts" / "cm"
SECRET = "plan-release-pw-" + uuid.uuid4().hex
NS = "plan-" + uuid.uuid4().hex[:6]
SVC = "plan-shop-" + uuid.uuid4().hex[:6]
TAILNET = "tail0000.ts.net"  # the example's services:defaults:tailnet_domain
DEPLOY_PW = "plan-deploy-pw-" + uuid.uuid4().hex
KNOWN_SECRETS = [SECRET, DEPLOY_PW, fakes_platform.HARBOR_PASSWORD, fakes_platform.WOODPECKER_TOKEN]


def services_pillar(fakes) -> dict:
    """One service with every part: registry, CI, delivery, funnel, metrics, database."""
    defaults = dict(fakes_platform.example()["services"]["defaults"])
    defaults.pop("forge", None)  # this platform has no Forgejo release
    defaults["deployments_credentials"] = {"username": "argocd", "password": DEPLOY_PW}
    # this platform's one release stands in for Argo CD, monitoring, Tailscale and
    # CloudNativePG (the services stage needs them enabled; it uses their namespaces)
    defaults["releases"] = dict.fromkeys(("argocd", "monitoring", "tailscale", "cnpg"), "greeter")
    defaults["monitoring"] = {"prober": "blackbox.monitoring.svc:9115"}
    svc = {
        "repo": f"plan/{SVC}",
        "port": 8080,
        "funnel": True,
        "metrics": {"path": "/metrics"},
        "database": {"instances": 1, "size": "1Gi"},
    }
    return fakes_platform.point_at({"defaults": defaults, SVC: svc}, *fakes)


def base_pillar(netns: str, root: Path, kubeconfig: str, services: dict | None = None) -> dict:
    return {
        "host": {"manage": False},
        "firewall": {
            "netns": netns,
            "root": str(root),
            "persist": False,
            "management": {"ssh_port": 22, "allow_from": ["10.0.0.0/8"]},
            "allow": [{"name": "web", "proto": "tcp", "ports": [80, 443]}],
        },
        "k3s": {"mode": "external", "kubeconfig": kubeconfig},
        "gpu": {"enabled": False},
        "platform": {
            "releases": {
                "greeter": {
                    "namespace": NS,
                    "chart": {"path": str(CHART)},
                    "wait": False,
                    "values": {"greeting": "hello", "service": False},
                }
            }
        },
        **({"services": services} if services else {}),
    }


@pytest.fixture(scope="module")
def netns():
    name = "pp-plan-" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def fakes(kubeconfig):
    """Harbor and Woodpecker contract fakes and the vendor CRDs (the platform's charts
    would install them); afterwards the service's objects are removed (the
    control plane is shared: another test's services stage would see them as orphans) and
    every request the fakes saw must have kept the vendor's contract."""
    k = kube.Kube(kubeconfig)
    fakes_platform.install_crds(k)
    harbor, wp = fakes_platform.start_fakes()
    try:
        yield harbor, wp
    finally:
        harbor.stop()
        wp.stop()
        for obj in inventory.take(k).objects(resolve.owner_of(SVC)):
            ref = kube.ref_of(obj)
            try:
                k.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
            except kube.KubeError:
                pass
        k.close()
    assert harbor.violations + wp.violations == []


def as_controllers_would(kube_api, ready=True):
    """What Argo CD, the Tailscale operator and CloudNativePG write into the status of
    the service's objects (none of them runs against the test control plane)."""
    co = kubernetes.client.CustomObjectsApi(kube_api)
    health = "Healthy" if ready else "Progressing"
    co.patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", NS, "applications", SVC,
        {"status": {"sync": {"status": "Synced"}, "health": {"status": health}}},
    )  # fmt: skip
    co.patch_namespaced_custom_object_status(
        "postgresql.cnpg.io", "v1", SVC, "clusters", f"{SVC}-db",
        {"status": {"instances": 1, "readyInstances": 1 if ready else 0}},
    )  # fmt: skip
    kubernetes.client.NetworkingV1Api(kube_api).patch_namespaced_ingress_status(
        SVC,
        SVC,
        {"status": {"loadBalancer": {"ingress": [{"hostname": f"{SVC}.tail0000.ts.net"}]}}},
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory, netns, kubeconfig, helm_bin, salt_factories, fakes):
    home, fpr = make_gpg_home(tmp_path_factory.mktemp("gpg"))
    pillar_dir = tmp_path_factory.mktemp("pillar")
    root = tmp_path_factory.mktemp("fwroot")
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - palplat\n    - secrets\n")
    (pillar_dir / "secrets.sls").write_text(
        "#!yaml|palplat\npalplat:\n  platform:\n    releases:\n      greeter:\n"
        "        secret_values:\n" + yaml_block(encrypt(SECRET, fpr, home), "password", 10)
    )
    master = salt_factories.salt_master_daemon(
        "plan-master-" + uuid.uuid4().hex[:6],
        overrides=master_overrides(pillar_dir, Path(home)),
    )
    state = {
        "pillar": base_pillar(netns, root, kubeconfig, services_pillar(fakes)),
        "dir": pillar_dir,
    }

    def write(p=None):
        state["pillar"] = p or state["pillar"]
        (pillar_dir / "palplat.sls").write_text(yaml.safe_dump({"palplat": state["pillar"]}))

    write()
    with master.started(start_timeout=120):
        minion = master.salt_minion_daemon(
            "plan-minion-" + uuid.uuid4().hex[:6],
            overrides=minion_overrides(**{"palplat.helm_bin": helm_bin}),
        )
        with minion.started(start_timeout=120):
            assert minion.salt_call_cli(timeout=300).run("saltutil.sync_all").returncode == 0
            assert master.salt_run_cli(timeout=120).run("saltutil.sync_all").returncode == 0
            yield {"master": master, "minion": minion, "write": write, "state": state}


def refresh(env, pillar):
    env["write"](pillar)
    assert env["minion"].salt_call_cli(timeout=120).run("saltutil.refresh_pillar", "wait=True")


def plan(env):
    ret = env["master"].salt_run_cli(timeout=600).run("palplat.plan", f"tgt={env['minion'].id}",
                                                       "tgt_type=glob")  # fmt: skip
    return ret, ret.data


def items(data):
    return {
        (i["stage"], i["item"]): i for i in data["report"]["items"] if any(i["counts"].values())
    }


@pytest.fixture(scope="module")
def applied(env, kube_api):
    ret = env["minion"].salt_call_cli(timeout=600).run("state.apply", "palplat")
    assert ret.returncode == 0, ret.stdout
    # as palplat.full does at its end: keep the firewall change (commit-confirmed)
    assert env["minion"].salt_call_cli(timeout=120).run("palplat_nftables.confirm").returncode == 0
    as_controllers_would(kube_api)
    return env


def test_unchanged_pillar_plans_exit_0(applied):
    ret, data = plan(applied)
    assert ret.returncode == 0, ret.stdout
    assert data["retcode"] == 0 and data["report"]["summary"] == {
        "add": 0,
        "change": 0,
        "remove": 0,
        "orphaned": 0,
    }
    assert "palplat plan: no changes" in data["markdown"]


def test_one_release_value_change_shows_that_field(applied):
    p = json.loads(json.dumps(applied["state"]["pillar"]))
    p["platform"]["releases"]["greeter"]["values"]["greeting"] = "bonjour"
    refresh(applied, p)
    try:
        ret, data = plan(applied)
        assert ret.returncode == 2, ret.stdout
        changed = items(data)
        assert set(changed) == {("platform", "palplat-platform-releases")}
        item = changed[("platform", "palplat-platform-releases")]
        assert item["kinds"] == {"change": ["greeter"]}
        objects = item["changes"]["greeter"]["objects"]
        assert list(objects) == [f"ConfigMap/{NS}/greeter-config"]
        assert objects[f"ConfigMap/{NS}/greeter-config"] == {
            "data.greeting": {"old": "hello", "new": "bonjour"}
        }
        md = data["markdown"]
        assert "| platform | palplat-platform-releases |" in md and "bonjour" in md
        assert 'greeter["greeter (changed)"]' in md
    finally:
        p["platform"]["releases"]["greeter"]["values"]["greeting"] = "hello"
        refresh(applied, p)


def test_one_firewall_rule_change_shows_that_rule_and_fires_drift(applied, event_listener):
    p = json.loads(json.dumps(applied["state"]["pillar"]))
    p["firewall"]["allow"].append({"name": "metrics", "proto": "tcp", "ports": [9100]})
    refresh(applied, p)
    try:
        ret, data = plan(applied)
        assert ret.returncode == 2, ret.stdout
        changed = items(data)
        assert len(changed) == 1, changed
        (item,) = changed.values()
        assert item["stage"] == "firewall" and item["kinds"] == {"add": ["rules:metrics"]}
        start = time.time()
        ret = (
            applied["master"]
            .salt_run_cli(timeout=600)
            .run("palplat.drift", f"tgt={applied['minion'].id}", "tgt_type=glob")
        )
        assert ret.returncode == 2, ret.stdout
        matched = event_listener.wait_for_events(
            [(applied["master"].id, "palplat/drift")], timeout=60, after_time=start
        )
        assert matched.found_all_events, "palplat/drift did not reach the master's bus"
        assert next(iter(matched)).data["summary"]["add"] == 1
    finally:
        p["firewall"]["allow"].pop()
        refresh(applied, p)


def test_one_service_change_shows_that_service(applied):
    p = json.loads(json.dumps(applied["state"]["pillar"]))
    p["services"][SVC]["port"] = 8081
    refresh(applied, p)
    try:
        ret, data = plan(applied)
        assert ret.returncode == 2, ret.stdout
        changed = items(data)
        assert set(changed) == {("service", "palplat-services")}, changed
        item = changed[("service", "palplat-services")]
        assert item["kinds"] == {"change": [SVC]}
        objects = item["changes"][SVC]
        assert f"Ingress/{SVC}/{SVC}" in objects, objects
        assert "8081" in json.dumps(objects)
        assert "| service | palplat-services |" in data["markdown"]
    finally:
        p["services"][SVC]["port"] = 8080
        refresh(applied, p)


def test_invalid_pillar_exits_1_with_every_error_and_changes_nothing(applied):
    p = json.loads(json.dumps(applied["state"]["pillar"]))
    p["k3s"]["rol"] = "server"
    p["firewall"]["allow"][0]["proto"] = "tcpp"
    p["platform"]["releases"]["greeter"]["values"]["greeting"] = "changed-but-invalid"
    refresh(applied, p)
    try:
        ret, data = plan(applied)
        assert ret.returncode == 1, ret.stdout
        errors = "\n".join(data["report"]["errors"])
        assert "palplat:k3s:rol" in errors and "palplat:firewall:allow:0:proto" in errors
        assert "### Errors" in data["markdown"]
        assert data["report"]["items"] == []
    finally:
        p = base_pillar(
            p["firewall"]["netns"],
            Path(p["firewall"]["root"]),
            p["k3s"]["kubeconfig"],
            p["services"],
        )
        refresh(applied, p)
    ret, data = plan(applied)
    assert ret.returncode == 0, ret.stdout


def test_no_secret_in_markdown_json_or_logs(applied, tmp_path):
    ret, data = plan(applied)
    text = ret.stdout + json.dumps(data)
    human = subprocess.run(
        [str(REPO / ".venv/bin/salt-run"), "-c", str(applied["master"].config_dir),
         "palplat.plan", f"tgt={applied['minion'].id}", "tgt_type=glob",
         f"path={tmp_path / 'plan.md'}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert human.returncode == 0, human.stdout + human.stderr
    assert human.stdout.lstrip().startswith("<!-- palplat-plan -->")
    assert (tmp_path / "plan.md").read_text().strip() == human.stdout.strip()
    logs = read(Path(applied["master"].config["log_file"])) + read(
        Path(applied["minion"].config["log_file"])
    )
    found = find_secrets(KNOWN_SECRETS, json=text, human=human.stdout + human.stderr, logs=logs)
    assert found == {}


def test_status_healthy_then_a_release_broken_on_purpose(applied, kube_api):
    ret = (
        applied["master"]
        .salt_run_cli(timeout=300)
        .run("palplat.status", f"tgt={applied['minion'].id}", "tgt_type=glob")
    )
    assert ret.returncode == 0, ret.stdout
    rels = {r["release"]: r for r in ret.data["status"]["releases"]}
    assert rels["greeter"]["status"] == "deployed" and rels["greeter"]["drift"] == "none"
    (svc,) = ret.data["status"]["services"]
    assert svc == {
        "service": SVC,
        "state": "converged",
        "app": "Synced/Healthy",
        "url": f"https://{SVC}.{TAILNET}",
        "database": "1/1 ready",
        "healthy": True,
        "minion": applied["minion"].id,
    }, svc
    kubernetes.client.CoreV1Api(kube_api).delete_namespaced_config_map("greeter-config", NS)
    ret = (
        applied["master"]
        .salt_run_cli(timeout=300)
        .run("palplat.status", f"tgt={applied['minion'].id}", "tgt_type=glob")
    )
    assert ret.returncode == 2, ret.stdout
    assert ret.data["status"]["state"] == "degraded"
    assert any("greeter" in d for d in ret.data["status"]["degraded"])
    ret = applied["minion"].salt_call_cli(timeout=600).run("state.apply", "palplat.platform")
    assert ret.returncode == 0


def test_status_sees_a_service_whose_objects_were_deleted(applied, kube_api):
    co = kubernetes.client.CustomObjectsApi(kube_api)
    co.delete_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "applications", SVC)
    kubernetes.client.NetworkingV1Api(kube_api).delete_namespaced_ingress(SVC, SVC)
    status = applied["master"].salt_run_cli(timeout=300)
    ret = status.run("palplat.status", f"tgt={applied['minion'].id}", "tgt_type=glob")
    assert ret.returncode == 2, ret.stdout
    (svc,) = ret.data["status"]["services"]
    assert svc["healthy"] is False and svc["app"] == "missing", svc
    assert svc["state"] == "2 pending change(s)", svc
    assert any(SVC in d and "no Argo CD Application" in d for d in ret.data["status"]["degraded"])
    ret = applied["minion"].salt_call_cli(timeout=600).run("state.apply", "palplat.service")
    assert ret.returncode == 0, ret.stdout
    as_controllers_would(kube_api)
    ret = status.run("palplat.status", f"tgt={applied['minion'].id}", "tgt_type=glob")
    assert ret.returncode == 0, ret.stdout


def test_item_events_on_the_master_bus(applied, event_listener):
    start = time.time()
    ret = applied["minion"].salt_call_cli(timeout=600).run("state.apply", "palplat.firewall")
    assert ret.returncode == 0
    matched = event_listener.wait_for_events(
        [(applied["master"].id, "palplat/firewall/palplat-firewall-valid/unchanged")],
        timeout=60,
        after_time=start,
    )
    assert matched.found_all_events, "no palplat/<stage>/<item>/<result> event on the master"
