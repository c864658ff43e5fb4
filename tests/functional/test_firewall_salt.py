"""The orchestrated confirm on a real master and minion (pytest-salt-factories), with the
minion's firewall in a network namespace and a second namespace as the operator's
machine (the master's probes connect from there: ``firewall:confirm:probe_netns``).

``salt-run state.orchestrate palplat.full``:

1. from an open host, a first ruleset that keeps SSH open to the operator (IPv4 and IPv6):
   commit-confirmed, the new connection from the operator succeeds, confirmed, the later
   stages run;
2. a change that cuts the operator's SSH: applied, NOT confirmed (the run fails at
   ``palplat-firewall-confirm`` and says how to confirm by hand, the later stages do not
   run), and the timer restores the previous ruleset;
3. the master alone on the node: its probes never leave it, so nothing is confirmed;
4. a fault: the minion is killed (SIGKILL, its whole process group) between the apply
   and the confirm; the host ends with the previous ruleset.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from palplat import config, nft
from tests.support.netpair import CLIENT_IP, CLIENT_IP6, HOST_IP, HOST_IP6, SSH, Pair
from tests.support.saltenv import master_overrides, minion_overrides

pytestmark = [
    pytest.mark.salt,
    pytest.mark.slow,
    pytest.mark.netns,
    pytest.mark.controlplane,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
        reason="needs root, nft and ip (apt-get install -y nftables iproute2)",
    ),
]

CONFIRM_SECONDS = 20  # an orchestration's firewall stage and probe fit in it
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    p = Pair(tmp_path_factory.mktemp("pair"))
    try:
        yield p
    finally:
        p.close()
        _kill_rollbacks(p.tmp)
        print(f"\n[firewall-salt] timings (s): {json.dumps(TIMINGS)}")


def _kill_rollbacks(tmp: Path) -> None:
    """A detached rollback process of these tests must not outlive them."""
    for rec in tmp.glob("root/var/lib/palplat/nftables/pending-*.json"):
        try:
            pid = json.loads(rec.read_text()).get("pid")
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if str(rec).encode() in fh.read():
                    os.kill(pid, 9)
        except (OSError, ValueError, TypeError):
            pass


def pillar_of(pair: Pair, kubeconfig: str, allow_from: list[str], **confirm) -> dict:
    return {
        "palplat": {
            "host": {"manage": False},
            "firewall": {
                "netns": pair.host,
                "root": str(pair.tmp / "root"),
                "persist": False,
                "rollback_timer": "process",
                "confirm_seconds": CONFIRM_SECONDS,
                "confirm": {"probe_netns": pair.client, "timeout": 2, **confirm},
                "management": {"ssh_port": SSH, "salt_ports": [], "allow_from": allow_from},
                "allow": [{"name": "web", "proto": "tcp", "ports": [8080]}],
            },
            "k3s": {"mode": "external", "kubeconfig": kubeconfig},
            "gpu": {"enabled": False},
        }
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory, salt_factories, pair, kubeconfig, helm_bin):
    pillar_dir = tmp_path_factory.mktemp("pillar")
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - palplat\n")
    master = salt_factories.salt_master_daemon(
        "fw-master-" + uuid.uuid4().hex[:6], overrides=master_overrides(pillar_dir)
    )

    def write(p):
        (pillar_dir / "palplat.sls").write_text(yaml.safe_dump(p))

    write(pillar_of(pair, kubeconfig, [f"{CLIENT_IP}/32", f"{CLIENT_IP6}/128"]))
    with master.started(start_timeout=120):
        minion = master.salt_minion_daemon(
            "fw-minion-" + uuid.uuid4().hex[:6],
            overrides=minion_overrides(**{"palplat.helm_bin": helm_bin}),
        )
        with minion.started(start_timeout=120):
            assert minion.salt_call_cli(timeout=300).run("saltutil.sync_all").returncode == 0
            assert master.salt_run_cli(timeout=120).run("saltutil.sync_all").returncode == 0
            yield {"master": master, "minion": minion, "write": write, "kubeconfig": kubeconfig}


def refresh(env, p) -> None:
    env["write"](p)
    assert env["minion"].salt_call_cli(timeout=120).run("saltutil.refresh_pillar", "wait=True")


def orchestrate(env) -> tuple[int, dict]:
    target = json.dumps({"palplat_target": env["minion"].id, "palplat_target_type": "glob"})
    t0 = time.monotonic()
    ret = (
        env["master"]
        .salt_run_cli(timeout=900)
        .run("state.orchestrate", "palplat.full", f"pillar={target}")
    )
    took = time.monotonic() - t0
    data = ret.data if isinstance(ret.data, dict) else {"raw": ret.stdout}
    steps = next(iter((data.get("data") or data).values()), {})
    by_id = {v.get("__id__"): v for v in steps.values() if isinstance(v, dict)}
    return ret.returncode, {"steps": by_id, "took": took, "raw": ret.stdout}


def paths_of(p: dict) -> nft.Paths:
    return nft.Paths.of(config.load(p).firewall)


def test_a_first_ruleset_that_keeps_ssh_is_proven_and_confirmed(env, pair):
    p = pillar_of(pair, env["kubeconfig"], [f"{CLIENT_IP}/32", f"{CLIENT_IP6}/128"])
    refresh(env, p)
    code, out = orchestrate(env)
    steps = out["steps"]
    TIMINGS["orchestrate, first ruleset confirmed"] = round(out["took"], 1)
    assert code == 0, out["raw"][-4000:]
    assert {"palplat-firewall-baseline", "palplat-firewall-confirm", "palplat-service"} <= set(
        steps
    )
    assert all(v["result"] is True for v in steps.values()), steps
    ret = steps["palplat-firewall-confirm"]["changes"]["return"]["minions"][env["minion"].id]
    assert ret["confirmed"] is True and f"{HOST_IP}:{SSH} from master" in ret["why"]
    assert f"[{HOST_IP6}]:{SSH}" in ret["why"]
    assert nft.pending(paths_of(p)) is None
    assert pair.reach(SSH) == {SSH: True} and pair.reach6(SSH) == {SSH: True}


def test_a_change_that_cuts_ssh_is_left_unconfirmed_and_rolled_back(env, pair):
    good = nft.Nft(pair.host).live("palplat").key()
    p = pillar_of(pair, env["kubeconfig"], [f"{CLIENT_IP}/32"])  # IPv6 SSH is cut
    refresh(env, p)
    code, out = orchestrate(env)
    steps = out["steps"]
    assert code != 0
    assert steps["palplat-firewall"]["result"] is True  # applied, commit-confirmed
    started = time.monotonic()
    confirm = steps["palplat-firewall-confirm"]
    assert confirm["result"] is False, confirm
    text = json.dumps(confirm)
    assert f"[{HOST_IP6}]:{SSH} from master" in text  # worked before, fails now
    assert "NOT confirmed" in text and f"salt '{env['minion'].id}' palplat_nftables.confirm" in text
    assert "palplat-k3s" not in steps or steps["palplat-k3s"]["result"] is not True
    paths = paths_of(p)
    assert nft.pending(paths) is not None  # the rollback stays armed
    assert pair.reach(SSH) == {SSH: True} and pair.reach6(SSH) == {SSH: False}
    while nft.pending(paths) is not None and time.monotonic() - started < CONFIRM_SECONDS + 15:
        time.sleep(0.5)
    TIMINGS["unconfirmed change rolled back after the failed confirm"] = round(
        time.monotonic() - started, 1
    )
    assert nft.last_outcome(paths)["outcome"] == "rolled back"
    assert nft.Nft(pair.host).live("palplat").key() == good
    assert pair.reach6(SSH) == {SSH: True}


def test_the_master_on_the_node_proves_nothing(env, pair):
    """The node's own address, probed from the master's own namespace: the probe sees the
    address is its own (the connection would never leave the machine) and confirms
    nothing, whatever the connection does."""
    own = "10.78.0.1"  # an address of the master's namespace, given as the node's
    subprocess.run(["ip", "addr", "add", f"{own}/32", "dev", "lo"], check=True)
    try:
        p = pillar_of(pair, env["kubeconfig"], ["10.99.0.0/24"])  # a cut
        p["palplat"]["firewall"]["confirm"] = {"addresses": [own], "timeout": 2}
        refresh(env, p)
        code, out = orchestrate(env)
        confirm = out["steps"]["palplat-firewall-confirm"]
        assert code != 0 and confirm["result"] is False
        assert "runs on this node itself" in json.dumps(confirm)
        paths = paths_of(p)
        assert nft.rollback_now(paths)["rolled_back"] is True
    finally:
        subprocess.run(["ip", "addr", "del", f"{own}/32", "dev", "lo"], check=False)


def test_a_minion_killed_between_apply_and_confirm_leaves_the_previous_ruleset(env, pair):
    good = nft.Nft(pair.host).live("palplat").key()
    p = pillar_of(pair, env["kubeconfig"], ["10.99.0.0/24"])
    refresh(env, p)
    # through the minion daemon, so the rollback is armed from inside its process tree
    ret = (
        env["master"]
        .salt_cli(timeout=300)
        .run("state.apply", "palplat.firewall", minion_tgt=env["minion"].id)
    )
    assert ret.returncode == 0, ret.stdout
    paths = paths_of(p)
    assert nft.pending(paths) is not None and pair.reach(SSH) == {SSH: False}
    started = time.monotonic()
    daemon = psutil.Process(env["minion"].pid)
    for proc in [daemon, *daemon.children(recursive=True)]:  # a crash: no cleanup at all
        proc.send_signal(signal.SIGKILL)
    while nft.pending(paths) is not None and time.monotonic() - started < CONFIRM_SECONDS + 15:
        time.sleep(0.5)
    TIMINGS["rollback after the minion was killed"] = round(time.monotonic() - started, 1)
    assert nft.last_outcome(paths)["outcome"] == "rolled back"
    assert nft.Nft(pair.host).live("palplat").key() == good
    assert pair.reach(SSH) == {SSH: True}
