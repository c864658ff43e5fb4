"""Cold build time, warm start time and cache disk use of the test control plane.

    .venv/bin/python benchmarks/controlplane_start.py [--starts 3] [--build-log PATH]...

- cold build: the "<tool> built in Ns" lines that tools/build-testbin logs (its own
  $CACHE/build.log, plus any --build-log given, e.g. a captured stderr);
- warm start: ``ControlPlane.start()`` in a fresh directory, N times (target < 15 s), and
  once more with kwok when it is built;
- disk: du of the testbin cache, the Go module cache and the Go build cache.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import testenv  # noqa: E402

TARGET_S = 15.0
BUILT = re.compile(r"\[build-testbin\] (?P<what>.+?) built in (?P<s>\d+)s")


def build_times(logs: list[Path]) -> dict[str, int]:
    """Latest build time per tool found in the logs (a tool built twice: the last one)."""
    found: dict[str, int] = {}
    for log in logs:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        for m in BUILT.finditer(text):
            what = m["what"]
            if what == "kubernetes":  # older build-testbin: one line for the three commands
                what = "kube-apiserver kube-controller-manager kubectl"
            what = what.removeprefix("kubernetes ")
            found[what] = int(m["s"])
    return found


def du(path: Path) -> str:
    if not path.exists():
        return "absent"
    out = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True, check=False)
    return out.stdout.split("\t", 1)[0] if out.returncode == 0 else "?"


def go_env(name: str) -> Path | None:
    go = shutil.which("go")
    if not go:
        return None
    out = subprocess.run([go, "env", name], capture_output=True, text=True, check=False)
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def time_start(kwok: bool = False) -> float:
    with tempfile.TemporaryDirectory(prefix="palplat-bench-") as tmp:
        cp = testenv.ControlPlane(Path(tmp) / "cp")
        t0 = time.monotonic()
        cp.start(timeout=120, kwok=kwok)
        elapsed = time.monotonic() - t0
        cp.stop()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--build-log", type=Path, action="append", default=[])
    args = parser.parse_args()

    bindir = testenv.testbin_dir()
    cache = bindir.parent
    print(f"testbin: {bindir}")

    print("\n== cold build (tools/build-testbin)")
    times = build_times([cache / "build.log", *args.build_log])
    if times:
        for what, secs in times.items():
            print(f"  {what:55s} {secs:5d} s")
        print(f"  {'total':55s} {sum(times.values()):5d} s")
    else:
        print("  no build log found (pass --build-log with build-testbin's stderr)")

    print(
        f"\n== warm start (kine + kube-apiserver + controller-manager), target < {TARGET_S:.0f} s"
    )
    missing = testenv.missing_bins()
    starts: list[float] = []
    if missing:
        print(f"  skipped: {', '.join(missing)} not built")
    else:
        for i in range(args.starts):
            starts.append(time_start())
            print(f"  start {i + 1}: {starts[-1]:6.2f} s")
        worst = max(starts)
        verdict = "OK" if worst < TARGET_S else "OVER TARGET"
        print(f"  worst {worst:.2f} s, best {min(starts):.2f} s: {verdict}")
        if not testenv.missing_bins(testenv.COMPONENTS + testenv.KWOK_COMPONENTS):
            print(f"  with kwok (+ scheduler, fake node Ready): {time_start(kwok=True):6.2f} s")

    print("\n== disk")
    print(f"  {'testbin cache':20s} {du(cache):>8s}  {cache}")
    for label, var in (("Go module cache", "GOMODCACHE"), ("Go build cache", "GOCACHE")):
        path = go_env(var)
        print(f"  {label:20s} {du(path) if path else 'no go':>8s}  {path or ''}")
    return 0 if not starts or max(starts) < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
