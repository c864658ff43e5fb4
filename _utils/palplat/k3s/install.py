"""The pinned k3s binary: versions, and the plan/install of the binary and the air-gap
images from the configured source, sha256 verified (pillar or the release's
``sha256sum-<arch>.txt``), written beside the target and renamed over it
(:func:`palplat.release.install`), so a mismatch leaves the installed binary in place; a
downgrade is refused unless ``allow_downgrade``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palplat import proc, release
from palplat.errors import InputError
from palplat.fetch import FetchSalt, arch, source_url
from palplat.k3s.flags import P
from palplat.k3s.layout import paths
from palplat.model import K3s, PalplatPillar

BINARY_NAME = {"amd64": "k3s", "arm64": "k3s-arm64", "arm": "k3s-armhf"}
VERSION_RE = re.compile(r"^v([0-9]+)\.([0-9]+)\.([0-9]+)(?:\+k3s([0-9]+))?$")


def parse_version(v: str) -> tuple[int, int, int, int]:
    m = VERSION_RE.match(v or "")
    if not m:
        raise InputError(f"not a k3s version: {v!r} (expected e.g. v1.33.5+k3s1)")
    return (int(m[1]), int(m[2]), int(m[3]), int(m[4] or 0))


def installed_version(binary: Path) -> str | None:
    """The version ``k3s --version`` reports, or None when the binary is missing."""
    if not binary.exists():
        return None
    res = proc.run([str(binary), "--version"], check=False, timeout=60)
    m = re.search(r"k3s version (v\S+)", res.stdout + res.stderr)
    if res.returncode != 0 or not m:
        return "unknown"
    return m.group(1)


def release_url(k: K3s, filename: str) -> str:
    """``filename`` of the pinned release under ``palplat:k3s:source:url`` (a template
    with ``{version}``, ``{arch}``: :func:`palplat.fetch.source_url`)."""
    return f"{source_url(k.source.url, k.version).rstrip('/')}/{filename}"


def artifact(k: K3s, filename: str) -> release.Artifact:
    """``filename`` of the pinned release, checked against ``palplat:k3s:source:sha256``
    (the binary only) or the release's ``sha256sum-<arch>.txt``."""
    binary = filename == BINARY_NAME[arch()]
    return release.Artifact(
        release_url(k, filename),
        f"{P}:source",
        sha256=k.source.sha256 if binary else None,
        sums_url=release_url(k, f"sha256sum-{arch()}.txt"),
        name=filename,
        pinnable=binary,
    )


def expected_sha256(
    k: K3s, filename: str, workdir: Path, fetch_salt: FetchSalt | None
) -> tuple[str, str]:
    """(sha256, where it came from): the pillar's, else the release's checksum file."""
    return release.expected_sha256(artifact(k, filename), workdir, fetch_salt)


# -------------------------------------------------------------------------- binary


@dataclass
class BinaryPlan:
    current: str | None
    desired: str | None
    images: bool  # the air-gap images archive needs installing

    @property
    def changes(self) -> dict:
        out: dict[str, Any] = {}
        if self.current != self.desired:
            out["version"] = {"old": self.current, "new": self.desired}
        if self.images:
            out["airgap_images"] = {"old": None, "new": self.desired}
        return out


def _images_name() -> str:
    return f"k3s-airgap-images-{arch()}.tar.zst"


def plan_binary(cfg: PalplatPillar) -> BinaryPlan:
    """What :func:`install_binary` would do; raises on a refused downgrade."""
    k, p = cfg.k3s, paths(cfg)
    current = installed_version(p.binary)
    desired = k.version
    if current not in (None, "unknown") and desired and current != desired:
        if parse_version(desired) < parse_version(current) and not k.allow_downgrade:
            raise InputError(
                f"{P}:version: {desired} is older than the installed {current}; downgrading "
                "k3s can break the cluster's datastore. Set palplat:k3s:allow_downgrade: true "
                "to force it; nothing was changed"
            )
    images = False
    if k.source.airgap_images:
        stamp = p.images_dir / f".{_images_name()}.version"
        images = not stamp.exists() or stamp.read_text().strip() != desired
    return BinaryPlan(current, desired, images)


def install_binary(
    cfg: PalplatPillar, plan: BinaryPlan, fetch_salt: FetchSalt | None = None, progress=None
) -> dict:
    """Download, verify and atomically install what ``plan`` says; returns changes."""
    k, p = cfg.k3s, paths(cfg)
    if plan.current != plan.desired:
        name = BINARY_NAME[arch()]
        release.install(
            artifact(k, name),
            {name: p.binary},
            what="k3s",
            version=plan.desired,
            version_of=installed_version,
            current=plan.current,
            unpack=False,
            fetch_salt=fetch_salt,
            progress=progress,
        )
    if plan.images:
        name = _images_name()
        release.install(
            artifact(k, name),
            {name: p.images_dir / name},
            what="k3s air-gap image archive",
            version=plan.desired,
            unpack=False,
            mode=0o644,
            fetch_salt=fetch_salt,
            timeout=600,
        )
        (p.images_dir / f".{name}.version").write_text(f"{plan.desired}\n")
    return plan.changes
