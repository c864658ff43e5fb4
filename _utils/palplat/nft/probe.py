"""Proof of access before a commit-confirmed change is kept: a NEW connection to the live
SSH port, opened from outside the node.

The orchestration (``palplat.full``, runner ``palplat_nftables``) probes each node twice
from its vantage points (the Salt master, or the minions ``firewall:confirm:probe_from``
names): once before the firewall stage (the baseline) and once after it. A pending change
is confirmed only when

* at least one probe ran from outside the node (a probe of an address the prober itself
  holds goes over its loopback interface and proves nothing: the master on the node),
* at least one new connection succeeded after the change, and
* every connection that succeeded before the change still succeeds (per address, so an
  IPv6 path that worked before and is cut now keeps the change unconfirmed).

Otherwise the rollback stays armed and the run says how to confirm by hand. An
established connection (the minion's own link to the master, an open SSH session) proves
nothing: the table accepts ``ct established`` whatever else it drops.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from palplat import proc
from palplat.errors import CommandError
from palplat.nft.commit import pending, unreported_rollback
from palplat.nft.host import Paths
from palplat.nft.sshd import live_ports

MASTER = "master"
BASELINE_MAX_AGE = 3600.0  # seconds a baseline counts for (one orchestration)
# interfaces whose addresses nobody outside the node connects to
SKIP_IFACES = re.compile(r"^(lo|cni\d*|flannel[.\w-]*|veth\w*|cali\w*|kube-\w*|docker\d*|br-\w+)$")

_CONNECT = textwrap.dedent(
    """
    import json, socket, sys
    addr, port, t = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    out = {"local": False, "ok": False, "error": ""}
    b = socket.socket(fam, socket.SOCK_STREAM)
    try:
        b.bind((addr, 0)); out["local"] = True
    except OSError:
        pass
    finally:
        b.close()
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(t)
    try:
        s.connect((addr, port)); out["ok"] = True
    except OSError as e:
        out["error"] = str(e) or type(e).__name__
    finally:
        s.close()
    print(json.dumps(out))
    """
)


@dataclass(frozen=True)
class Target:
    addr: str
    port: int

    @property
    def key(self) -> str:
        return f"[{self.addr}]:{self.port}" if ":" in self.addr else f"{self.addr}:{self.port}"


def targets(addresses: Iterable[str], ports: Iterable[int]) -> list[Target]:
    return [Target(a, p) for a in addresses for p in sorted(set(ports))]


def node_addresses(netns: str | None = None, run=proc.run) -> list[str]:
    """This node's global addresses (``ip -j addr``), IPv4 first; loopback, link-local and
    the pod network's interfaces left out."""
    argv = (["ip", "-n", netns] if netns else ["ip"]) + ["-j", "addr", "show"]
    try:
        res = run(argv, check=False, timeout=30)
        links = json.loads(res.stdout or "[]") if res.returncode == 0 else []
    except (CommandError, ValueError):
        return []
    out: list[str] = []
    for link in links:
        if SKIP_IFACES.match(link.get("ifname", "")) or "UP" not in (link.get("flags") or []):
            continue
        for a in link.get("addr_info") or []:
            if a.get("scope") != "global" or a.get("family") not in ("inet", "inet6"):
                continue
            if a.get("tentative") or a.get("dadfailed"):
                continue
            out.append(a["local"])
    return sorted(set(out), key=lambda a: (":" in a, a))


def connect_here(addr: str, port: int, timeout: float) -> dict[str, Any]:
    """A new TCP connection from this process: ``{"ok", "local", "error"}``; ``local``: the
    address is this machine's own (the connection never left it)."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    out: dict[str, Any] = {"local": False, "ok": False, "error": ""}
    with socket.socket(fam, socket.SOCK_STREAM) as b:
        try:
            b.bind((addr, 0))
            out["local"] = True
        except OSError:
            pass
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
            out["ok"] = True
        except OSError as exc:
            out["error"] = str(exc) or type(exc).__name__
    return out


def connect_in(netns: str, addr: str, port: int, timeout: float, run=proc.run) -> dict[str, Any]:
    """:func:`connect_here` from inside network namespace ``netns`` (sandbox and tests: a
    namespace stands for the operator's machine)."""
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", _CONNECT, addr, str(port)]
    try:
        res = run([*argv, str(timeout)], check=False, timeout=timeout + 30)
        return json.loads(res.stdout)
    except (CommandError, ValueError) as exc:
        return {"ok": False, "local": False, "error": f"probe in netns {netns} failed: {exc}"}


Connect = Callable[[Target], Mapping[str, Any]]


def probe(ts: Iterable[Target], connect: Connect) -> dict[str, dict[str, Any]]:
    """Run ``connect`` for every target at once; results by :attr:`Target.key`."""
    out: dict[str, dict[str, Any]] = {}

    def one(t: Target) -> None:
        try:
            out[t.key] = dict(connect(t))
        except Exception as exc:  # noqa: BLE001 - a failed probe is a result, not a crash
            out[t.key] = {"ok": False, "local": False, "error": str(exc)}

    threads = [threading.Thread(target=one, args=(t,), daemon=True) for t in ts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return out


@dataclass
class Decision:
    confirm: bool
    why: str
    lost: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"confirm": self.confirm, "why": self.why, "lost": self.lost}


def decide(
    after: Mapping[str, Mapping[str, Mapping[str, Any]]],
    baseline: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
) -> Decision:
    """``after`` / ``baseline``: vantage -> target key -> result of :func:`probe`."""
    usable = {(v, k): r for v, res in after.items() for k, r in res.items() if not r.get("local")}
    if not usable:
        local = [v for v, res in after.items() if res and all(r.get("local") for r in res.values())]
        if local:
            return Decision(
                False,
                f"the prober ({', '.join(sorted(local))}) runs on this node itself: its "
                "connections go over the loopback interface and prove nothing about access "
                "from outside (one host with the master on it)",
                [],
            )
        return Decision(False, "no probe could run (no address of the node to connect to)", [])
    lost = sorted(
        f"{k} from {v}"
        for (v, k), r in usable.items()
        if not r.get("ok") and ((baseline or {}).get(v) or {}).get(k, {}).get("ok")
    )
    ok = sorted(f"{k} from {v}" for (v, k), r in usable.items() if r.get("ok"))
    if lost:
        return Decision(
            False,
            "a new SSH connection that worked before this change fails now: " + ", ".join(lost),
            lost,
        )
    if not ok:
        failed = sorted(
            f"{k} from {v} ({r.get('error') or 'refused'})" for (v, k), r in usable.items()
        )
        before = " (none worked before the change either)" if baseline else ""
        msg = "no new SSH connection succeeded" + before + ": " + "; ".join(failed)
        return Decision(False, msg, [])
    extra = "" if baseline else " (no baseline from before the change: run palplat.full)"
    return Decision(True, "new SSH connection(s) succeeded: " + ", ".join(ok) + extra, [])


# ------------------------------------------------------------------ baseline store


def _path(cache_dir: str, minion: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", minion)
    return os.path.join(cache_dir, f"{safe}.json")


def save_baseline(cache_dir: str, minion: str, results: Mapping[str, Any]) -> None:
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    path = _path(cache_dir, minion)
    proc.write_private(path, json.dumps({"at": time.time(), "results": results}))


def load_baseline(cache_dir: str, minion: str, max_age: float = BASELINE_MAX_AGE) -> dict | None:
    try:
        with open(_path(cache_dir, minion), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if time.time() - float(data.get("at", 0)) > max_age:
        return None
    return data.get("results")


def by_hand(minion: str, info: Mapping[str, Any]) -> str:
    """How to confirm by hand (the message of an unconfirmed orchestrated run)."""
    pending = info.get("pending") or {}
    deadline = pending.get("deadline")
    when = (
        f"at {time.strftime('%H:%M:%S', time.localtime(deadline))} "
        f"(in {max(0, int(deadline - time.time()))}s)"
        if deadline
        else "at its deadline"
    )
    ports = ", ".join(map(str, info.get("ssh_ports") or [22]))
    return (
        f"the firewall change on {minion} is NOT confirmed: it rolls back {when}. Open a NEW "
        f"SSH connection to it (port {ports}, over IPv4 and IPv6 as you use them) from where "
        f"you manage it; if that works, keep the change with `salt '{minion}' "
        "palplat_nftables.confirm` before the deadline and run palplat.full again. If it "
        "does not, do nothing: the previous ruleset comes back by itself. (Set "
        "palplat:firewall:confirm:probe_from to a minion on another machine to let the "
        "run prove access itself; docs/firewall.md)"
    )


def info(cfg, run=proc.run) -> dict[str, Any]:
    """What the master needs to probe this node: whether a change waits for confirmation,
    the SSH port(s) to connect to, this node's addresses and the vantage points."""
    fw = cfg.firewall
    if not fw.enabled:
        return {"enabled": False}
    paths = Paths.of(fw)
    rec = pending(paths)
    ssh = live_ports(cfg, run)
    c = fw.confirm
    return {
        "enabled": True,
        "pending": None
        if rec is None
        else {k: rec.get(k) for k in ("table", "deadline", "mechanism", "netns")},
        # a change its timer rolled back that no confirm has reported yet: the confirm
        # must fail (the run did not keep what it applied), once
        "rolled_back": rec is None and unreported_rollback(paths) is not None,
        "ssh_ports": list(ssh.ports),
        "ssh_source": ssh.source,
        "addresses": list(c.addresses) or node_addresses(fw.netns, run),
        "probe_from": list(c.probe_from),
        "probe_netns": c.probe_netns,
        "timeout": c.timeout,
    }
