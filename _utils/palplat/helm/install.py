"""Install the pinned helm binary (``palplat:platform:helm``) that the platform stage uses.

k3s ships no helm, so a bare host gets it here: the release archive is downloaded (the
official URL pattern, a mirror, file:// or salt://), its sha256 checked against the
pillar or the ``<url>.sha256sum`` file published beside it, the ``helm`` member
(``linux-<arch>/helm``) extracted, its ``helm version`` checked, and only then is it renamed
over the old binary (:func:`palplat.release.install`). Any failure leaves the installed
helm in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palplat import proc, release
from palplat.fetch import FetchSalt, source_url
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


def install(
    cfg: PalplatPillar, the_plan: HelmPlan, fetch_salt: FetchSalt | None = None, progress=None
) -> dict[str, Any]:
    """Download, verify and atomically install what ``the_plan`` says; returns changes."""
    changes = the_plan.changes
    if not changes:
        return {}
    h = cfg.platform.helm
    url = archive_url(h)
    art = release.Artifact(url, P, sha256=h.sha256, sums_url=url + ".sha256sum")
    release.install(
        art,
        {"helm": h.path},
        what="helm",
        version=h.version,
        version_of=installed_version,
        current=the_plan.current,
        fetch_salt=fetch_salt,
        progress=progress,
    )
    return changes
