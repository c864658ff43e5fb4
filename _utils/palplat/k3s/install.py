"""The pinned k3s binary: versions, and the plan/install of the binary and the air-gap
images from the configured source, sha256 verified (pillar or the release's
``sha256sum-<arch>.txt``), written beside the target and renamed over it, so a mismatch
leaves the installed binary in place; a downgrade is refused unless ``allow_downgrade``."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palplat import proc
from palplat.errors import InputError, PalplatError
from palplat.fetch import (
    ChecksumError,
    FetchSalt,
    SourceError,
    arch,
    fetch,
    sha256_file,
    source_url,
)
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


def expected_sha256(
    k: K3s, filename: str, workdir: Path, fetch_salt: FetchSalt | None
) -> tuple[str, str]:
    """(sha256, where it came from): the pillar's, else the release's checksum file."""
    if k.source.sha256 and filename == BINARY_NAME[arch()]:
        return k.source.sha256, f"{P}:source:sha256"
    sums_name = f"sha256sum-{arch()}.txt"
    url = release_url(k, sums_name)
    dest = workdir / sums_name
    fetch(url, dest, fetch_salt)
    for line in dest.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename:
            return parts[0].lower(), url
    raise SourceError(f"{url} lists no checksum for {filename}")


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
        p.binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.binary.with_name(f".{p.binary.name}.palplat-download")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            url = release_url(k, name)
            if progress:
                progress("download", f"downloading k3s {plan.desired} from {url}")
            fetch(url, tmp, fetch_salt)
            want, where = expected_sha256(k, name, tmp.parent, fetch_salt)
            got = sha256_file(tmp)
            if got != want:
                raise ChecksumError(
                    f"checksum mismatch for {url}: sha256 {got}, expected {want} (from {where}); "
                    f"the installed binary ({plan.current or 'none'}) was left in place. Check "
                    "palplat:k3s:source (url, sha256) and the mirror's files"
                )
            os.chmod(tmp, 0o755)
            got_version = installed_version(tmp)
            if got_version != plan.desired:
                raise ChecksumError(
                    f"{url} reports version {got_version}, not {plan.desired}; the installed "
                    "binary was left in place. Check palplat:k3s:source:url"
                )
            os.replace(tmp, p.binary)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            with contextlib.suppress(FileNotFoundError):
                (tmp.parent / f"sha256sum-{arch()}.txt").unlink()
        back = installed_version(p.binary)
        if back != plan.desired:
            raise PalplatError(
                f"verify: {p.binary} reports {back} after install, not {plan.desired}"
            )
    if plan.images:
        name = _images_name()
        p.images_dir.mkdir(parents=True, exist_ok=True)
        dest = p.images_dir / name
        tmp = p.images_dir / f".{name}.palplat-download"
        try:
            fetch(release_url(k, name), tmp, fetch_salt, timeout=600)
            want, where = expected_sha256(k, name, p.images_dir, fetch_salt)
            got = sha256_file(tmp)
            if got != want:
                raise ChecksumError(
                    f"checksum mismatch for {name}: sha256 {got}, expected {want} (from {where})"
                )
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            with contextlib.suppress(FileNotFoundError):
                (p.images_dir / f"sha256sum-{arch()}.txt").unlink()
        (p.images_dir / f".{name}.version").write_text(f"{plan.desired}\n")
    return plan.changes
