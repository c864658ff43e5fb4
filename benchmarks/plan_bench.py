"""The pull-request plan of the whole example platform on the sandbox: wall time and its
split, for no change and for one change, against the sum of the stages' own no-op costs.

    make sandbox                      # once: the platform converged in .sandbox
    .venv/bin/python benchmarks/plan_bench.py [--dir .sandbox] [--runs 3]

In one run, interleaved:
- plan, no change: ``salt-run palplat.plan --out=json`` (its own split: validate, k3s
  upgrade order, the one ``state.sls palplat test=True`` job);
- each stage's own no-op: ``salt <minion> state.sls palplat.<stage>`` (a real run with
  nothing to do), summed;
- plan, one change: the same plan after one release value changes in the pillar (the
  pillar is restored afterwards).
Target: a no-change plan within 2x the sum of its stages' no-op costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MINION = "palplat-sandbox"
STAGES = ("host", "firewall", "k3s", "gpu", "platform", "service")


def salt(
    etc: Path, prog: str, *args: str, timeout: int = 1800
) -> tuple[float, subprocess.CompletedProcess]:
    t = time.monotonic()
    cp = subprocess.run(
        [str(BIN / prog), "-c", str(etc), *args], capture_output=True, text=True, timeout=timeout
    )
    return time.monotonic() - t, cp


def plan(etc: Path) -> tuple[float, dict]:
    took, cp = salt(etc, "salt-run", "palplat.plan", f"tgt={MINION}", "tgt_type=glob", "--out=json")
    data = json.loads(cp.stdout) if cp.stdout.strip().startswith("{") else {}
    if cp.returncode not in (0, 2):
        raise SystemExit(f"plan failed ({cp.returncode}): {cp.stdout[-2000:]} {cp.stderr[-2000:]}")
    return took, data


def stage_noop(etc: Path, stage: str) -> float:
    took, cp = salt(
        etc, "salt", MINION, "state.sls", f"palplat.{stage}", "--out=json", "-t", "1800"
    )
    if cp.returncode != 0:
        raise SystemExit(f"stage {stage} failed: {cp.stdout[-2000:]}")
    return took


def change_one_value(pillar_file: Path) -> tuple[str, str]:
    original = pillar_file.read_text()
    data = yaml.safe_load(original)
    rels = data["palplat"]["platform"]["releases"]
    name = "kube-prometheus-stack" if "kube-prometheus-stack" in rels else sorted(rels)[0]
    values = rels[name].setdefault("values", {})
    values["palplatBenchmark"] = str(time.time())
    pillar_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return original, name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default=str(REPO / ".sandbox"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    work = Path(args.dir)
    etc = work / "salt" / "etc"
    if not (etc / "master").exists():
        raise SystemExit(f"no sandbox in {work}: run `make sandbox` first")
    plans, splits, sums = [], [], []
    for _ in range(args.runs):
        took, data = plan(etc)
        plans.append(took)
        splits.append(data.get("report", {}).get("timings", {}))
        if data.get("retcode") != 0:
            print(f"warning: the sandbox is not converged (plan exit {data.get('retcode')})")
        sums.append(sum(stage_noop(etc, s) for s in STAGES))
    pillar_file = work / "pillar" / "palplat.sls"
    original, name = change_one_value(pillar_file)
    try:
        salt(etc, "salt", MINION, "saltutil.refresh_pillar", "wait=True")
        changed, data = plan(etc)
        size = len(data.get("markdown", ""))
        summary = data.get("report", {}).get("summary")
    finally:
        pillar_file.write_text(original)
        salt(etc, "salt", MINION, "saltutil.refresh_pillar", "wait=True")
    p, s = statistics.median(plans), statistics.median(sums)
    split = {k: round(statistics.median(x.get(k, 0) for x in splits), 2) for k in splits[0]}
    print(f"plan, no change:   {p:6.1f} s (median of {args.runs}); split {split}")
    print(f"stages' own no-op: {s:6.1f} s summed over {', '.join(STAGES)}")
    print(f"ratio plan / sum of stage no-ops: {p / s:.2f} (target <= 2.0)")
    print(f"plan, one change ({name}): {changed:6.1f} s; {summary}; Markdown {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
