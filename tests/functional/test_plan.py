"""`salt-run palplat.plan` and `palplat.status` on a real master and minion, against the
test control plane (a Helm release from a local chart) and the firewall in a network
namespace: an unchanged pillar plans exit 0; one change to a release value or a firewall
rule shows exactly that and exits 2; an invalid pillar exits 1 with every error and
changes nothing; no secret in the Markdown, the JSON or the logs; status sees a release
broken on purpose; events per stage and item reach the master's bus."""

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

from palplat.gpgtool import encrypt, yaml_block
from tests.support.saltenv import (
    REPO,
    find_secrets,
    make_gpg_home,
    master_overrides,
    minion_overrides,
    read,
)

pytestmark = [
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


def base_pillar(netns: str, root: Path, kubeconfig: str) -> dict:
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
    }


@pytest.fixture(scope="module")
def netns():
    name = "pp-plan-" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def env(tmp_path_factory, netns, kubeconfig, helm_bin, salt_factories):
    home, fpr = make_gpg_home(tmp_path_factory.mktemp("gpg"))
    pillar_dir = tmp_path_factory.mktemp("pillar")
    root = tmp_path_factory.mktemp("fwroot")
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - palplat\n    - secrets\n")
    (pillar_dir / "secrets.sls").write_text(
        "#!yaml|gpg\npalplat:\n  platform:\n    releases:\n      greeter:\n"
        "        secret_values:\n" + yaml_block(encrypt(SECRET, fpr, home), "password", 10)
    )
    master = salt_factories.salt_master_daemon(
        "plan-master-" + uuid.uuid4().hex[:6],
        overrides=master_overrides(pillar_dir, Path(home)),
    )
    state = {"pillar": base_pillar(netns, root, kubeconfig), "dir": pillar_dir}

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
def applied(env):
    ret = env["minion"].salt_call_cli(timeout=600).run("state.apply", "palplat")
    assert ret.returncode == 0, ret.stdout
    # as palplat.full does at its end: keep the firewall change (commit-confirmed)
    assert env["minion"].salt_call_cli(timeout=120).run("palplat_nftables.confirm").returncode == 0
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
        p = base_pillar(p["firewall"]["netns"], Path(p["firewall"]["root"]), p["k3s"]["kubeconfig"])
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
    assert find_secrets([SECRET], json=text, human=human.stdout + human.stderr, logs=logs) == {}


def test_status_healthy_then_a_release_broken_on_purpose(applied, kube_api):
    ret = (
        applied["master"]
        .salt_run_cli(timeout=300)
        .run("palplat.status", f"tgt={applied['minion'].id}", "tgt_type=glob")
    )
    assert ret.returncode == 0, ret.stdout
    rels = {r["release"]: r for r in ret.data["status"]["releases"]}
    assert rels["greeter"]["status"] == "deployed" and rels["greeter"]["drift"] == "none"
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
