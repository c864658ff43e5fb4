"""Benchmark palplat's firewall on a large ruleset, inside a throw-away network namespace.

2,000 allow rules and 10,000 set elements (10 sets of 1,000 addresses): time of the first
apply, of a no-op re-run (plan only: one ``nft -j list``), of a one-rule change, and the
nft processes each started. Needs root, nft and ip.

    sudo .venv/bin/python benchmarks/nftables_bench.py [--rules 2000] [--elements 10000]
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_utils"))

from palplat import config, nft, proc  # noqa: E402


def pillar(netns: str, root: str, rules: int, elements: int, sets: int = 10) -> dict:
    per = elements // sets
    set_map = {}
    for s in range(sets):
        # Every other address, so that no two elements merge into one interval.
        set_map[f"group{s}"] = [f"10.{s}.{(2 * i) // 256}.{(2 * i) % 256}/32" for i in range(per)]
    allow = [
        {
            "name": f"r-{i:04d}",
            "proto": "tcp" if i % 2 else "udp",
            "ports": [20000 + i],
            "from": [f"@group{i % sets}"],
        }
        for i in range(rules)
    ]
    return {
        "palplat": {
            "firewall": {
                "netns": netns,
                "root": root,
                "profile": False,
                "rollback_timer": "process",
                "confirm_seconds": 600,
                "management": {"allow_from": ["192.168.0.0/16"]},
                "sets": set_map,
                "allow": allow,
            },
            "k3s": {"mode": "external"},
            "gpu": {"enabled": False},
        }
    }


def changed_rule(rules: int) -> int:
    """The index of the rule the one-rule change edits: one in the middle (any size)."""
    return rules // 2


def timed(label: str, fn, results: dict):
    before = dict(proc.STATS["by_program"])
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    calls = {k: v - before.get(k, 0) for k, v in proc.STATS["by_program"].items()}
    calls = {k: v for k, v in calls.items() if v}
    results[label] = (dt, calls)
    print(f"{label:<34} {dt * 1000:9.1f} ms   processes: {calls}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=2000)
    ap.add_argument("--elements", type=int, default=10000)
    args = ap.parse_args()
    if args.rules < 1 or args.elements < 10:
        ap.error("--rules must be at least 1 and --elements at least 10 (one per set)")
    ns = f"pp-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    res: dict = {}
    try:
        with tempfile.TemporaryDirectory() as root:
            unit = Path(root, "usr/lib/systemd/system/nftables.service")
            unit.parent.mkdir(parents=True)
            unit.write_text("[Service]\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n"
                            "[Install]\nWantedBy=sysinit.target\n")  # fmt: skip
            p = pillar(ns, root, args.rules, args.elements)
            cfg = timed("validate pillar (config.load)", lambda: config.load(p), res)
            want = nft.desired(cfg)
            n_rules = len(want.rules)
            n_elems = sum(len(nft.addr_elements(s.version, s.elements)) for s in want.sets.values())
            script = nft.render(want)
            print(f"ruleset: {n_rules} nft rules ({args.rules} allow rules), {n_elems} set "
                  f"elements, script {len(script) / 1024:.0f} KiB", flush=True)  # fmt: skip

            plan = timed("first: plan (list, diff, nft -c)", lambda: nft.plan(cfg), res)
            timed("first: apply (arm, load, verify)", lambda: nft.apply(plan), res)
            fw = cfg.firewall
            timed("confirm + persist", lambda: nft.confirm(fw, nft.Paths.of(fw)), res)

            noop = timed("no-op re-run (plan)", lambda: nft.plan(cfg), res)
            assert not noop.changed, noop.changes

            p2 = copy.deepcopy(p)
            changed = changed_rule(args.rules)
            p2["palplat"]["firewall"]["allow"][changed]["ports"] = [40000 + args.rules]
            cfg2 = config.load(p2)
            plan2 = timed("one-rule change: plan", lambda: nft.plan(cfg2), res)
            assert list(plan2.changes["rules"]) == [f"r-{changed:04d}"], plan2.changes.keys()
            timed("one-rule change: apply + persist", lambda: nft.apply(plan2), res)
            again = timed("no-op after change (plan)", lambda: nft.plan(cfg2), res)
            assert not again.changed
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    first = res["first: plan (list, diff, nft -c)"][0] + res["first: apply (arm, load, verify)"][0]
    change = res["one-rule change: plan"][0] + res["one-rule change: apply + persist"][0]
    noop = res["no-op re-run (plan)"][0]
    print(f"\nsummary: first apply {first:.2f} s, no-op re-run {noop:.2f} s, one-rule change "
          f"{change:.2f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
