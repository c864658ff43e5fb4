"""The example platform on its real charts: cold install, no-op converge, one-change plan,
in one run; palplat's no-op against the floor and against `helmfile sync`.

    .venv/bin/python benchmarks/platform_bench.py [--runs 9] [--helmfile]

Starts its own control plane shaped like the example's host (tests/support/testenv.py:
kwok node with a GPU, local-path storage) and serves ../shared/reference/charts on
loopback (tests/support/chartrepo.py), which the pillar reaches through
``palplat:platform:mirrors``. Then:

- cold install: ``palplat.platform.converge`` of the example pillar (15 releases, the
  CloudNativePG Clusters, ingresses and Probes);
- no-op: the same again (median of --runs), interleaved with the floor: one
  ``helm list -A`` plus one LIST per kind that a drift check must read (the fingerprint
  Secrets, every kind the releases own, the kinds of palplat's own objects), with a fresh
  API client: what any tool that checks the live state must at least do;
- one-change plan: ``prometheus.prometheusSpec.retention`` 15d -> 30d in test mode (time,
  helm calls, plan size);
- ``--helmfile`` (``tools/build-testbin helmfile`` first): ``helmfile sync`` of the same
  releases, values and ``needs`` on the unchanged platform (every helm call counted through
  a wrapper), then palplat converges again (helmfile bumped every revision).

helm-diff (the plugin ``helmfile diff``/``apply`` need) is not available here, so
helmfile's own no-op path is not measured; ``sync`` is what helmfile does without it.
"""

from __future__ import annotations

import argparse
import copy
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
from palplat.helm.chart import merged_values  # noqa: E402
from palplat.platform import converge as platform  # noqa: E402
from palplat.platform import objects  # noqa: E402
from tests.support import testenv  # noqa: E402
from tests.support.chartrepo import CHARTS, SKIP_REASON, ChartRepo, example_pillar  # noqa: E402


def palplat_run(cfg, helm_bin: str, env: dict, test: bool = False) -> dict:
    before = proc.STATS["by_program"].get("helm", 0)
    t0 = time.perf_counter()
    ctx = helm.context_for(cfg, helm_bin=helm_bin, helm_env=env)
    try:
        res = platform.converge(cfg, ctx, test=test)
    finally:
        ctx.kube.close()
    res["seconds"] = time.perf_counter() - t0
    res["helm"] = proc.STATS["by_program"].get("helm", 0) - before
    res["api"] = ctx.kube.stats["requests"]
    res["writes"] = ctx.kube.stats["writes"]
    return res


def floor_kinds(kubeconfig: str, cfg) -> list[tuple[str, str]]:
    """Every kind a drift check of the installed platform must LIST: those recorded in the
    fingerprint stores, plus the kinds of palplat's own objects."""
    k = kube.Kube(kubeconfig)
    kinds = set()
    for s in k.list("v1", "Secret", label_selector=helm.STORE_LABEL):
        for o in helm.decode_state(s).get("objects") or []:
            kinds.add((o["apiVersion"], o["kind"]))
    for g in objects.groups(cfg, config.releases(cfg)).values():
        kinds |= {(m["apiVersion"], m["kind"]) for m in g.manifests}
    k.close()
    return sorted(kinds)


def floor_run(kubeconfig: str, helm_bin: str, env: dict, kinds) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [helm_bin, "list", "--all-namespaces", "--all", "--max", "0", "-o", "json",
         "--kubeconfig", kubeconfig],
        capture_output=True, check=True, env={**os.environ, **env},
    )  # fmt: skip
    k = kube.Kube(kubeconfig)
    k.list("v1", "Secret", label_selector=helm.STORE_LABEL)
    for api, kind in kinds:
        sel = "owner!=helm" if (api, kind) == ("v1", "Secret") else None
        k.list(api, kind, label_selector=sel)
    dt = time.perf_counter() - t0
    k.close()
    return dt


def plan_size(changes: dict) -> tuple[int, int, int]:
    """(objects, fields, bytes of JSON) of a plan's changes."""
    objs = fields = 0
    for v in changes.values():
        for diff in (v.get("objects") or {}).values() if "action" in v else v.values():
            objs += 1
            fields += len(diff) if isinstance(diff, dict) else 1
    return objs, fields, len(json.dumps(changes, default=str))


def helmfile_config(cfg, repo: ChartRepo, work: Path) -> Path:
    """helmfile.yaml with the platform's releases, merged values (0600 files) and needs."""
    import yaml

    rels = config.releases(cfg)
    out = {
        "repositories": [{"name": "local", "url": repo.url}],
        "helmDefaults": {"wait": True, "atomic": True, "timeout": 600, "createNamespace": True},
        "releases": [],
    }
    vals = work / "helmfile-values"
    vals.mkdir(mode=0o700, exist_ok=True)
    for key, rel in rels.items():
        c = rel.chart
        f = vals / f"{key}.json"
        proc.write_private(str(f), json.dumps(merged_values(rel)))
        out["releases"].append(
            {
                "name": rel.release_name or key,
                "namespace": rel.namespace,
                "chart": repo.oci(c.oci) if c.oci else f"local/{c.name}",
                "version": c.version,
                "values": [str(f)],
                "needs": [f"{rels[n].namespace}/{rels[n].release_name or n}" for n in rel.needs],
            }
        )
    path = work / "helmfile.yaml"
    path.write_text(yaml.safe_dump(out, sort_keys=False))
    return path


def helmfile_sync(helmfile: str, helm_bin: str, path: Path, work: Path, env: dict, kc: str):
    """``helmfile sync``: (seconds, helm invocations by subcommand)."""
    log = work / "helm-calls.log"
    log.write_text("")
    shim = work / "helm"
    shim.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {helm_bin} "$@"\n')
    shim.chmod(0o755)
    t0 = time.perf_counter()
    out = subprocess.run(
        [helmfile, "--file", str(path), "--helm-binary", str(shim), "sync", "--concurrency", "4"],
        capture_output=True, text=True, env={**os.environ, **env, "KUBECONFIG": kc},
    )  # fmt: skip
    dt = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"helmfile sync failed:\n{out.stderr[-3000:]}")
    calls: dict[str, int] = {}
    for line in log.read_text().split():
        calls[line] = calls.get(line, 0) + 1
    return dt, calls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--helmfile", action="store_true", help="compare with `helmfile sync`")
    args = ap.parse_args()
    if not CHARTS.is_dir():
        raise SystemExit(SKIP_REASON)
    helm_bin = str(testenv.find_bin("helm"))
    work = Path(tempfile.mkdtemp(prefix="palplat-platform-bench-"))
    env = {
        k: str(work / k.lower()) for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
    }
    cp = testenv.ControlPlane(work / "cp")
    cp.start(timeout=120, kwok=True, gpu_nodes=1)
    repo = ChartRepo(helm_bin=helm_bin, work=work / "repo").start()
    try:
        kc = str(cp.kubeconfig)
        pillar = example_pillar(kc, repo)
        cfg = config.load(pillar)
        n = len(config.releases(cfg))

        res = palplat_run(cfg, helm_bin, env)
        assert not res["errors"], res["errors"]
        objs = sum(len(a) for a in res["objects"].values())
        print(
            f"cold install of {n} releases + {objs} objects beside them: {res['seconds']:.1f}s "
            f"(helm subprocesses {res['helm']}, API requests {res['api']}, writes {res['writes']})"
        )

        kinds = floor_kinds(kc, cfg)
        pal, floor, last = [], [], None
        for _ in range(args.runs):  # interleaved, so load changes hit both alike
            last = palplat_run(cfg, helm_bin, env)
            assert last["changes"] == {} and not last["errors"], last
            pal.append(last["seconds"])
            floor.append(floor_run(kc, helm_bin, env, kinds))
        p_med, f_med = statistics.median(pal), statistics.median(floor)
        print(
            f"no-op converge: median {p_med * 1000:.0f} ms over {args.runs} runs "
            f"(min {min(pal) * 1000:.0f} ms); helm subprocesses {last['helm']}, "
            f"API requests {last['api']}, writes {last['writes']}"
        )
        print(f"floor (helm list + {len(kinds) + 1} LISTs): median {f_med * 1000:.0f} ms")
        print(f"palplat / floor: {p_med / f_med:.2f}x (target <= 2x)")

        changed = copy.deepcopy(pillar)
        spec = changed["palplat"]["platform"]["releases"]["kube-prometheus-stack"]["values"]
        spec["prometheus"]["prometheusSpec"]["retention"] = "30d"
        plan = palplat_run(config.load(changed), helm_bin, env, test=True)
        o, f, b = plan_size(plan["changes"])
        print(
            f"one-change plan (retention 15d -> 30d): {plan['seconds']:.2f}s; helm "
            f"subprocesses {plan['helm']}, API requests {plan['api']}, writes {plan['writes']}; "
            f"plan: {len(plan['changes'])} release(s), {o} object(s), {f} field(s), {b} bytes"
        )

        if args.helmfile:
            found = testenv.find_bin("helmfile")
            if found is None:
                print("helmfile not built: run tools/build-testbin helmfile")
                return
            path = helmfile_config(cfg, repo, work)
            times = []
            for _ in range(2):
                dt, calls = helmfile_sync(str(found), helm_bin, path, work, env, kc)
                times.append(dt)
            h_med = statistics.median(times)
            print(
                f"helmfile sync (unchanged platform): median {h_med:.1f}s over {len(times)} "
                f"runs; helm calls per run: {json.dumps(calls, sort_keys=True)}"
            )
            print(f"helmfile sync / palplat no-op: {h_med / p_med:.0f}x (target >= 10x)")
            after = palplat_run(cfg, helm_bin, env)
            ups = sorted(after["changes"])
            print(
                f"palplat after helmfile: {len(ups)} release(s) upgraded in "
                f"{after['seconds']:.1f}s (helm revision changed outside palplat)"
            )
            print("helmfile diff/apply: not measured (the helm-diff plugin is not served here)")
    finally:
        repo.stop()
        cp.stop()


if __name__ == "__main__":
    main()
