"""Assemble the GPU proof kit's archive from what ``tools/gpu-proof build`` built.

Layout of the archive (one top directory, ``kit/``)::

    kit/MANIFEST.json         versions, sizes, what each part is
    kit/bin/palplat-kube      kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
                              kine, containerd, ctr (symlinks to the one multi-call binary)
    kit/bin/containerd-shim-runc-v2  runc  helm
    kit/cni/                  loopback bridge host-local
    kit/toolkit/              nvidia-ctk nvidia-container-runtime nvidia-cdi-hook
    kit/images/*.tar          OCI layouts: pause, the device plugin, the nvidia-smi base
    kit/charts/               the device plugin chart (shared/reference/charts)
    kit/py/                   Salt and palplat's Python dependencies for CPython 3.12

palplat itself is not in the archive: the kit runs from a checkout (the repository travels
to the GPU host as a working tree).
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support import ociimage  # noqa: E402
from tests.support.node import PAUSE_REF  # noqa: E402

LIMIT = 64 * 1024 * 1024
PLUGIN_REF = "palplat.invalid/nvidia-device-plugin:{v}"
SMI_REF = "palplat.invalid/nvidia-base:1"
CHART = "nvidia-device-plugin-0.20.0.tgz"
MULTI = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kine",
    "containerd",
    "ctr",
)
# Salt's runtime for `salt-call --local` and palplat's own dependencies (pyproject.toml),
# as cp312 wheels (Salt itself: a wheel built here from its source archive). Not the
# importlib-metadata backport: on 3.12 its finder hands the stdlib PathDistributions it
# cannot sort (pydantic's plugin scan fails); Salt uses the stdlib module there.
PY_DEPS = [
    "PyYAML>=6.0.3",
    "Jinja2>=3.1.6",
    "MarkupSafe<4",
    "msgpack>=1.1.2",
    "tornado>=6.5.6",
    "pyzmq>=25.1.2,<26",
    "distro",
    "looseversion",
    "packaging>=26.2",
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "charset-normalizer",
    "cryptography>=48",
    "cffi",
    "pycparser>=3",
    "pycryptodomex",
    "jmespath",
    "psutil",
    "python-dateutil",
    "six",
    "jaraco.text",
    "jaraco.functools",
    "jaraco.context",
    "more-itertools",
    "autocommand",
    "zipp",
    "setproctitle",
    "immutables",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-extensions",
    "typing-inspection",
    "python-gnupg",
    # palplat's Kubernetes client (kubeconfig loading, the API client)
    "kubernetes==37.0.2",
    "websocket-client",
    "requests-oauthlib",
    "oauthlib",
    "durationpy",
    "aiohttp",
    "aiohttp-retry",
    "multidict",
    "yarl",
    "propcache",
    "frozenlist",
    "aiosignal",
    "aiohappyeyeballs",
    "attrs",
]
PLATFORMS = [
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
]
GLIBC_LIBS = (
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libresolv.so.2",
    "libgcc_s.so.1",
)


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} [gpu-proof build] {msg}", file=sys.stderr, flush=True)


def cache_dir(cache: Path, name: str, version: str) -> Path:
    d = cache / f"{name}-{version}"
    if not d.is_dir():
        raise SystemExit(f"{d} is missing: run tools/gpu-proof go first")
    return d


def newest(cache: Path, prefix: str) -> Path:
    found = sorted(
        (p for p in cache.glob(prefix + "*") if p.is_dir() and not p.name.endswith(".tmp")),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        raise SystemExit(f"no {prefix}* in {cache}: run tools/gpu-proof go first")
    return found[-1]


def copy_exe(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(0o755)


def glibc_layer(image: ociimage.Image) -> None:
    """The C library for glibc programs in the image (the device plugin; nvidia-smi and
    the driver's libraries, which the NVIDIA runtime mounts from the host)."""
    libdir = Path("/lib/x86_64-linux-gnu")
    for name in GLIBC_LIBS:
        src = (libdir / name).resolve()
        if src.exists():
            image.add_file(f"/lib/x86_64-linux-gnu/{name}", src, 0o755)
    image.add_file(
        "/lib64/ld-linux-x86-64.so.2", (libdir / "ld-linux-x86-64.so.2").resolve(), 0o755
    )
    image.add_bytes("/etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n")
    image.add_dir("/etc/ld.so.conf.d")
    image.add_bytes("/etc/passwd", b"root:x:0:0:root:/:/bin/false\n")
    image.add_bytes("/etc/group", b"root:x:0:\n")
    for d in ("/tmp", "/proc", "/sys", "/dev", "/run", "/usr/local/nvidia"):
        image.add_dir(d, 0o1777 if d == "/tmp" else 0o755)


NV_ENV = {
    "PATH": "/usr/local/nvidia/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu",
    "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
}


def images(kit: Path, cache: Path, ndp_version: str, pause_dir: Path) -> dict[str, str]:
    out = {}
    img = kit / "images"
    pause = ociimage.Image(PAUSE_REF, entrypoint=["/pause"])
    pause.add_file("/pause", pause_dir / "pause", 0o755)
    pause.write(img / "pause.tar")
    out["pause"] = PAUSE_REF
    ndp = cache_dir(cache, "nvidia-device-plugin", ndp_version)
    ref = PLUGIN_REF.format(v=ndp_version)
    plugin = ociimage.Image(ref, entrypoint=["/usr/bin/nvidia-device-plugin"], env=dict(NV_ENV))
    glibc_layer(plugin)
    plugin.add_file("/usr/bin/nvidia-device-plugin", ndp / "nvidia-device-plugin", 0o755)
    # config-manager (37 MiB) serves only a time-slicing config map; the kit's pillar has none
    plugin.write(img / "nvidia-device-plugin.tar")
    out["device_plugin"] = ref
    base = ociimage.Image(SMI_REF, cmd=["nvidia-smi", "-L"], env=dict(NV_ENV))
    glibc_layer(base)
    base.write(img / "nvidia-base.tar")
    out["nvidia_smi"] = SMI_REF
    return out


def python_tree(kit: Path, cache: Path, python: str) -> str:
    """Salt (its wheel built here once, cached) and the dependencies, for CPython 3.12."""
    whl_dir = cache / "gpu-proof-wheels"
    whl_dir.mkdir(parents=True, exist_ok=True)
    salt_version = _salt_version()
    salt_whl = whl_dir / f"salt-{salt_version}-py3-none-any.whl"
    if not salt_whl.exists():
        log(f"building the Salt {salt_version} wheel from its source archive")
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                f"salt=={salt_version}",
                "-w",
                str(whl_dir),
            ],
            check=True,
        )
    target = kit / "py"
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--no-deps",
            "--target",
            str(target),
            str(salt_whl),
        ],
        check=True,
    )
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--no-deps",
            "--target",
            str(target),
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            "--abi",
            "cp312",
            "--only-binary=:all:",
            *plat,
            *PY_DEPS,
        ],
        check=True,
    )
    junk_dirs = [
        target.rglob("__pycache__"),
        target.glob("*/tests"),
        target.glob("*/test"),
        target.glob("*/e2e_test"),
    ]
    for junk in [j for g in junk_dirs for j in g]:
        shutil.rmtree(junk, ignore_errors=True)
    return salt_version


def _salt_version() -> str:
    try:
        from importlib.metadata import version

        return version("salt")
    except Exception:  # noqa: BLE001 - no salt in this Python: the project's pin
        return "3007.16"


# Two parts: the whole kit does not fit the 64 MiB one device run carries (~110 MiB as xz:
# Kubernetes, helm and Salt are each tens of MiB). Part 1 can be checked on its own
# (``run --preflight``: Salt, detection, the toolkit and NVML); part 2 completes it.
PARTS = {
    1: (
        "py",
        "toolkit",
        "images",
        "charts",
        "cni",
        "bin/runc",
        "bin/containerd",
        "bin/containerd-shim-runc-v2",
        "bin/ctr",
    ),
    2: (
        "bin/palplat-kube",
        "bin/helm",
        "bin/kube-apiserver",
        "bin/kube-controller-manager",
        "bin/kube-scheduler",
        "bin/kubelet",
        "bin/kine",
    ),
}
PART_LIMIT = 60 * 1024 * 1024


def part_of(rel: str) -> int:
    for n, prefixes in PARTS.items():
        if any(rel == p or rel.startswith(p + "/") for p in prefixes):
            return n
    return 1


def pack(kit_parent: Path, dest: Path, part: int, preset: int) -> int:
    """One part of ``kit/`` as an xz-compressed tar (x86 filter, a big dictionary: the
    binaries share code); MANIFEST.json goes into every part."""
    tmp = dest.with_suffix(".tmp")
    filters = [
        {"id": lzma.FILTER_X86},
        {"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": 192 * 1024 * 1024},
    ]
    kit = kit_parent / "kit"
    with (
        lzma.open(tmp, "wb", format=lzma.FORMAT_XZ, filters=filters) as xz,
        tarfile.open(fileobj=xz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.add(kit / "MANIFEST.json", arcname="kit/MANIFEST.json")
        for p in sorted(kit.rglob("*")):
            rel = str(p.relative_to(kit))
            if p.is_dir() and not p.is_symlink() or rel == "MANIFEST.json":
                continue
            if part_of(rel) == part:
                tar.add(p, arcname=f"kit/{rel}", recursive=False)
    os.replace(tmp, dest)
    return dest.stat().st_size


def _pack_job(args: tuple) -> tuple[int, int]:
    kit_parent, dest, part, preset = args
    return part, pack(Path(kit_parent), Path(dest), part, preset)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="assemble the GPU proof kit archive")
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=REPO / "build" / "gpu-proof")
    for k in ("k8s", "containerd", "runc", "cni", "toolkit", "device-plugin"):
        ap.add_argument(f"--{k}", required=True)
    # any Python with pip: it builds Salt's (pure) wheel and fetches cp312 wheels by tag
    ap.add_argument("--python", default=os.environ.get("PALPLAT_BUILD_PYTHON", sys.executable))
    ap.add_argument("--preset", type=int, default=9)
    a = ap.parse_args(argv)
    started = time.monotonic()
    stage = a.out / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    kit = stage / "kit"
    (kit / "bin").mkdir(parents=True)
    multi = newest(a.cache, f"palplat-kube-{a.k8s}-")
    copy_exe(multi / "palplat-kube", kit / "bin" / "palplat-kube")
    have = subprocess.run([str(kit / "bin/palplat-kube")], capture_output=True, text=True).stderr
    for name in MULTI:
        if name in have:
            (kit / "bin" / name).symlink_to("palplat-kube")
    if "containerd" not in have:  # the multi-call binary was built without it
        cd = cache_dir(a.cache, "containerd", a.containerd)
        for name in ("containerd", "ctr"):
            copy_exe(cd / name, kit / "bin" / name)
    if "kine" not in have:
        copy_exe(cache_dir(a.cache, "kine", "v0.17.5") / "kine", kit / "bin" / "kine")
    copy_exe(
        cache_dir(a.cache, "containerd", a.containerd) / "containerd-shim-runc-v2",
        kit / "bin" / "containerd-shim-runc-v2",
    )
    copy_exe(cache_dir(a.cache, "runc", a.runc) / "runc", kit / "bin" / "runc")
    copy_exe(newest(a.cache, "helm-") / "helm", kit / "bin" / "helm")
    for name in ("loopback", "bridge", "host-local"):
        copy_exe(cache_dir(a.cache, "cni-plugins", a.cni) / name, kit / "cni" / name)
    for name in ("nvidia-ctk", "nvidia-container-runtime", "nvidia-cdi-hook"):
        copy_exe(
            cache_dir(a.cache, "nvidia-container-toolkit", a.toolkit) / name, kit / "toolkit" / name
        )
    refs = images(kit, a.cache, a.device_plugin, newest(a.cache, "palplat-pause-"))
    chart = REPO.parent / "shared" / "reference" / "charts" / CHART
    if not chart.exists():
        raise SystemExit(f"{chart} is missing (the device plugin chart comes from shared/)")
    (kit / "charts").mkdir()
    shutil.copyfile(chart, kit / "charts" / CHART)
    salt_version = python_tree(kit, a.cache, a.python)
    manifest = {
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {
            "kubernetes": a.k8s,
            "containerd": a.containerd,
            "runc": a.runc,
            "cni-plugins": a.cni,
            "nvidia-container-toolkit": a.toolkit,
            "nvidia-device-plugin": a.device_plugin,
            "salt": salt_version,
            "chart": CHART,
        },
        "images": refs,
        "multi_call": [n for n in MULTI if (kit / "bin" / n).is_symlink()],
        "parts": {str(n): list(p) for n, p in PARTS.items()},
        "sizes": {
            str(p.relative_to(kit)): p.stat().st_size
            for p in sorted(kit.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.stat().st_size > 1 << 20
        },
    }
    (kit / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    raw = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file() and not p.is_symlink())
    log(f"kit staged: {raw / 2**20:.1f} MiB uncompressed; compressing (xz)")
    from concurrent.futures import ProcessPoolExecutor

    for old in a.out.glob("palplat-gpu-proof*.tar.xz"):
        old.unlink()
    jobs = [(str(stage), str(a.out / f"palplat-gpu-proof-{n}.tar.xz"), n, a.preset) for n in PARTS]
    with ProcessPoolExecutor(len(jobs)) as pool:
        sizes = dict(pool.map(_pack_job, jobs))
    took = time.monotonic() - started
    ok = all(v <= PART_LIMIT for v in sizes.values())
    for n, size in sorted(sizes.items()):
        log(f"part {n}: {size / 2**20:.1f} MiB ({'fits' if size <= PART_LIMIT else 'OVER'} 60 MiB)")
    log(
        f"two archives ({sum(sizes.values()) / 2**20:.1f} MiB together, too much for one device "
        f"run's 64 MiB) in {took:.0f}s"
    )
    for n in sorted(sizes):
        print(a.out / f"palplat-gpu-proof-{n}.tar.xz")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
