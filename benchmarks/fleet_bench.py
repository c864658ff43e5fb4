"""Several nodes: plan, status and a one-change ``palplat.full`` for 1, 3, 6, 12 and 24
minions, and Salt's returns when every minion answers at once.

    .venv/bin/python benchmarks/fleet_bench.py [--sizes 1,3,6,12,24] [--dir DIR]

Per size, a fresh fleet (tests/support/fleet.py): a real Salt master, N real minions
(1: one server; 3: a server and two agents; 6 and more: three servers, the rest agents,
one agent in three with a GPU), the stand-in k3s on each, one control plane whose audit
log counts the API requests. After ``palplat.full`` converged it, measured:

- plan: ``salt-run palplat.plan`` with nothing to change;
- status: ``salt-run palplat.status``;
- full, one change: one release value changed, ``salt-run state.orchestrate palplat.full``;

each with its wall time, the CPU the master used (the ``salt-run`` process and the
master's daemons), the CPU all minions used, and palplat's API requests (its own client,
by minion, and helm's): those of the minion that holds the cluster, and those of each
other node. Memory per minion, once no job runs: the minion daemon's resident memory,
and the proportional (PSS) memory of the daemon with its job processes (Salt 3007's job
processes stay after their job until the minion's main process has the master's answer
to their return, seconds to a minute on a busy master), and of its stand-in k3s.

Salt at this scale (``palplat.saltjobs.gather``, what every palplat runner uses): one job
to every minion that all answer at the same moment (``test.sleep``), five times:
returns lost (none may be), read from the job cache because an event was missed, and
the longest wait beyond the sleep.

Targets (issue 22): plan wall time for 24 minions within 3x that of 1; API requests that
grow with the nodes only where the work does (the holder's constant, a node's own).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "_utils"), str(REPO)]

from tests.support import fleet as fleetlib  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def topology_for(n: int) -> list[fleetlib.Node]:
    servers = 1 if n < 6 else 3
    return fleetlib.topology(f"{servers}+{n - servers}", gpu_agents=(n - servers) // 3)


# ------------------------------------------------------------------- /proc accounting


def _procs() -> dict[int, tuple[int, list[int]]]:
    """{pid: (ppid, [utime, stime, cutime, cstime, rss pages])}"""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        f = stat.rsplit(")", 1)[1].split()
        out[int(d)] = (int(f[1]), [int(f[11]), int(f[12]), int(f[13]), int(f[14]), int(f[21])])
    return out


def _tree(procs, root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            out.append(pid)
            todo += kids.get(pid, [])
    return out


def cpu_seconds(roots: list[int]) -> float:
    """CPU of these processes, their live descendants and their reaped children."""
    procs = _procs()
    total = 0
    for root in roots:
        for pid in _tree(procs, root):
            u, s, cu, cs, _ = procs[pid][1]
            total += u + s + cu + cs
    return total / TICK


def pss_mib(roots: list[int]) -> tuple[float, int]:
    """Proportional set size of these processes and their descendants (forked processes
    share pages: PSS counts a shared page once across them), and how many processes."""
    procs = _procs()
    pids = [p for r in roots for p in _tree(procs, r)]
    kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    kib += int(line.split()[1])
                    break
        except OSError:
            kib += procs[pid][1][4] * PAGE // 1024  # no smaps: RSS
    return kib / 1024, len(pids)


def wait_idle(f: Fleet, timeout: float = 60) -> None:
    """Until no minion runs a job (Salt's proc directory empty) and their job processes
    have exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = [f.salt_dir / m / "root/var/cache/salt/minion/proc" for m in f.nodes]
        if not any(any(d.glob("*")) for d in procs):
            break
        time.sleep(0.5)
    time.sleep(3)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------------ measuring


class Fleet(fleetlib.Fleet):
    def master_pid(self) -> int | None:
        return _pid(self._pidfile("master"))

    def minion_pids(self) -> list[int]:
        return [p for p in (_pid(self._pidfile(m)) for m in self.nodes) if p]

    def k3s_pids(self) -> list[int]:
        out = []
        for m in self.nodes:
            for unit in fleetlib.UNITS:
                p = _pid(self.units(m).state_dir / f"{unit}.pid")
                if p:
                    out.append(p)
        return out


def measure(f: Fleet, label: str, fn) -> dict:
    holder = f.first.name
    mark = f.audit_mark()
    master, minions = [f.master_pid()], f.minion_pids()
    cpu_m0, cpu_n0 = cpu_seconds(master), cpu_seconds(minions)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    cp = fn()
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    time.sleep(0.5)  # the audit log's last lines
    reqs = f.requests_since(mark)
    own = reqs.get(f"palplat ({holder})", 0)
    others = {
        k[len("palplat (") : -1]: v
        for k, v in reqs.items()
        if k.startswith("palplat (") and k != f"palplat ({holder})"
    }
    return {
        "what": label,
        "rc": cp.returncode,
        "wall": wall,
        "master_cpu": run_cpu + cpu_seconds(master) - cpu_m0,
        "minions_cpu": cpu_seconds(minions) - cpu_n0,
        "holder_req": own,
        "helm_req": reqs.get("helm", 0),
        "other_req": sum(others.values()),
        "other_max": max(others.values(), default=0),
        "others": others,
    }


def returns_at_once(f: Fleet, rounds: int = 5, sleep: float = 2.0) -> dict:
    """Every minion answers a job at the same moment: lost returns, returns read from the
    job cache, and the longest wait past the sleep (``palplat.saltjobs.gather``)."""
    import salt.client
    import salt.config

    from palplat import saltjobs

    opts = salt.config.client_config(str(f.master_etc / "master"))
    client = salt.client.LocalClient(mopts=opts)
    lost = cached = 0
    worst = 0.0
    n = len(f.nodes)
    for _ in range(rounds):
        got = saltjobs.gather(client, "*", "test.sleep", [sleep], "glob", timeout=30)
        lost += n - len(got.returns)
        cached += len(got.from_cache)
        worst = max(worst, got.seconds - sleep)
    client.destroy()
    return {"lost": lost, "from_cache": cached, "worst_wait_past_sleep": worst, "rounds": rounds}


def one_size(work: Path, n: int) -> dict:
    nodes = topology_for(n)
    f = Fleet(work, nodes, heartbeat=10, audit=True)
    t0 = time.monotonic()
    try:
        f.start()
        up = f.orchestrate()
    except BaseException:
        f.stop()
        raise
    if up.returncode != 0:
        f.stop()
        raise SystemExit(f"[bench] {n}: palplat.full failed:\n{up.stdout[-4000:]}")
    print(f"[bench] {n} minion(s) converged in {time.monotonic() - t0:.0f}s", flush=True)
    rows = [
        measure(f, "plan", lambda: f.run("palplat.plan")),
        measure(f, "status", lambda: f.run("palplat.status")),
    ]
    common = f.common_pillar()
    common["platform"]["releases"]["hello"]["values"]["greeting"] = f"changed-{n}"
    f.write_pillar(common)
    f.refresh_pillar()
    rows.append(measure(f, "full, 1 change", lambda: f.orchestrate()))
    at_once = returns_at_once(f)
    wait_idle(f)
    mem, procs = pss_mib(f.minion_pids())
    table = _procs()
    daemon_rss = sum(table[p][1][4] for p in f.minion_pids() if p in table) * PAGE / 2**20 / n
    mem_minion, procs_minion = mem / n, procs / n
    mem_k3s = pss_mib(f.k3s_pids())[0] / n
    servers, agents = len(f.servers), len(f.agents)
    f.stop()
    return {
        "n": n,
        "topology": f"{servers}+{agents}",
        "rows": rows,
        "at_once": at_once,
        "mem_minion": mem_minion,
        "procs_minion": procs_minion,
        "daemon_rss": daemon_rss,
        "mem_k3s": mem_k3s,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,3,6,12,24")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        results.append(one_size(base / f"n{n}", n))
        print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def print_table(results: list[dict]) -> None:
    print()
    print(
        "| minions | topology | run | wall s | master CPU s | minions CPU s | "
        "API req holder | API req others (max per node) | helm req |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for row in r["rows"]:
            print(
                f"| {r['n']} | {r['topology']} | {row['what']} | {row['wall']:.1f} | "
                f"{row['master_cpu']:.1f} | {row['minions_cpu']:.1f} | {row['holder_req']} | "
                f"{row['other_req']} ({row['other_max']}) | {row['helm_req']} |"
            )
    print()
    print("| minions | minion daemon RSS MiB | with its job processes (PSS) MiB | processes | "
          "stand-in k3s MiB | returns at once: lost | from job cache | "
          "worst wait past the sleep s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        a = r["at_once"]
        print(
            f"| {r['n']} | {r.get('daemon_rss', 0):.0f} | {r['mem_minion']:.0f} | "
            f"{r['procs_minion']:.1f} | "
            f"{r['mem_k3s']:.0f} | {a['lost']} | "
            f"{a['from_cache']} | {a['worst_wait_past_sleep']:.2f} |"
        )
    plans = {r["n"]: r["rows"][0]["wall"] for r in results}
    if 1 in plans and len(plans) > 1:
        top = max(plans)
        print(
            f"\nplan wall time, {top} minions / 1 minion: {plans[top] / plans[1]:.2f} (target <= 3)"
        )
    print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
