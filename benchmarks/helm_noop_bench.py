"""No-op converge of 20 Helm releases (+100 plain objects): palplat vs saltext-helm vs floor.

    .venv/bin/python benchmarks/helm_noop_bench.py [--releases 20] [--objects 100] [--runs 5]
        [--saltext DIR]   # a `pip install --target DIR saltext-helm` (skipped when absent)

Starts its own control plane (tests/support/testenv.py: kine + kube-apiserver) and uses the
real helm from tools/build-testbin. Everything is converged first; then, in one run:

- palplat: ``palplat.helm.converge(test=False)`` of the whole map (median of --runs);
- saltext-helm: ``helm.release_present`` for each release, driven through Salt's loader;
- floor: one ``helm list -A -o json`` plus the LIST calls a drift check needs (fingerprint
  Secrets, ConfigMaps, Secrets, Services) with a fresh API client.

Prints the times, the ratios, palplat's helm subprocesses and API requests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "_utils"), str(REPO)]

from palplat import config, helm, kube, proc  # noqa: E402
from tests.support import testenv  # noqa: E402

CHART = REPO / "tests" / "fixtures" / "charts" / "cm"
NAMESPACES = ("bench-a", "bench-b", "bench-c", "bench-d")


def pillar(kubeconfig: str, n: int) -> dict:
    rels = {
        f"rel{i:02d}": {
            "namespace": NAMESPACES[i % len(NAMESPACES)],
            "chart": {"path": str(CHART)},
            "values": {"greeting": f"hello {i}", "extra": {"index": str(i)}},
            "wait": False,
        }
        for i in range(n)
    }
    return {
        "palplat": {
            "gpu": {"enabled": False},
            "k3s": {"kubeconfig": kubeconfig},
            "platform": {"releases": rels},
        }
    }


def palplat_run(cfg, helm_bin: str, env: dict) -> tuple[float, dict, dict]:
    before = dict(proc.STATS["by_program"])
    t0 = time.perf_counter()
    ctx = helm.context_for(cfg, helm_bin=helm_bin, helm_env=env)
    res = helm.converge(config.releases(cfg), ctx, test=False)
    dt = time.perf_counter() - t0
    ctx.kube.close()
    calls = proc.STATS["by_program"].get("helm", 0) - before.get("helm", 0)
    return (
        dt,
        res,
        {"helm": calls, "api": ctx.kube.stats["requests"], "writes": ctx.kube.stats["writes"]},
    )


def floor_run(kubeconfig: str, helm_bin: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [
            helm_bin,
            "list",
            "--all-namespaces",
            "--all",
            "--max",
            "0",
            "-o",
            "json",
            "--kubeconfig",
            kubeconfig,
        ],
        capture_output=True,
        check=True,
        env={**os.environ, **env},
    )
    k = kube.Kube(kubeconfig)
    k.list("v1", "Secret", label_selector=helm.STORE_LABEL)
    k.list("v1", "ConfigMap")
    k.list("v1", "Secret", label_selector="owner!=helm")
    k.list("v1", "Service")
    dt = time.perf_counter() - t0
    k.close()
    return dt


def saltext_loader(target: str, kubeconfig: str, helm_bin: str, work: Path, pil: dict):
    """saltext-helm's state module through Salt's loader (helm from PATH, like a minion)."""
    import salt.config
    import salt.loader

    sys.path.insert(0, target)
    os.environ["PATH"] = f"{Path(helm_bin).parent}:{os.environ['PATH']}"
    os.environ["KUBECONFIG"] = kubeconfig
    opts = salt.config.minion_config(None)
    base = Path(target) / "saltext" / "helm"
    opts.update(
        {
            "file_client": "local",
            "cachedir": str(work / "salt-cache"),
            "module_dirs": [str(base / "modules")],
            "states_dirs": [str(base / "states")],
            "test": False,
            "pillar": pil,
        }
    )
    utils = salt.loader.utils(opts)
    funcs = salt.loader.minion_mods(opts, utils=utils, whitelist=["cmd", "helm", "config"])
    return salt.loader.states(opts, funcs, utils, {})


def saltext_run(states, cfg, work: Path) -> tuple[float, int]:
    files = {}
    for key, rel in config.releases(cfg).items():
        f = work / f"{key}.json"
        f.write_text(json.dumps(rel.values))
        files[key] = str(f)
    t0 = time.perf_counter()
    changed = 0
    for key, rel in config.releases(cfg).items():
        ret = states["helm.release_present"](
            key, str(CHART), namespace=rel.namespace, kvflags={"values": files[key]}
        )
        if not ret["result"]:
            raise SystemExit(f"saltext-helm failed on {key}: {ret['comment']}")
        changed += bool(ret["changes"])
    return time.perf_counter() - t0, changed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--releases", type=int, default=20)
    ap.add_argument("--objects", type=int, default=100)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument(
        "--parallel-check",
        action="store_true",
        help="also time a run that upgrades every release, parallel=1 vs platform.parallel",
    )
    ap.add_argument("--saltext", default=os.environ.get("SALTEXT_HELM_TARGET", "/tmp/saltext-helm"))
    args = ap.parse_args()
    helm_bin = str(testenv.find_bin("helm"))
    work = Path(tempfile.mkdtemp(prefix="palplat-helm-bench-"))
    env = {
        k: str(work / k.lower()) for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
    }
    cp = testenv.ControlPlane(work / "cp")
    cp.start(timeout=120)
    try:
        kc = str(cp.kubeconfig)
        pil = pillar(kc, args.releases)
        cfg = config.load(pil)
        k = kube.Kube(kc)
        for ns in NAMESPACES + ("bench-plain",):
            k.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for i in range(args.objects):
            k.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"plain-{i:03d}", "namespace": "bench-plain"},
                    "data": {"i": str(i)},
                }
            )
        k.close()
        dt, res, _ = palplat_run(cfg, helm_bin, env)
        assert not res["errors"], res["errors"]
        par = cfg.platform.parallel
        print(f"initial install of {args.releases} releases (parallel={par}): {dt:.2f}s")

        pal, floor, stats = [], [], None
        for _ in range(args.runs):  # interleaved, so load changes hit both alike
            dt, res, st = palplat_run(cfg, helm_bin, env)
            assert res["changes"] == {} and not res["errors"], res
            pal.append(dt)
            stats = st
            floor.append(floor_run(kc, helm_bin, env))
        p_med, f_med = statistics.median(pal), statistics.median(floor)
        print(
            f"palplat no-op converge: median {p_med * 1000:.0f} ms over {args.runs} runs "
            f"(min {min(pal) * 1000:.0f} ms)"
        )
        print(
            f"  helm subprocesses: {stats['helm']}, API requests: {stats['api']}, "
            f"API writes: {stats['writes']}"
        )
        print(f"floor (helm list + 4 LISTs): median {f_med * 1000:.0f} ms")
        print(f"palplat / floor: {p_med / f_med:.2f}x (target <= 2x)")

        if args.parallel_check:
            for n, par in ((1, 1), (2, 4)):
                p2 = pillar(kc, args.releases)
                p2["palplat"]["platform"]["parallel"] = par
                for r in p2["palplat"]["platform"]["releases"].values():
                    r["values"]["greeting"] += f" v{n}"
                dt, res, st = palplat_run(config.load(p2), helm_bin, env)
                assert len(res["changes"]) == args.releases and not res["errors"], res["errors"]
                print(f"upgrade of all {args.releases} releases, parallel={par}: {dt:.2f}s")
            palplat_run(cfg, helm_bin, env)  # back to the benchmark's values

        if Path(args.saltext, "saltext", "helm").is_dir():
            states = saltext_loader(args.saltext, kc, helm_bin, work, pil)
            os.environ.update(env)
            s_times = []
            for _ in range(2):
                dt, changed = saltext_run(states, cfg, work)
                s_times.append(dt)
            s_med = statistics.median(s_times)
            before = dict(proc.STATS["by_program"])
            print(
                f"saltext-helm helm.release_present x{args.releases}: median {s_med * 1000:.0f} ms "
                f"over {len(s_times)} runs; releases it reported changed: {changed} "
                "(it upgrades every release on every run)"
            )
            # saltext upgraded every release: palplat sees revision drift and re-converges
            palplat_run(cfg, helm_bin, env)
            dt, res, st = palplat_run(cfg, helm_bin, env)
            assert res["changes"] == {}, res
            del before
            print(f"saltext-helm / palplat: {s_med / p_med:.1f}x (target >= 10x)")
        else:
            print(
                f"saltext-helm not found in {args.saltext}: "
                f"pip install --target {args.saltext} saltext-helm"
            )
    finally:
        cp.stop()


if __name__ == "__main__":
    main()
