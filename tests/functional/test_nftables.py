"""Real nftables in network namespaces the tests create.

Two namespaces joined by a veth pair: ``host`` (palplat's firewall, a real TCP listener)
and ``client``. Connections from the client prove what each apply, change and rollback
does. Foreign tables (stand-ins for k3s and flannel) must come out byte-identical.
The state module is exercised through ``salt-call --local`` with the repo's modules.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from palplat import config, nft
from palplat.errors import PalplatError, PillarError
from palplat.nft import probe
from tests.support.netpair import (
    API,
    CLIENT_IP,
    CLIENT_IP6,
    DEBIAN_MAIN,
    FOREIGN,
    HOST_IP,
    HOST_IP6,
    KUBELET,
    OTHER,
    SSH,
    UNIT,
    WEB,
    Pair,
    sh,
)
from tests.support.saltenv import CHECKOUT_DIRS, REPO

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
        reason="needs root, nft and ip (apt-get install -y nftables iproute2)",
    ),
]


@pytest.fixture
def pair(tmp_path):
    p = Pair(tmp_path)
    try:
        yield p
    finally:
        p.close()
        # A detached rollback process of this test must not outlive it.
        for rec in (tmp_path / "root").glob("var/lib/palplat/nftables/pending-*.json"):
            pid = json.loads(rec.read_text()).get("pid")
            if pid:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        if str(rec).encode() in fh.read():
                            os.kill(pid, 9)
                except OSError:
                    pass


def make_root(tmp: Path) -> Path:
    root = tmp / "root"
    (root / "usr/lib/systemd/system").mkdir(parents=True, exist_ok=True)
    (root / "usr/lib/systemd/system/nftables.service").write_text(UNIT)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/nftables.conf").write_text(DEBIAN_MAIN)
    return root


def pillar(pair: Pair, **fw) -> dict:
    root = make_root(pair.tmp)
    base = {
        "netns": pair.host,
        "root": str(root),
        "profile": False,
        "rollback_timer": "process",
        "confirm_seconds": 10,
        "management": {"ssh_port": SSH, "salt_ports": [], "allow_from": [f"{CLIENT_IP}/32"]},
        "allow": [{"name": "web", "proto": "tcp", "ports": [WEB]}],
    }
    base.update(fw)
    return {"palplat": {"firewall": base, "k3s": {"mode": "external"}, "gpu": {"enabled": False}}}


def converge(p: dict) -> nft.Plan:
    plan = nft.plan(config.load(p))
    if plan.changed:
        nft.apply(plan)
    return plan


def foreign_snapshot(pair: Pair) -> str:
    return (
        pair.nft("-a", "list", "table", "ip", "k3s_fake").stdout
        + pair.nft("-a", "list", "table", "inet", "flannel_fake").stdout
    )


def test_apply_noop_change_confirm_persist_and_foreign_tables(pair):
    sh("ip", "netns", "exec", pair.host, "nft", "-f", "/dev/stdin", input=FOREIGN)
    before = foreign_snapshot(pair)
    assert pair.reach(SSH, WEB, OTHER) == {SSH: True, WEB: True, OTHER: True}

    p = pillar(pair)
    first = converge(p)
    assert first.changes["table"] == {"old": None, "new": "inet palplat"}
    assert first.risky_ports == [SSH]  # from an open host: commit-confirmed
    assert pair.reach(SSH, WEB, OTHER) == {SSH: True, WEB: True, OTHER: False}
    paths = nft.Paths.of(config.load(p).firewall)
    assert nft.pending(paths) is not None
    assert not Path(paths.persist_file).exists()  # persistence waits for confirm

    noop = nft.plan(config.load(p))
    assert noop.changes == {} and "NOT confirmed" in noop.comment(test=False)

    assert nft.confirm(config.load(p).firewall, paths)["confirmed"] is True
    assert nft.pending(paths) is None
    main = Path(paths.main_config).read_text()
    assert main.startswith(DEBIAN_MAIN)  # the distribution's file is kept, one include added
    assert main.endswith(f'include "{paths.persist_file}"\n')
    assert nft.plan(config.load(p)).changes == {}
    enabled = Path(p["palplat"]["firewall"]["root"]) / (
        "etc/systemd/system/sysinit.target.wants/nftables.service"
    )
    assert enabled.is_symlink()

    # One rule added: a plain (not risky) change, persisted at once.
    p2 = copy.deepcopy(p)
    p2["palplat"]["firewall"]["allow"].append({"name": "other", "proto": "tcp", "ports": [OTHER]})
    change = converge(p2)
    assert list(change.changes["rules"]) == ["other"]
    assert change.changes["rules"]["other"]["old"] is None
    assert change.risky_ports == [] and nft.pending(paths) is None
    assert pair.reach(SSH, WEB, OTHER) == {SSH: True, WEB: True, OTHER: True}
    assert "other" in Path(paths.persist_file).read_text()
    assert nft.plan(config.load(p2)).changes == {}

    # And removed again.
    removal = converge(p)
    assert removal.changes["rules"] == {
        "other": {"old": [f'tcp dport {OTHER} accept comment "other"'], "new": None}
    }
    assert pair.reach(OTHER) == {OTHER: False}

    # Drift: a rule added by hand is found and removed.
    pair.nft("add", "rule", "inet", "palplat", "input", "tcp", "dport", str(OTHER), "accept")
    drift = converge(p)
    assert any(k.startswith("<handle") for k in drift.changes["rules"])
    assert nft.plan(config.load(p)).changes == {}

    assert foreign_snapshot(pair) == before

    # Boot: a fresh namespace loads the distribution's file (flush + include).
    boot = f"{pair.host}-b"
    sh("ip", "netns", "add", boot)
    try:
        sh("ip", "netns", "exec", boot, "nft", "-f", paths.main_config)
        live = nft.Nft(boot).live("palplat")
        assert live is not None and live.key() == nft.desired(config.load(p)).key()
    finally:
        sh("ip", "netns", "del", boot, check=False)


def test_rejected_ruleset_changes_nothing(pair, monkeypatch):
    p = pillar(pair)
    converge(p)
    nft.confirm(config.load(p).firewall, nft.Paths.of(config.load(p).firewall))
    before = pair.nft("-a", "list", "ruleset").stdout
    real = nft.render
    monkeypatch.setattr(  # where nft.plan looks it up
        "palplat.nft.converge.render",
        lambda t, header="": real(t, header).replace("policy drop;", "policy nope;"),
    )
    p2 = copy.deepcopy(p)
    p2["palplat"]["firewall"]["allow"].append({"name": "other", "proto": "tcp", "ports": [OTHER]})
    with pytest.raises(nft.NftRejected, match="nothing was changed"):
        nft.plan(config.load(p2))
    assert pair.nft("-a", "list", "ruleset").stdout == before
    assert pair.reach(OTHER) == {OTHER: False}


def test_lockout_is_refused_unless_forced(pair):
    p = pillar(pair, management={"ssh_port": SSH, "salt_ports": [], "allow_from": []})
    with pytest.raises(PillarError, match=f"blocks SSH \\(tcp {SSH}\\) from everywhere"):
        nft.plan(config.load(p))
    assert pair.nft("list", "ruleset").stdout.strip() == ""  # nothing applied
    p["palplat"]["firewall"]["force"] = True
    plan = converge(p)
    assert plan.risky_ports == [SSH]  # forced, but still commit-confirmed
    assert pair.reach(SSH) == {SSH: False}
    nft.rollback_now(nft.Paths.of(config.load(p).firewall))
    assert pair.reach(SSH) == {SSH: True}


@pytest.mark.parametrize("role, api", [("server", True), ("agent", False)])
def test_k3s_profile_opens_the_role_ports(pair, role, api):
    p = pillar(pair, profile=True, allow=[])
    p["palplat"]["k3s"] = (
        {"role": "server", "config": {"flannel-backend": "vxlan"}}
        if role == "server"  # agents take the backend from their server: vxlan by default
        else {"role": "agent", "server_url": "https://10.0.0.1:6443", "token": "t0k3n-agent"}
    )
    plan = converge(p)
    assert {"kubelet", "flannel-vxlan", "trusted:tailscale0"} <= set(plan.changes["rules"])
    # the client is no node of the cluster: the cluster ports are closed to it (they used
    # to be open to everyone)
    assert pair.reach(API, KUBELET, WEB) == {API: False, KUBELET: False, WEB: False}
    assert nft.plan(config.load(p)).changes == {}
    # listed among the cluster's nodes, it reaches what its role opens (IPv4 and IPv6)
    p["palplat"]["firewall"]["cluster_nodes"] = [f"{CLIENT_IP}/32", f"{CLIENT_IP6}/128"]
    converge(p)
    assert pair.reach(API, KUBELET, WEB) == {API: api, KUBELET: True, WEB: False}
    assert pair.reach6(API, KUBELET) == {API: api, KUBELET: True}
    assert nft.plan(config.load(p)).changes == {}


@pytest.mark.slow
def test_unconfirmed_risky_change_rolls_back_on_time(pair):
    p = pillar(pair)
    converge(p)
    fw = config.load(p).firewall
    paths = nft.Paths.of(fw)
    nft.confirm(fw, paths)
    persisted = Path(paths.persist_file).read_text()
    assert pair.reach(SSH) == {SSH: True}

    # The operator's network leaves allow_from: the client loses SSH.
    bad = copy.deepcopy(p)
    bad["palplat"]["firewall"]["management"]["allow_from"] = ["10.99.0.0/24"]
    plan = nft.plan(config.load(bad))
    assert plan.risky_ports == [SSH] and "confirm" in plan.changes
    started = time.monotonic()
    nft.apply(plan)
    rec = nft.pending(paths)
    assert rec["mechanism"] == "process"
    assert pair.reach(SSH) == {SSH: False}
    assert Path(paths.persist_file).read_text() == persisted  # boot config still the good one

    while nft.pending(paths) is not None and time.monotonic() - started < 25:
        time.sleep(0.5)
    took = time.monotonic() - started
    assert nft.pending(paths) is None, "the rollback did not run"
    assert 9 <= took <= 15, took
    assert nft.last_outcome(paths)["outcome"] == "rolled back"
    assert pair.reach(SSH, WEB) == {SSH: True, WEB: True}
    assert nft.Nft(pair.host).live("palplat").key() == nft.desired(config.load(p)).key()
    with pytest.raises(PalplatError, match="rolled back"):
        nft.confirm(fw, paths)


def test_a_later_unarmed_change_supersedes_an_unreported_rollback(pair):
    """A risky change its timer rolled back and nobody confirmed (the run that made it was
    killed): the next run's change that needs no confirmation re-applies the pillar and
    says it supersedes the old one, and no later confirm fails for it (the machine test's
    palplat.full once failed on a rollback left by an earlier run). Without a newer
    change, the confirm still reports the rollback, once."""
    from palplat import nft_rollback

    p = pillar(pair)
    converge(p)
    fw = config.load(p).firewall
    paths = nft.Paths.of(fw)
    nft.confirm(fw, paths)
    bad = copy.deepcopy(p)
    bad["palplat"]["firewall"]["management"]["allow_from"] = ["10.99.0.0/24"]
    nft.apply(nft.plan(config.load(bad)))
    assert nft_rollback.fire(paths.record) == 0  # what the timer does
    assert nft.probe_info(config.load(p))["rolled_back"] is True

    more = copy.deepcopy(p)
    more["palplat"]["firewall"]["allow"].append({"name": "extra", "proto": "tcp", "ports": [OTHER]})
    plan = nft.plan(config.load(more))
    assert plan.risky_ports == [] and plan.superseded is not None
    assert "would supersede an earlier, never confirmed one (rolled back" in plan.comment(True)
    nft.apply(plan)
    assert "supersedes an earlier" in plan.comment(False)
    assert nft.probe_info(config.load(more))["rolled_back"] is False
    assert nft.confirm(fw, paths)["confirmed"] is False  # nothing waits, nothing raised
    assert nft.plan(config.load(more)).superseded is None

    # the same rollback with no newer change: reported by the next confirm, once
    nft.apply(nft.plan(config.load(bad)))
    assert nft_rollback.fire(paths.record) == 0
    with pytest.raises(PalplatError, match="rolled back"):
        nft.confirm(fw, paths)
    assert nft.confirm(fw, paths)["confirmed"] is False


def probe_from_client(pair: Pair, fw) -> dict:
    """What the orchestrated confirm does (runner palplat_nftables): new connections to
    the SSH port from the client namespace (the operator's machine) to each address of
    the host namespace."""
    info = nft.probe_info(config.load(pair.pillar_now))
    assert info["addresses"] == [HOST_IP, HOST_IP6], info
    ts = probe.targets(info["addresses"], info["ssh_ports"])
    return {"master": probe.probe(ts, lambda t: probe.connect_in(pair.client, t.addr, t.port, 2))}


def wait_rolled_back(paths, started: float, limit: float = 25) -> float:
    while nft.pending(paths) is not None and time.monotonic() - started < limit:
        time.sleep(0.25)
    return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(["10.99.0.0/24", "fd99::/64"], id="ipv4-and-ipv6"),
        pytest.param([f"{CLIENT_IP}/32"], id="ipv4-only-allow_from-drops-ipv6"),
    ],
)
def test_a_change_that_drops_ssh_is_applied_not_confirmed_and_rolled_back(pair, cut):
    """The operator's SSH over IPv4 and IPv6 works; a change cuts it (both families, or
    only IPv6 when allow_from lists only IPv4 networks). It is applied commit-confirmed,
    the probe from outside (the client namespace) finds a path that worked before and
    fails now, so nothing confirms it, and the timer restores the previous table."""
    both = [f"{CLIENT_IP}/32", f"{CLIENT_IP6}/128"]
    p = pillar(pair, management={"ssh_port": SSH, "salt_ports": [], "allow_from": both})
    pair.pillar_now = p
    converge(p)
    fw = config.load(p).firewall
    paths = nft.Paths.of(fw)
    nft.confirm(fw, paths)
    good = nft.Nft(pair.host).live("palplat").key()
    assert pair.reach(SSH) == {SSH: True} and pair.reach6(SSH) == {SSH: True}

    baseline = probe_from_client(pair, fw)
    assert all(r["ok"] and not r["local"] for r in baseline["master"].values()), baseline
    bad = copy.deepcopy(p)
    bad["palplat"]["firewall"]["management"]["allow_from"] = cut
    pair.pillar_now = bad
    plan = nft.plan(config.load(bad))
    assert plan.risky_ports == [SSH]  # some source loses SSH: commit-confirmed
    started = time.monotonic()
    nft.apply(plan)
    assert pair.reach6(SSH) == {SSH: False}
    assert pair.reach(SSH) == {SSH: len(cut) == 1}
    decision = probe.decide(probe_from_client(pair, fw), baseline)
    assert not decision.confirm and f"[{HOST_IP6}]:{SSH} from master" in decision.lost
    assert "NOT confirmed" in probe.by_hand("host1", nft.probe_info(config.load(bad)))

    took = wait_rolled_back(paths, started)
    assert nft.pending(paths) is None, "the rollback did not run"
    assert 9 <= took <= 15, took
    print(f"\n[nft] unconfirmed change ({'+'.join(cut)}) rolled back after {took:.1f}s")
    assert nft.last_outcome(paths)["outcome"] == "rolled back"
    assert pair.reach(SSH) == {SSH: True} and pair.reach6(SSH) == {SSH: True}
    assert nft.Nft(pair.host).live("palplat").key() == good


@pytest.mark.slow
def test_a_confirm_or_rollback_between_plan_and_apply_arms_no_empty_restore(pair):
    """The plan of change B sees change A pending (an earlier palplat then armed an empty
    restore script, meaning "keep A's"); A is confirmed before B's apply. B's rollback must
    restore the live table (A), read under the lock, and does."""
    p = pillar(pair)
    converge(p)  # A: risky from the open namespace, pending
    fw = config.load(p).firewall
    paths = nft.Paths.of(fw)
    table_a = nft.Nft(pair.host).live("palplat").key()
    p2 = copy.deepcopy(p)
    p2["palplat"]["firewall"]["management"]["allow_from"] = ["10.99.0.0/24"]
    plan_b = nft.plan(config.load(p2))
    assert plan_b.pending is not None and plan_b.risky_ports == [SSH]
    assert nft.confirm(fw, paths)["confirmed"] is True  # between B's plan and its apply
    started = time.monotonic()
    nft.apply(plan_b)
    rec = nft.pending(paths)
    with open(rec["restore_script"]) as fh:
        script = fh.read()
    assert "delete table inet palplat" in script and "mgmt:ssh" in script, script
    assert pair.reach(SSH) == {SSH: False}
    wait_rolled_back(paths, started)
    assert nft.last_outcome(paths)["outcome"] == "rolled back"
    live = nft.Nft(pair.host).live("palplat")
    assert live is not None and live.key() == table_a  # A, not an empty or missing table
    assert pair.reach(SSH, WEB) == {SSH: True, WEB: True}


def test_the_benchmark_runs_with_few_rules():
    """benchmarks/nftables_bench.py once indexed rule 1234 whatever --rules said."""
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/nftables_bench.py"), "--rules", "12",
         "--elements", "40"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "one-rule change: plan" in res.stdout and "summary: first apply" in res.stdout


# ------------------------------------------------------------------------ real Salt


def salt_call(conf: Path, *args: str) -> dict:
    cp = subprocess.run(
        [str(REPO / ".venv/bin/salt-call"), "--local", "-c", str(conf), "--out=json",
         "--retcode-passthrough", *args],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    try:
        return json.loads(cp.stdout)["local"]
    except (ValueError, KeyError):
        raise AssertionError(
            f"salt-call failed ({cp.returncode}): {cp.stdout}\n{cp.stderr}"
        ) from None


def salt_config(pair: Pair, p: dict) -> Path:
    conf = pair.tmp / "salt"
    (conf / "pillar").mkdir(parents=True, exist_ok=True)
    (conf / "pillar/top.sls").write_text("base:\n  '*':\n    - palplat\n")
    (conf / "pillar/palplat.sls").write_text(json.dumps(p))
    (conf / "minion").write_text(
        json.dumps(
            {
                "id": "nft-test",
                "file_client": "local",
                "root_dir": str(conf / "root"),
                "file_roots": {"base": [str(REPO / "salt")]},
                "pillar_roots": {"base": [str(conf / "pillar")]},
                **CHECKOUT_DIRS,
                "log_file": str(conf / "minion.log"),
            }
        )
    )
    return conf


def _state(ret: dict) -> dict:
    return next(v for k, v in ret.items() if "palplat_nftables" in k)


@pytest.mark.salt
@pytest.mark.slow
def test_state_through_salt_call(pair):
    p = pillar(pair, confirm_seconds=300)  # each salt-call takes seconds
    conf = salt_config(pair, p)

    dry = _state(salt_call(conf, "state.apply", "palplat.firewall", "test=True"))
    assert dry["result"] is None, dry
    assert dry["changes"]["table"] == {"old": None, "new": "inet palplat"}
    assert set(dry["changes"]["rules"]) >= {"mgmt:ssh", "web", "builtin:established"}
    assert "would roll back" in dry["comment"]
    assert pair.nft("list", "ruleset").stdout.strip() == ""  # test mode changed nothing

    real = _state(salt_call(conf, "state.apply", "palplat.firewall"))
    assert real["result"] is True, real
    assert real["changes"] == dry["changes"]  # the same code path
    assert pair.reach(SSH, WEB, OTHER) == {SSH: True, WEB: True, OTHER: False}

    again = _state(salt_call(conf, "state.apply", "palplat.firewall"))
    assert again["result"] is True and again["changes"] == {}, again
    assert "NOT confirmed" in again["comment"]

    confirmed = salt_call(conf, "palplat_nftables.confirm")
    assert confirmed["confirmed"] is True
    assert salt_call(conf, "palplat_nftables.pending") is None

    p["palplat"]["firewall"]["allow"].append({"name": "other", "proto": "tcp", "ports": [OTHER]})
    (conf / "pillar/palplat.sls").write_text(json.dumps(p))
    dry = _state(salt_call(conf, "state.apply", "palplat.firewall", "test=True"))
    assert dry["result"] is None and list(dry["changes"]["rules"]) == ["other"], dry
    assert dry["changes"]["persist"], dry
    assert pair.reach(OTHER) == {OTHER: False}
    real = _state(salt_call(conf, "state.apply", "palplat.firewall"))
    assert real["result"] is True and real["changes"] == dry["changes"], real
    assert pair.reach(OTHER) == {OTHER: True}
    again = _state(salt_call(conf, "state.apply", "palplat.firewall", "test=True"))
    assert again["result"] is True and again["changes"] == {}, again

    live = salt_call(conf, "palplat_nftables.live")
    assert live["other"] == [f'tcp dport {OTHER} accept comment "other"']

    # Bad pillar: a schema error naming the path, before nft runs.
    p["palplat"]["firewall"]["allow"][0]["ports"] = [70000]
    (conf / "pillar/palplat.sls").write_text(json.dumps(p))
    before = pair.nft("-a", "list", "ruleset").stdout
    ret = salt_call(conf, "state.apply", "palplat.firewall")
    bad = next(v for k, v in ret.items() if "palplat_config" in k)
    assert bad["result"] is False and "palplat:firewall:allow:0:ports:0" in bad["comment"]
    assert _state(ret)["result"] is False
    assert pair.nft("-a", "list", "ruleset").stdout == before
