"""The GPU proof kit's run on this GPU-less machine, up to where a GPU is needed
(``tools/gpu-proof run --simulate-gpu``): the kit's control plane and real node start,
palplat's GPU stage runs through ``salt-call --local`` from the kit's Python 3.12 tree
(the driver left alone, the toolkit from the kit's directory, the runtime, RuntimeClass,
label and device plugin release for real), and the chain stops at the device plugin pod,
whose container the NVIDIA runtime cannot create without NVML; palplat's check names that
link and the runtime's NVML error.

The kit is built on demand (``tools/gpu-proof build``, docs/gpu.md), not by ``make test``:
without its archives here this test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO, SHARED

pytestmark = [pytest.mark.slow]

ARCHIVES = sorted((REPO / "build" / "gpu-proof").glob("palplat-gpu-proof-*.tar.xz"))
H200 = SHARED / "reference" / "gpu" / "h200-ubuntu-24.04" / "root"


def _python312() -> str | None:
    """A CPython 3.12 that runs (a pyenv shim may exist and refuse)."""
    for cand in (os.environ.get("PALPLAT_KIT_PYTHON"), "python3.12", "python3"):
        exe = shutil.which(cand) if cand else None
        if not exe:
            continue
        res = subprocess.run(
            [exe, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.stdout.strip() == "(3, 12)":
            return exe
    return None


PY312 = _python312()


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    if len(ARCHIVES) < 2:
        pytest.skip("the GPU proof kit is not built here (tools/gpu-proof build)")
    if not H200.is_dir():
        pytest.skip(f"{H200} is absent: no recorded GPU host to simulate")
    if PY312 is None:
        pytest.skip("no python3.12 here: the kit's Python tree is for CPython 3.12")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("the kit's node needs root and unshare")
    out = tmp_path_factory.mktemp("gpu-proof-out")
    work = tmp_path_factory.mktemp("gpu-proof-work")
    env = {**os.environ, "OUT": str(out), "PALPLAT_KIT_PYTHON": PY312}
    res = subprocess.run(
        [
            str(REPO / "tools" / "gpu-proof"),
            "run",
            "--simulate-gpu",
            str(H200),
            "--work",
            str(work),
            "--limit",
            "420",
            "--verify-timeout",
            "40",
            *map(str, ARCHIVES),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if not (out / "result.json").exists():
        pytest.fail(
            f"the run wrote no result.json (rc {res.returncode}):\n{res.stdout[-3000:]}"
            f"\n{res.stderr[-3000:]}"
        )
    result = json.loads((out / "result.json").read_text())
    return res, result, out


def _step(result, name):
    return next(s for s in result["steps"] if s["step"] == name)


def test_the_kit_starts_a_cluster_and_a_real_node(rehearsal):
    res, result, _out = rehearsal
    for name in ("unpack kit", "control plane", "node"):
        assert _step(result, name)["ok"], (name, res.stdout[-4000:])


def test_the_plan_runs_through_salt_from_the_kit(rehearsal):
    _res, result, out = rehearsal
    plan = json.loads((out / "plan-summary.json").read_text())
    by_id = {s["id"]: s for s in plan}
    assert "palplat leaves it alone" in by_id["palplat-gpu-driver"]["comment"]
    assert "would install the toolkit from" in by_id["palplat-gpu-toolkit"]["comment"]


def test_the_stage_stops_at_nvml(rehearsal):
    _res, result, out = rehearsal
    apply = {s["id"]: s for s in json.loads((out / "apply-summary.json").read_text())}
    for sid in (
        "palplat-gpu-driver",
        "palplat-gpu-toolkit",
        "palplat-gpu-runtime",
        "palplat-gpu-node-label",
        "palplat-gpu-device-plugin",
    ):
        assert apply[sid]["result"] is True, apply[sid]
    verified = apply["palplat-gpu-verified"]
    assert verified["result"] is False
    assert "GPU chain broken at 'plugin pod'" in verified["comment"]
    assert "NVML" in verified["comment"]
    check = json.loads((out / "salt" / "check.json").read_text())["local"]
    assert check["first_broken"] == "plugin pod"
    assert result["ok"] is False  # no pod could get a GPU here
