"""The GPU proof: on a bare GPU host (no container runtime, no kubelet, no systemd, no
network), from the kit's archive, run palplat's GPU stage for real and end with a pod
whose log is ``nvidia-smi -L``. See docs/gpu.md ("The proof on a GPU host").

    tools/gpu-proof run [ARCHIVE] [--limit 480] [--simulate-gpu TREE]

Steps (each logged with a timestamp to $OUT/run.log; results in $OUT/result.json):

1. facts of the host; unpack the kit
2. the control plane (kine, kube-apiserver, kube-controller-manager, kube-scheduler) and
   a real node (containerd, runc, CNI, kubelet as plain processes) whose containerd has
   the ``nvidia`` runtime where palplat's toolkit step installs it, as k3s would write it
3. ``salt-call --local state.apply palplat.gpu test=True`` (the plan), then the real run:
   driver (left alone: a driver palplat did not install), toolkit (from the kit's
   directory, ``palplat:gpu:toolkit_from``: no apt), runtime + RuntimeClass, node label,
   device plugin release (the kit's chart and image), ``verified``; then the plan again
   (idempotence: no changes)
4. a pod with ``nvidia.com/gpu: 1`` and ``runtimeClassName: nvidia`` running
   ``nvidia-smi -L``; its log against the host's
5. ``palplat_nvidia.check`` and ``palplat_nvidia.status`` (the status table), and every
   log and diagnostic (kubelet/containerd logs, pods, events, describe-like dumps)

``--simulate-gpu TREE``: a GPU-less rehearsal; detection reads a recorded host's sysfs and
procfs (``shared/reference/gpu/...``), everything else is real, and the chain stops where
the GPU is needed (NVML).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_NAME = "palplat-gpu"
TOOLKIT_DIR = "/usr/local/bin"  # on k3s's PATH; /usr/local/nvidia is read-only there
STEPS: list[dict] = []
T0 = time.monotonic()


class Deadline(Exception):
    pass


class _Done(Exception):
    """The preflight is over."""


class Run:
    def __init__(self, out: Path, work: Path, limit: float):
        self.out, self.work, self.limit = out, work, limit
        self.deadline = T0 + limit
        out.mkdir(parents=True, exist_ok=True)
        self.logf = open(out / "run.log", "a", buffering=1)  # noqa: SIM115

    def left(self, reserve: float = 0) -> float:
        return max(1.0, self.deadline - time.monotonic() - reserve)

    def log(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} +{time.monotonic() - T0:6.1f}s {msg}"
        print(line, flush=True)
        self.logf.write(line + "\n")

    def step(self, name: str):
        return _Step(self, name)

    def save(self, name: str, data) -> Path:
        p = self.out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, (dict, list)):
            p.write_text(json.dumps(data, indent=2, default=str))
        else:
            p.write_text(data if isinstance(data, str) else str(data))
        return p

    def sh(
        self,
        argv: list[str],
        name: str | None = None,
        timeout: float | None = None,
        env: dict | None = None,
    ) -> subprocess.CompletedProcess:
        t = min(timeout or 1e9, self.left(20))
        try:
            res = subprocess.run(
                argv, capture_output=True, text=True, timeout=t, env=env, check=False
            )
        except subprocess.TimeoutExpired as exc:
            res = subprocess.CompletedProcess(
                argv, 124, exc.stdout or "", f"timed out after {t:.0f}s"
            )
        except OSError as exc:
            res = subprocess.CompletedProcess(argv, 127, "", str(exc))
        if name:
            self.save(
                name, f"$ {' '.join(argv)}\n# rc={res.returncode}\n{res.stdout}\n{res.stderr}"
            )
        return res


class _Step:
    def __init__(self, run: Run, name: str):
        self.run, self.name = run, name

    def __enter__(self):
        self.start = time.monotonic()
        self.rec = {"step": self.name, "ok": None, "detail": ""}
        STEPS.append(self.rec)
        self.run.log(f"==> {self.name}")
        if time.monotonic() > self.run.deadline:
            raise Deadline(f"the time limit ({self.run.limit:.0f}s) is spent before {self.name}")
        return self.rec

    def __exit__(self, et, ev, tb):
        self.rec["seconds"] = round(time.monotonic() - self.start, 1)
        if et is None:
            if self.rec["ok"] is None:
                self.rec["ok"] = True
            self.run.log(
                f"<== {self.name}: {'ok' if self.rec['ok'] else 'FAILED'} "
                f"({self.rec['seconds']}s) {self.rec['detail']}"
            )
            return False
        self.rec["ok"] = False
        self.rec["detail"] = f"{et.__name__}: {ev}"[:4000]
        self.rec["raised"] = True
        self.run.log(f"<== {self.name}: FAILED ({self.rec['seconds']}s): {self.rec['detail']}")
        self.run.save(
            f"errors/{len(STEPS):02d}-{self.name.replace(' ', '-')}.txt",
            "".join(traceback.format_exception(et, ev, tb)),
        )
        return False  # a failed step stops the run: diagnostics follow


# ------------------------------------------------------------------------------- steps


def facts(run: Run) -> None:
    lines = [f"python {sys.version.split()[0]}", f"platform {platform.platform()}"]
    for argv in (
        ["uname", "-a"],
        ["nvidia-smi", "-L"],
        ["cat", "/proc/driver/nvidia/version"],
        ["stat", "-fc", "%T", "/sys/fs/cgroup"],
        ["cat", "/proc/1/comm"],
    ):
        res = run.sh(argv, timeout=30)
        lines.append(
            f"$ {' '.join(argv)} (rc {res.returncode})\n{res.stdout.strip()}{res.stderr.strip()}"
        )
    run.save("facts.txt", "\n".join(lines) + "\n")


def unpack(run: Run, archives: list[Path]) -> Path:
    """Unpack each part into ``WORK/kit`` (once per archive: a warm host keeps what an
    earlier call unpacked there, so the two parts can come in two device runs)."""
    kit = run.work / "kit"
    kit.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        stamp = run.work / f"{archive.name}.unpacked"
        sig = f"{archive.stat().st_size} {archive.stat().st_mtime}"
        if stamp.exists() and stamp.read_text() == sig:
            run.log(f"{archive.name} already unpacked in {kit}")
            continue
        with tarfile.open(archive, "r:xz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(run.work, filter="tar")
            else:  # Python < 3.12 (this machine's own tests)
                tar.extractall(run.work)  # noqa: S202 - our own archive
        stamp.write_text(sig)
        run.log(f"unpacked {archive.name} ({archive.stat().st_size / 2**20:.1f} MiB)")
    return kit


def missing_parts(kit: Path, preflight: bool) -> list[str]:
    need = ["py/bin/salt-call", "toolkit/nvidia-ctk", "bin/containerd", "images/pause.tar"]
    if not preflight:
        need += ["bin/kubelet", "bin/kube-apiserver", "bin/kine", "bin/helm"]
    return [n for n in need if not (kit / n).exists()]


def preflight(run: Run, kit: Path, gpu_root: str) -> None:
    """What part 1 alone can show: Salt runs, palplat detects the GPU and plans, the
    driver check and the kit's nvidia-ctk reach NVML (a CDI spec for this host)."""
    salt = write_salt(
        run,
        kit,
        gpu_root,
        run.work / "no-kubeconfig",
        run.work / "k3s",
        60,
        "palplat.invalid/nvidia-device-plugin:v0",
    )
    for fun in (
        "test.version",
        "palplat_nvidia.detect",
        "palplat_nvidia.plan",
        "palplat_nvidia.check",
        "palplat_nvidia.status",
    ):
        with run.step(f"preflight {fun}") as r:
            rc, data = salt_call(run, kit, salt, [fun], f"preflight-{fun}", timeout=90)
            r["ok"] = rc == 0 and data is not None
            r["detail"] = json.dumps((data or {}).get("local"), default=str)[:600]
    with run.step("preflight nvidia-ctk cdi generate") as r:
        res = run.sh(
            [
                str(kit / "toolkit/nvidia-ctk"),
                "cdi",
                "generate",
                "--output",
                str(run.out / "cdi-nvidia.yaml"),
            ],
            name="preflight-cdi-generate.txt",
            timeout=60,
        )
        r["ok"] = res.returncode == 0
        r["detail"] = (res.stderr.strip().splitlines() or [""])[-1][:400]


def write_salt(
    run: Run,
    kit: Path,
    gpu_root: str,
    kubeconfig: Path,
    data_dir: Path,
    verify_timeout: int,
    plugin_ref: str,
) -> Path:
    salt = run.work / "salt"
    pillar = run.work / "pillar"
    for d in (salt, pillar):
        d.mkdir(parents=True, exist_ok=True)
    repo, tag = plugin_ref.rsplit(":", 1)
    pillar_data = {
        "palplat": {
            "k3s": {
                # the kit's node plays k3s: palplat does not run it (external), reads its
                # containerd config where k3s writes it, and uses its kubeconfig
                "mode": "external",
                "kubeconfig": str(kubeconfig),
                "config": {"node-name": NODE_NAME, "data-dir": str(data_dir)},
            },
            "gpu": {
                "enabled": "auto",
                "driver_managed": "auto",
                "toolkit_from": str(kit / "toolkit"),
                # /usr/local/nvidia holds the driver's libraries on the GPU machine, read-only
                "toolkit_dir": TOOLKIT_DIR,
                "root": gpu_root,
                "verify_timeout": verify_timeout,
                "device_plugin": {
                    "chart": {"path": str(kit / "charts" / "nvidia-device-plugin-0.20.0.tgz")},
                    "values": {
                        "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
                        # no kube-proxy, no iptables on the GPU host: the host's network
                        "devicePlugin": {"enableHostNetwork": True},
                    },
                },
            },
            "platform": {"helm": {"path": str(kit / "bin" / "helm")}},
        }
    }
    (pillar / "top.sls").write_text("base:\n  '*':\n    - palplat\n")
    (pillar / "palplat.sls").write_text(json.dumps(pillar_data, indent=2))
    run.save("pillar.json", pillar_data)
    conf = salt / "minion"
    conf.write_text(
        json.dumps(
            {
                "id": NODE_NAME,
                "file_client": "local",
                "root_dir": str(salt),
                "cachedir": str(salt / "cache"),
                "pki_dir": str(salt / "pki"),
                "sock_dir": str(salt / "sock"),
                "log_file": str(run.out / "salt-minion.log"),
                "log_level_logfile": "info",
                "file_roots": {"base": [str(REPO / "salt")]},
                "pillar_roots": {"base": [str(pillar)]},
                "module_dirs": [str(REPO / "_modules")],
                "states_dirs": [str(REPO / "_states")],
                "runner_dirs": [str(REPO / "_runners")],
                "utils_dirs": [str(REPO / "_utils")],
                "state_output": "mixed",
            },
            indent=2,
        )
    )
    return salt


def salt_call(
    run: Run, kit: Path, salt: Path, args: list[str], name: str, timeout: float
) -> tuple[int, dict | None]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{kit / 'py'}{os.pathsep}{REPO / '_utils'}",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
        "PATH": f"{kit / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    argv = [
        sys.executable,
        str(kit / "py" / "bin" / "salt-call"),
        "-c",
        str(salt),
        "--local",
        "--out=json",
        "--retcode-passthrough",
        "-l",
        "warning",
        *args,
    ]
    res = run.sh(argv, name=f"salt/{name}.txt", timeout=timeout, env=env)
    try:
        data = json.loads(res.stdout)
    except ValueError:
        data = None
    if data is not None:
        run.save(f"salt/{name}.json", data)
    return res.returncode, data


def summarize_states(data: dict | None) -> list[dict]:
    out = []
    for key, st in sorted(
        ((data or {}).get("local") or {}).items(),
        key=lambda kv: kv[1].get("__run_num__", 0) if isinstance(kv[1], dict) else 0,
    ):
        if not isinstance(st, dict):
            out.append({"state": key, "result": False, "comment": str(st)})
            continue
        out.append(
            {
                "id": st.get("__id__") or key.split("_|-")[1],
                "result": st.get("result"),
                "changes": sorted((st.get("changes") or {}).keys()),
                "comment": st.get("comment"),
            }
        )
    return out


def nvidia_smi_pod(run: Run, node, smi_ref: str, timeout: float) -> dict:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nvidia-smi", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "runtimeClassName": "nvidia",
            "hostNetwork": True,
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "containers": [
                {
                    "name": "nvidia-smi",
                    "image": smi_ref,
                    "imagePullPolicy": "Never",
                    "command": ["nvidia-smi", "-L"],
                    "resources": {"limits": {"nvidia.com/gpu": 1}},
                }
            ],
        },
    }
    node.create("/api/v1/namespaces/default/pods", body)
    pod = node.wait_pod("default", "nvidia-smi", timeout=timeout, phases=("Succeeded",))
    return pod


def dump_cluster(run: Run, cp, node) -> None:
    """Everything worth reading after a failure (and after a success)."""
    paths = {
        "nodes": "/api/v1/nodes",
        "pods": "/api/v1/pods",
        "events": "/api/v1/events",
        "daemonsets": "/apis/apps/v1/daemonsets",
        "runtimeclasses": "/apis/node.k8s.io/v1/runtimeclasses",
        "configmaps-nvidia": "/api/v1/namespaces/nvidia-device-plugin/configmaps",
    }
    for name, path in paths.items():
        try:
            code, body = cp._get(path, timeout=10)
            run.save(
                f"cluster/{name}.json",
                json.loads(body) if code == 200 else f"HTTP {code} {body[-500:]!r}",
            )
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            run.save(f"cluster/{name}.txt", f"error: {exc}")
    if node is None:
        return
    try:
        code, body = cp._get("/api/v1/pods", timeout=10)
        for pod in json.loads(body).get("items") or [] if code == 200 else []:
            md = pod["metadata"]
            ns, name = md["namespace"], md["name"]
            describe = [
                f"Pod {ns}/{name} on {pod['spec'].get('nodeName')}",
                f"phase {pod.get('status', {}).get('phase')}",
                json.dumps(pod.get("status"), indent=1),
                "Events:",
            ]
            describe += node.events(ns, name)
            run.save(f"pods/{ns}_{name}.describe.txt", "\n".join(describe))
            for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
                run.save(f"pods/{ns}_{name}_{c['name']}.log", node.pod_log(ns, name, c["name"]))
    except Exception as exc:  # noqa: BLE001
        run.save("pods/error.txt", f"error: {exc}")


def copy_logs(run: Run, cp, node) -> None:
    for src in ([cp.logdir] if cp else []) + ([node.logdir] if node else []):
        if src.is_dir():
            for f in src.iterdir():
                if f.is_file():
                    dest = run.out / "logs" / f"{src.parent.name}-{f.name}"
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    _copy_tail(f, dest)
    if node:
        for f in (
            node.containerd_config_path,
            node.work / "kubelet.yaml",
            node.work / "cni/net.d/10-palplat.conflist",
        ):
            if f.exists():
                run.save(f"config/{f.name}", f.read_text())


def _copy_tail(src: Path, dest: Path, limit: int = 4 << 20) -> None:
    with open(src, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - limit))
        dest.write_bytes(fh.read())


# -------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "archives",
        nargs="*",
        type=Path,
        help="the kit's parts (default: build/gpu-proof/palplat-gpu-proof*.tar.xz)",
    )
    ap.add_argument(
        "--preflight",
        action="store_true",
        help="only what part 1 can check (Salt, detection, plan, NVML via nvidia-ctk)",
    )
    ap.add_argument("--limit", type=float, default=480, help="seconds for everything (< 9 min)")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("PALPLAT_GPU_PROOF_WORK", "/var/tmp/palplat-gpu-proof")),
    )
    ap.add_argument(
        "--simulate-gpu",
        metavar="TREE",
        help="GPU-less rehearsal: detection reads this recorded host's tree",
    )
    ap.add_argument("--verify-timeout", type=int, default=120)
    a = ap.parse_args(argv)
    out = Path(os.environ.get("OUT") or "gpu-proof-out").resolve()
    run = Run(out, a.work.resolve(), a.limit)
    archives = a.archives or sorted(
        (REPO / "build" / "gpu-proof").glob("palplat-gpu-proof*.tar.xz")
    )
    run.log(
        f"palplat GPU proof: archives {[str(x) for x in archives]}, work {run.work}, "
        f"out {out}, limit {a.limit:.0f}s{', preflight' if a.preflight else ''}"
    )
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(Deadline("time limit reached")))
    signal.alarm(int(a.limit))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(Deadline("terminated")))
    cp = node = None
    gpu_root = "/"
    proof = {"nvidia_smi_pod": None, "host_nvidia_smi": None}
    try:
        with run.step("facts") as r:
            facts(run)
            host = run.sh(["nvidia-smi", "-L"], timeout=30)
            proof["host_nvidia_smi"] = host.stdout.strip() or None
            r["detail"] = proof["host_nvidia_smi"] or "no nvidia-smi on this host"
        with run.step("unpack kit") as r:
            kit = unpack(run, archives)
            manifest = json.loads((kit / "MANIFEST.json").read_text())
            run.save("kit-manifest.json", manifest)
            missing = missing_parts(kit, a.preflight)
            if missing:
                raise RuntimeError(
                    f"the kit in {kit} lacks {missing}: unpack both parts "
                    "(tools/gpu-proof run PART1 PART2, or one per call)"
                )
            r["detail"] = json.dumps(manifest["versions"])
        gpu_root = "/"
        if a.simulate_gpu:
            gpu_root = str(run.work / "gpu-root")
            shutil.rmtree(gpu_root, ignore_errors=True)
            shutil.copytree(a.simulate_gpu, gpu_root, symlinks=True)
        if a.preflight:
            preflight(run, kit, gpu_root)
            raise _Done()
        sys.path[:0] = [str(kit / "py"), str(REPO)]
        os.environ["PALPLAT_TESTBIN"] = str(kit / "bin")
        from tests.support.node import Node, NodeBins
        from tests.support.testenv import ControlPlane

        with run.step("control plane") as r:
            shutil.rmtree(run.work / "cp", ignore_errors=True)
            cp = ControlPlane(run.work / "cp")
            cp.start(timeout=min(90, run.left(60)))
            cp.start_scheduler()
            r["detail"] = cp.server
        toolkit_dir = Path(gpu_root) / TOOLKIT_DIR.lstrip("/")
        data_dir = run.work / "k3s"
        env = {"PATH": f"/usr/local/nvidia/bin:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        if gpu_root != "/":
            env["NVIDIA_CTK_CONFIG_FILE_PATH"] = (
                f"{gpu_root}/etc/nvidia-container-runtime/config.toml"
            )
        with run.step("node") as r:
            shutil.rmtree(run.work / "node", ignore_errors=True)
            shutil.rmtree(data_dir, ignore_errors=True)
            bins = NodeBins.from_dir(kit / "bin", kit / "cni")
            node = Node(
                cp,
                run.work / "node",
                bins,
                name=NODE_NAME,
                runtimes={"nvidia": str(toolkit_dir / "nvidia-container-runtime")},
                env=env,
                kubelet_dir="/var/lib/kubelet",
                containerd_config_path=data_dir / "agent/etc/containerd/config.toml",
                pod_logs_dir=Path(gpu_root) / "var/log/pods",
            )
            images = sorted((kit / "images").glob("*.tar"))
            node.start(timeout=min(120, run.left(60)), images=images)
            r["detail"] = f"node {NODE_NAME} Ready; images: {node.images().split()}"
        salt = write_salt(
            run,
            kit,
            gpu_root,
            cp.kubeconfig,
            data_dir,
            a.verify_timeout,
            manifest["images"]["device_plugin"],
        )
        with run.step("plan (test=True)") as r:
            rc, data = salt_call(
                run, kit, salt, ["state.apply", "palplat.gpu", "test=True"], "plan", timeout=180
            )
            states = summarize_states(data)
            run.save("plan-summary.json", states)
            r["ok"] = rc == 0 and data is not None
            r["detail"] = f"rc {rc}; " + "; ".join(f"{s['id']}={s['result']}" for s in states)
        with run.step("apply palplat.gpu") as r:
            rc, data = salt_call(
                run,
                kit,
                salt,
                ["state.apply", "palplat.gpu"],
                "apply",
                timeout=a.verify_timeout + 240,
            )
            states = summarize_states(data)
            run.save("apply-summary.json", states)
            r["ok"] = rc == 0 and bool(states) and all(s["result"] is True for s in states)
            bad = [s for s in states if s["result"] is not True]
            r["detail"] = (
                f"rc {rc}; "
                + (
                    "every state True"
                    if not bad
                    else " | ".join(f"{s['id']}: {s['comment']}" for s in bad)
                )[:3000]
            )
        with run.step("plan again (idempotent)") as r:
            rc, data = salt_call(
                run,
                kit,
                salt,
                ["state.apply", "palplat.gpu", "test=True"],
                "plan-again",
                timeout=120,
            )
            states = summarize_states(data)
            changed = [s["id"] for s in states if s["changes"]]
            r["ok"] = rc == 0 and not changed
            r["detail"] = f"rc {rc}; changes in: {changed or 'none'}"
        with run.step("pod nvidia-smi -L") as r:
            applied = next(x for x in STEPS if x["step"] == "apply palplat.gpu")["ok"]
            pod = nvidia_smi_pod(
                run,
                node,
                manifest["images"]["nvidia_smi"],
                timeout=min(120 if applied else 45, run.left(60)),
            )
            log_text = node.pod_log("default", "nvidia-smi")
            run.save("nvidia-smi-pod.log", log_text)
            proof["nvidia_smi_pod"] = log_text.strip()
            same = bool(proof["host_nvidia_smi"]) and log_text.strip() == proof["host_nvidia_smi"]
            r["ok"] = pod["status"]["phase"] == "Succeeded" and "GPU 0:" in log_text
            r["detail"] = f"pod log: {log_text.strip()!r} (same as the host's: {same})"
    except _Done:
        pass
    except Deadline as exc:
        run.log(f"STOPPED: {exc}")
        STEPS.append({"step": "time limit", "ok": False, "detail": str(exc)})
    except Exception as exc:  # noqa: BLE001 - report and collect diagnostics
        run.log(f"ERROR: {exc}")
        run.save("errors/fatal.txt", traceback.format_exc())
        if not (STEPS and STEPS[-1].get("raised")):
            STEPS.append({"step": "fatal", "ok": False, "detail": str(exc)[:2000]})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        run.deadline = time.monotonic() + 60  # diagnostics and clean-up: bounded too
        if cp is not None:
            run.log("==> check, status, diagnostics")
            try:
                kit = run.work / "kit"
                salt = run.work / "salt"
                _rc, check = salt_call(run, kit, salt, ["palplat_nvidia.check"], "check", 60)
                _rc, status = salt_call(run, kit, salt, ["palplat_nvidia.status"], "status", 60)
                table = ((status or {}).get("local") or {}).get("table")
                if table:
                    run.save("status-table.txt", table + "\n")
                    run.log("palplat_nvidia.status:\n" + table)
                chk = (check or {}).get("local") or {}
                if isinstance(chk, dict):
                    for lk in chk.get("links") or []:
                        state = "ok " if lk["ok"] else "BROKEN"
                        run.log(f"  link {lk['name']:<20} {state} {lk['detail']}")
                    proof["first_broken"] = chk.get("first_broken")
            except Exception as exc:  # noqa: BLE001
                run.log(f"check/status failed: {exc}")
            try:
                dump_cluster(run, cp, node)
                kit = run.work / "kit"
                ctk = (
                    Path(gpu_root if a.simulate_gpu else "/")
                    / "usr/local/nvidia/toolkit/nvidia-ctk"
                )
                if ctk.exists():
                    run.sh(
                        [str(ctk), "cdi", "generate", "--output", str(run.out / "cdi-nvidia.yaml")],
                        name="diag/nvidia-ctk-cdi-generate.txt",
                        timeout=30,
                    )
                cfg = (
                    Path(gpu_root if a.simulate_gpu else "/")
                    / "etc/nvidia-container-runtime/config.toml"
                )
                if cfg.exists():
                    run.save("config/nvidia-container-runtime.toml", cfg.read_text())
            except Exception as exc:  # noqa: BLE001
                run.log(f"diagnostics failed: {exc}")
        copy_logs(run, cp, node)
        for what, obj in (("node", node), ("control plane", cp)):
            if obj is not None:
                try:
                    obj.stop()
                except Exception as exc:  # noqa: BLE001
                    run.log(f"stopping the {what}: {exc}")
    ok = all(s.get("ok") for s in STEPS)
    result = {"ok": ok, "seconds": round(time.monotonic() - T0, 1), "steps": STEPS, "proof": proof}
    run.save("result.json", result)
    run.log("")
    run.log("RESULT: " + ("PASS: a pod got the GPU through palplat's GPU stage" if ok else "FAIL"))
    for s in STEPS:
        run.log(f"  {'ok ' if s.get('ok') else 'XX '} {s['step']:<26} {s.get('detail', '')[:300]}")
    run.log(f"everything is under {run.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
