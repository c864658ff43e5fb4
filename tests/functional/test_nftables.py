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
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from palplat import config, nft
from palplat.errors import PalplatError, PillarError
from tests.support.saltenv import CHECKOUT_DIRS, REPO

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
        reason="needs root, nft and ip (apt-get install -y nftables iproute2)",
    ),
]

HOST_IP, CLIENT_IP = "10.77.0.1", "10.77.0.2"
SSH, WEB, OTHER = 2222, 8080, 9090
API, KUBELET = 6443, 10250

LISTENER = textwrap.dedent(
    """
    import selectors, socket, sys
    sel = selectors.DefaultSelector()
    for p in sys.argv[1:]:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(p))); s.listen(64); s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            try:
                c, _ = key.fileobj.accept(); c.close()
            except OSError:
                pass
    """
)

PROBE = textwrap.dedent(
    """
    import json, socket, sys, threading
    host, ports, out = sys.argv[1], [int(p) for p in sys.argv[2:]], {}
    def probe(p):
        s = socket.socket(); s.settimeout(0.8)
        try:
            s.connect((host, p)); out[p] = True
        except OSError:
            out[p] = False
        finally:
            s.close()
    ts = [threading.Thread(target=probe, args=(p,)) for p in ports]
    [t.start() for t in ts]; [t.join() for t in ts]
    print(json.dumps(out))
    """
)

UNIT = "[Unit]\nDescription=nftables\n[Service]\nType=oneshot\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n[Install]\nWantedBy=sysinit.target\n"  # noqa: E501
DEBIAN_MAIN = "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\n"  # noqa: E501

FOREIGN = """
table ip k3s_fake {
    chain KUBE-INPUT {
        type filter hook input priority 10; policy accept; tcp dport 1 counter accept;
    }
}
table inet flannel_fake {
    set nodes { type ipv4_addr; elements = { 10.42.0.1, 10.42.1.1 }; }
    chain FLANNEL-FWD {
        type filter hook forward priority 0; policy accept; ip saddr @nodes accept;
    }
}
"""


def sh(*argv, check=True, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


class Pair:
    def __init__(self, tmp: Path):
        tag = uuid.uuid4().hex[:6]
        self.host, self.client = f"pp-{tag}-h", f"pp-{tag}-c"
        self.tmp = tmp
        self.listener = None
        sh("ip", "netns", "add", self.host)
        sh("ip", "netns", "add", self.client)
        va, vb = f"pv{tag}a", f"pv{tag}b"
        sh("ip", "link", "add", va, "netns", self.host, "type", "veth", "peer", "name", vb,
           "netns", self.client)  # fmt: skip
        for ns, dev, ip in ((self.host, va, HOST_IP), (self.client, vb, CLIENT_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.listener = subprocess.Popen(
            ["ip", "netns", "exec", self.host, sys.executable, "-c", LISTENER,
             str(SSH), str(WEB), str(OTHER), str(API), str(KUBELET)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.listener.stdout.readline().strip() == "ready"

    def reach(self, *ports: int) -> dict[int, bool]:
        out = sh("ip", "netns", "exec", self.client, sys.executable, "-c", PROBE, HOST_IP,
                 *map(str, ports)).stdout  # fmt: skip
        return {int(k): v for k, v in json.loads(out).items()}

    def nft(self, *args, check=True):
        return sh("ip", "netns", "exec", self.host, "nft", *args, check=check)

    def close(self):
        if self.listener is not None:
            self.listener.kill()
            self.listener.wait()
        for ns in (self.host, self.client):
            sh("ip", "netns", "del", ns, check=False)


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
    assert pair.reach(API, KUBELET, WEB) == {API: api, KUBELET: True, WEB: False}
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
