"""Container images made here, without a registry or a builder: an OCI image layout in a
tar archive (``oci-layout``, ``index.json``, ``blobs/sha256/...``) with one uncompressed
layer, as ``ctr images import`` reads it. The test bed's node and the GPU proof kit import
their few images (pause, a static test program, the NVIDIA device plugin) this way: no
image can be pulled on these machines, nor on the GPU host.

    image = Image("palplat.invalid/pause:1", entrypoint=["/pause"])
    image.add_file("/pause", Path("build/pause"), mode=0o755)
    image.write(Path("pause.tar"))
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
EPOCH = 0  # reproducible: every file and the config carry the same time


@dataclass
class _Entry:
    path: str
    data: bytes | None = None  # None: a directory or symlink
    source: Path | None = None
    mode: int = 0o644
    link: str | None = None


@dataclass
class Image:
    ref: str  # registry/name:tag, e.g. palplat.invalid/pause:1
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    _entries: list[_Entry] = field(default_factory=list)

    def add_file(self, path: str, source: Path, mode: int = 0o755) -> Image:
        self._entries.append(_Entry(path, source=Path(source), mode=mode))
        return self

    def add_bytes(self, path: str, data: bytes, mode: int = 0o644) -> Image:
        self._entries.append(_Entry(path, data=data, mode=mode))
        return self

    def add_dir(self, path: str, mode: int = 0o755) -> Image:
        self._entries.append(_Entry(path, mode=mode))
        return self

    def add_symlink(self, path: str, target: str) -> Image:
        self._entries.append(_Entry(path, link=target, mode=0o777))
        return self

    def _layer(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            dirs = set()
            for e in self._entries:
                parts = e.path.strip("/").split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    dirs.add("/".join(parts[:i]))
            explicit = {e.path.strip("/") for e in self._entries if e.data is None and not e.source}
            for d in sorted(dirs - explicit):
                ti = tarfile.TarInfo(d)
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, EPOCH
                tar.addfile(ti)
            for e in self._entries:
                ti = tarfile.TarInfo(e.path.strip("/"))
                ti.mode, ti.mtime = e.mode, EPOCH
                if e.link is not None:
                    ti.type, ti.linkname = tarfile.SYMTYPE, e.link
                    tar.addfile(ti)
                elif e.source is not None:
                    ti.size = e.source.stat().st_size
                    with open(e.source, "rb") as fh:
                        tar.addfile(ti, fh)
                elif e.data is not None:
                    ti.size = len(e.data)
                    tar.addfile(ti, io.BytesIO(e.data))
                else:
                    ti.type = tarfile.DIRTYPE
                    tar.addfile(ti)
        return buf.getvalue()

    def write(self, dest: Path) -> Path:
        """The image as an OCI layout tar at ``dest``."""
        layer = self._layer()
        layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
        config = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH)),
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": self.entrypoint or None,
                "Cmd": self.cmd or None,
                "Env": [f"{k}={v}" for k, v in self.env.items()] or None,
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created_by": "palplat tests/support/ociimage.py"}],
        }
        config_b = json.dumps(config, sort_keys=True).encode()
        config_digest = "sha256:" + hashlib.sha256(config_b).hexdigest()
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_b)},
            "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": len(layer)}],
        }
        manifest_b = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = "sha256:" + hashlib.sha256(manifest_b).hexdigest()
        tag = self.ref.rsplit(":", 1)[1] if ":" in self.ref.rsplit("/", 1)[-1] else "latest"
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest_b),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": self.ref,
                        "org.opencontainers.image.ref.name": tag,
                    },
                }
            ],
        }
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:

            def put(name: str, data: bytes) -> None:
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode, ti.mtime = len(data), 0o644, EPOCH
                tar.addfile(ti, io.BytesIO(data))

            put("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            put("index.json", json.dumps(index, sort_keys=True).encode())
            for digest, data in (
                (layer_digest, layer),
                (config_digest, config_b),
                (manifest_digest, manifest_b),
            ):
                put(f"blobs/sha256/{digest.split(':', 1)[1]}", data)
        return dest


def glibc_files(binaries: list[Path]) -> list[tuple[str, Path]]:
    """(path in the image, file here) of the shared libraries ``binaries`` need (``ldd``),
    with the dynamic loader: what a glibc-linked program needs in an image of its own."""
    import subprocess

    out: dict[str, Path] = {}
    for b in binaries:
        res = subprocess.run(["ldd", str(b)], capture_output=True, text=True, check=False)
        for line in res.stdout.splitlines():
            parts = line.split()
            path = None
            if "=>" in parts:
                i = parts.index("=>")
                if i + 1 < len(parts) and parts[i + 1].startswith("/"):
                    path = parts[i + 1]
            elif parts and parts[0].startswith("/"):
                path = parts[0]
            if path:
                out[path] = Path(path).resolve()
    return sorted(out.items())
