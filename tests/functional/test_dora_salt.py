"""DORA from real runs: `salt-run state.orchestrate palplat.full` on a real master and
minion against the test control plane (a Helm release from a local chart, the firewall in
a network namespace), each run given its pillar revision and commits as CI gives them.

Seven runs: the first (recorded, not measured); a change; a failed helm upgrade (rolled
back); its fix; a drift repair (same revision: not a deployment); a firewall change rolled
back by its commit-confirmed timer (the orchestration paused before the confirmation,
with ``salt-run state.pause``); that change again, confirmed. Two ``palplat_dora.record``
jobs race on the ledger. Then ``salt-run palplat.dora``, the metrics file a real
node_exporter serves and the recording rules a real Prometheus evaluates all show the
keys computed here by hand from the commit times and the recorded apply times."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

import kubernetes
import pytest
import yaml

from palplat.dora import bands, rules
from tests.support import prom
from tests.support.netpair import CLIENT_IP, CLIENT_IP6, SSH, Pair
from tests.support.saltenv import REPO, master_overrides, minion_overrides

why_prom = prom.missing()
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
NS = "dora-" + uuid.uuid4().hex[:6]
START = time.time()
# the pillar repository's commits: (sha, commit time), c1 oldest
COMMITS = [(f"{i:x}" * 40, START - (7 - i) * 3600) for i in range(1, 7)]


OPERATOR = [f"{CLIENT_IP}/32", f"{CLIENT_IP6}/128"]


def pillar(pair, root, kubeconfig, textfiles, **release_values) -> dict:
    """The firewall in ``pair.host``; the master proves SSH from ``pair.client`` (the
    operator, always allowed), so a confirm holds unless the rollback fired first."""
    return {
        "host": {"manage": False},
        "firewall": {
            "netns": pair.host, "root": str(root), "persist": False, "confirm_seconds": 10,
            "confirm": {"probe_netns": pair.client, "timeout": 2},
            "management": {"ssh_port": SSH, "allow_from": [*OPERATOR, "10.0.0.0/8"]},
            "allow": [{"name": "web", "proto": "tcp", "ports": [80, 443]}],
        },
        "k3s": {"mode": "external", "kubeconfig": kubeconfig},
        "gpu": {"enabled": False},
        "platform": {"releases": {"greeter": {
            "namespace": NS, "chart": {"path": str(CHART)}, "wait": False,
            "values": {"greeting": "hello", "service": False, **release_values},
        }}},
        "dora": {"namespace": NS, "textfile_dir": str(textfiles)},
    }  # fmt: skip


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    p = Pair(tmp_path_factory.mktemp("pair"))
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory, pair, kubeconfig, helm_bin, salt_factories):
    pillar_dir = tmp_path_factory.mktemp("pillar")
    root = tmp_path_factory.mktemp("fwroot")
    textfiles = tmp_path_factory.mktemp("textfile")
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - palplat\n")
    base = pillar(pair, root, kubeconfig, textfiles)

    def write(p):
        (pillar_dir / "palplat.sls").write_text(yaml.safe_dump({"palplat": p}))

    write(base)
    master = salt_factories.salt_master_daemon(
        "dora-master-" + uuid.uuid4().hex[:6], overrides=master_overrides(pillar_dir)
    )
    with master.started(start_timeout=120):
        minion = master.salt_minion_daemon(
            "dora-minion-" + uuid.uuid4().hex[:6],
            overrides=minion_overrides(**{"palplat.helm_bin": helm_bin}),
        )
        with minion.started(start_timeout=120):
            assert minion.salt_call_cli(timeout=300).run("saltutil.sync_all").returncode == 0
            assert master.salt_run_cli(timeout=120).run("saltutil.sync_all").returncode == 0
            yield {"master": master, "minion": minion, "write": write, "base": base,
                   "textfiles": textfiles, "pair": pair}  # fmt: skip
    k = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(kubeconfig))
    k.delete_namespace(NS)


def refresh(env, p):
    env["write"](p)
    assert env["minion"].salt_call_cli(timeout=120).run("saltutil.refresh_pillar", "wait=True")


def orchestrate(env, n: int, pause_confirm: float | None = None, events=None) -> dict:
    """Run palplat.full as CI's apply does for commit ``n`` (1-based)."""
    from palplat.dora import ci

    head = list(reversed(COMMITS[:n]))
    extra = {"palplat_target": env["minion"].id, "palplat_target_type": "glob",
             **ci.orchestrate_pillar(head[0][0], head)}  # fmt: skip
    argv = ("state.orchestrate", "palplat.full", f"pillar={json.dumps(extra)}")
    if not pause_confirm:
        ret = env["master"].salt_run_cli(timeout=900).run(*argv)
    else:
        # the master loses the minion for a while right after the firewall change: the
        # orchestration waits before the confirmation (salt-run state.pause on its jid,
        # read off the master's bus) and the rollback timer fires first
        since = time.time()
        box = {}
        th = threading.Thread(
            target=lambda: box.update(ret=env["master"].salt_run_cli(timeout=900).run(*argv))
        )
        th.start()
        got = events.wait_for_events(
            [(env["master"].id, "salt/run/*/new")], timeout=120, after_time=since
        )
        jid = next(e.data["jid"] for e in got.matches
                   if e.data.get("fun") == "runner.state.orchestrate")  # fmt: skip
        paused = env["master"].salt_run_cli(timeout=60).run(
            "state.pause", jid, "state_id=palplat-firewall-confirm",
            f"duration={pause_confirm}")  # fmt: skip
        assert paused.returncode == 0, paused.stderr
        th.join()
        ret = box["ret"]
    data = ret.data.get("data", ret.data) if isinstance(ret.data, dict) else {}
    states = next(iter(data.values())) if len(data) == 1 else data
    return {sid.split("_|-")[1]: r for sid, r in states.items()}


def records(env, kind=None) -> list[dict]:
    ret = env["master"].salt_cli(timeout=120).run(
        "palplat_dora.records", *([f"kind={kind}"] if kind else []), "last=0",
        minion_tgt=env["minion"].id)  # fmt: skip
    return ret.data


def test_runs_failures_and_the_keys_by_hand(env, kube_api, event_listener):
    runs = {}
    runs[1] = orchestrate(env, 1)
    assert runs[1]["palplat-platform"]["result"] is True, runs[1]
    assert "recorded run" in runs[1]["palplat-dora"]["comment"]
    refresh(env, pillar(*_args(env), greeting="hi"))
    runs[2] = orchestrate(env, 2)
    refresh(env, pillar(*_args(env), greeting="hi", broken=True))
    runs[3] = orchestrate(env, 3)
    assert runs[3]["palplat-platform"]["result"] is False  # failed, rolled back
    assert runs[3]["palplat-dora"]["result"] is True  # recorded all the same
    refresh(env, pillar(*_args(env), greeting="hey"))
    runs[4] = orchestrate(env, 4)
    assert runs[4]["palplat-platform"]["result"] is True
    # drift: someone edits the release's ConfigMap; the same revision repairs it
    kubernetes.client.CoreV1Api(kube_api).patch_namespaced_config_map(
        "greeter-config", NS, {"data": {"greeting": "edited by hand"}})  # fmt: skip
    runs[5] = orchestrate(env, 4)
    narrowed = pillar(*_args(env), greeting="hey")
    narrowed["firewall"]["management"]["allow_from"] = OPERATOR  # 10.0.0.0/8 goes
    refresh(env, narrowed)
    runs[6] = orchestrate(env, 5, pause_confirm=16, events=event_listener)
    assert runs[6]["palplat-firewall-confirm"]["result"] is False, runs[6]
    runs[7] = orchestrate(env, 6)
    assert runs[7]["palplat-firewall-confirm"]["result"] is True, runs[7]

    applies = {(r["run"], r["c"]): r for r in records(env, "apply")}
    run_ids = [r["run"] for r in records(env, "run")]
    assert len(run_ids) == 7
    t = {i + 1: {c: r["t"] for (rid, c), r in applies.items() if rid == run_ids[i]}
         for i in range(7)}  # fmt: skip
    when = {i + 1: COMMITS[i][1] for i in range(6)}
    got = {c: (r["o"], r["rb"]) for (rid, c), r in applies.items() if rid == run_ids[2]}
    assert got["release/greeter"] == ("failed", True)
    assert applies[(run_ids[4], "release/greeter")]["act"] == ["drift"]
    assert applies[(run_ids[5], "firewall")]["rb"] is True

    rep = env["master"].salt_run_cli(timeout=300).run("palplat.dora", "days=1").data["dora"]
    rows = {r["component"]: r for r in rep["platform"]}
    g = rows["release/greeter"]
    # by hand: run 1 is the first (not measured); 2 deploys c2; 3 fails; 4 deploys c3, c4
    # (rework, recovers 3); 5 repairs drift; 6 is skipped (the firewall stage failed); 7
    # has nothing for it
    assert (g["deployments"], g["attempts"], g["failures"], g["reworks"], g["changes"]) == (
        3, 4, 1, 1, 3)  # fmt: skip
    assert g["runs"] == {"deployed": 3, "failed": 1, "drift_repair": 1, "skipped": 1,
                         "noop": 1}  # fmt: skip
    leads = sorted([t[2]["release/greeter"] - when[2], t[4]["release/greeter"] - when[3],
                    t[4]["release/greeter"] - when[4]])  # fmt: skip
    assert g["keys"]["lead_time"]["value"] == pytest.approx(leads[1])
    recovery = t[4]["release/greeter"] - t[3]["release/greeter"]
    assert g["keys"]["recovery_time"]["value"] == pytest.approx(recovery)
    assert g["keys"]["change_fail_rate"]["value"] == 0.25
    assert g["keys"]["change_fail_rate"]["band"] == "Low"  # 25 % > 20 %
    fw = rows["firewall"]
    # the firewall: deployed in run 1; runs 2-5 had nothing for it; 6 rolled back by its
    # timer; 7 deploys c5 and c6 (the commits since run 5, when it last matched)
    assert (fw["deployments"], fw["attempts"], fw["failures"], fw["reworks"],
            fw["changes"]) == (2, 3, 1, 1, 2)  # fmt: skip
    assert fw["runs"]["noop"] == 4 and not fw["failed_now"]
    fw_leads = sorted([t[7]["firewall"] - when[5], t[7]["firewall"] - when[6]])
    assert fw["keys"]["lead_time"]["value"] == pytest.approx(fw_leads[0])
    assert fw["keys"]["recovery_time"]["value"] == pytest.approx(
        t[7]["firewall"] - t[6]["firewall"])  # fmt: skip

    # the same numbers in the metrics file, served by node_exporter, and in the rules
    if why_prom:
        pytest.skip(why_prom)
    with prom.node_exporter(env["textfiles"]) as url:
        text = prom.http_get(url)
        assert (
            'palplat_dora_deployments_total{component="release/greeter",scope="platform"} 3' in text
        )
        assert 'palplat_dora_failures_total{component="firewall",scope="platform"} 1' in text
        with prom.prometheus(Path(env["textfiles"]).parent / "prom", [url.split("/")[2]],
                             rules.groups()) as query:  # fmt: skip
            deadline = time.monotonic() + 60
            while not query("palplat_dora:change_fail_rate:band:30d") and \
                    time.monotonic() < deadline:  # fmt: skip
                time.sleep(1)

            def one(expr, comp):
                res = query(f'{expr}{{component="{comp}"}}')
                assert len(res) == 1, (expr, res)
                return float(res[0]["value"][1])

            assert one("palplat_dora:deployments:30d", "release/greeter") == 3
            assert one("palplat_dora:attempts:30d", "release/greeter") == 4
            assert one("palplat_dora:change_fail_rate:30d", "release/greeter") == 0.25
            assert one("palplat_dora:change_fail_rate:band:30d", "release/greeter") == 1
            assert one("palplat_dora:lead_time:band:30d", "release/greeter") == bands.level(
                bands.grade("lead_time", leads[1]))  # fmt: skip
            assert one("palplat_dora:deployments:30d", "firewall") == 2


def test_two_record_jobs_racing_on_the_ledger(env):
    def batch(tag):
        return [{"id": f"race:{tag}:{i}", "k": "run", "t": START + i, "run": f"race-{tag}-{i}",
                 "ok": True, "stages": {}} for i in range(30)]  # fmt: skip

    jids = {}

    def send(tag):
        # published without waiting (--async), answers read from the job cache: with two
        # returns at once the salt CLI can miss one event and wait out its whole timeout
        out = env["master"].salt_cli(timeout=60).run(
            "--async", "palplat_dora.record", f"records={json.dumps(batch(tag))}",
            minion_tgt=env["minion"].id)  # fmt: skip
        jids[tag] = out.stdout.split()[-1]

    threads = [threading.Thread(target=send, args=(tag,)) for tag in ("a", "b")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    answers, deadline = {}, time.time() + 300
    while len(answers) < 2 and time.time() < deadline:
        for tag, jid in jids.items():
            got = env["master"].salt_run_cli(timeout=60).run("jobs.lookup_jid", jid).data
            if isinstance(got, dict) and env["minion"].id in got:
                answers[tag] = got[env["minion"].id]
        time.sleep(1)
    assert answers["a"]["added"] == 30 and answers["b"]["added"] == 30, (jids, answers)
    ids = {r["id"] for r in records(env, "run")}
    assert {f"race:{tag}:{i}" for tag in "ab" for i in range(30)} <= ids


def _args(env):
    b = env["base"]
    return (env["pair"], b["firewall"]["root"], b["k3s"]["kubeconfig"],
            b["dora"]["textfile_dir"])  # fmt: skip
