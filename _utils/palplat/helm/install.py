"""Install the pinned helm binary (``palplat:platform:helm``) that the platform stage uses.

k3s ships no helm, so a bare host gets it here: the release archive is downloaded (the
official URL pattern, a mirror, file:// or salt://), its sha256 checked against the
pillar or the ``<url>.sha256sum`` file published beside it, the ``linux-<arch>/helm``
member extracted, its ``helm version`` checked, and only then is it renamed over the old
binary. Any failure leaves the installed helm in place.
"""

from __future__ import annotations

import contextlib
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palplat import proc
from palplat.errors import PalplatError
from palplat.fetch import (
    ChecksumError,
    FetchSalt,
    SourceError,
    arch,
    fetch,
    sha256_file,
    source_url,
)
from palplat.model import HelmTool, PalplatPillar

P = "palplat:platform:helm"


def binary(cfg: PalplatPillar) -> str:
    """The helm every platform state runs: the pinned install's path, else ``helm``."""
    h = cfg.platform.helm
    return h.path if h.version or Path(h.path).exists() else "helm"


def installed_version(path: str | Path) -> str | None:
    if not Path(path).exists():
        return None
    res = proc.run([str(path), "version", "--template", "{{.Version}}"], check=False, timeout=30)
    return (res.stdout.strip() or "unknown") if res.returncode == 0 else "unknown"


def archive_url(h: HelmTool) -> str:
    return source_url(h.url, h.version)


@dataclass
class HelmPlan:
    current: str | None
    desired: str | None
    path: str

    @property
    def changes(self) -> dict[str, Any]:
        if self.desired is None or self.current == self.desired:
            return {}
        return {"helm": {"old": self.current, "new": self.desired, "path": self.path}}


def plan(cfg: PalplatPillar) -> HelmPlan:
    h = cfg.platform.helm
    return HelmPlan(installed_version(h.path) if h.version else None, h.version, h.path)


def _expected_sha256(h: HelmTool, url: str, work: Path, fetch_salt: FetchSalt | None):
    if h.sha256:
        return h.sha256, f"{P}:sha256"
    sums = work / "archive.sha256sum"
    fetch(url + ".sha256sum", sums, fetch_salt)
    words = sums.read_text(errors="replace").split()
    if not words or len(words[0]) != 64:
        raise SourceError(f"{url}.sha256sum holds no sha256; set {P}:sha256")
    return words[0].lower(), url + ".sha256sum"


def install(
    cfg: PalplatPillar, the_plan: HelmPlan, fetch_salt: FetchSalt | None = None, progress=None
) -> dict[str, Any]:
    """Download, verify and atomically install what ``the_plan`` says; returns changes."""
    changes = the_plan.changes
    if not changes:
        return {}
    h = cfg.platform.helm
    target = Path(h.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    url = archive_url(h)
    work = Path(tempfile.mkdtemp(prefix=".palplat-helm-", dir=target.parent))
    try:
        if progress:
            progress("download", f"downloading helm {h.version} from {url}")
        archive = work / "helm.tar.gz"
        fetch(url, archive, fetch_salt)
        want, where = _expected_sha256(h, url, work, fetch_salt)
        got = sha256_file(archive)
        if got != want:
            raise ChecksumError(
                f"checksum mismatch for {url}: sha256 {got}, expected {want} (from {where}); "
                f"the installed helm ({the_plan.current or 'none'}) was left in place. Check "
                f"{P} (url, sha256)"
            )
        member = f"linux-{arch()}/helm"
        try:
            with tarfile.open(archive, "r:gz") as tar, tar.extractfile(member) as src:
                new = work / "helm"
                with open(new, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        except (tarfile.TarError, KeyError, TypeError) as exc:
            raise ChecksumError(f"{url} is not a helm release archive ({member}: {exc})") from None
        new.chmod(0o755)
        got_version = installed_version(new)
        if got_version != h.version:
            raise ChecksumError(
                f"{url} holds helm {got_version}, not {h.version}; the installed helm was "
                f"left in place. Check {P}:url"
            )
        new.replace(target)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(work)
    back = installed_version(target)
    if back != h.version:
        raise PalplatError(f"verify: {target} reports {back} after install, not {h.version}")
    return changes
