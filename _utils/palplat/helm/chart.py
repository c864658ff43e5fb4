"""Charts and values: chart source and CLI arguments, chart digests, merged values (0600
values files), fingerprints and the repository indexes they are checked against."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from palplat import proc, yamlio
from palplat.errors import InputError, PalplatError
from palplat.model import Chart, Release
from palplat.secret import Secret, reveal

FORMAT = 1  # of the fingerprint and of the stored state


def repo_name(url: str) -> str:
    """A stable local repository name for a URL."""
    return "palplat-" + hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:12]


def chart_source(chart: Chart) -> str:
    if chart.path:
        return f"path:{chart.path}"
    if chart.oci:
        return chart.oci
    return f"{(chart.repo or '').rstrip('/')}#{chart.name}"


def chart_args(chart: Chart) -> list[str]:
    """The CHART argument(s) of helm upgrade/show for a chart (after repos were added)."""
    if chart.path:
        return [chart.path]
    ref = chart.oci if chart.oci else f"{repo_name(chart.repo or '')}/{chart.name}"
    return [ref] + (["--version", chart.version] if chart.version else [])


def path_digest(path: str) -> str:
    """sha256 of a local chart: the archive's bytes, or every file of the directory."""
    h = hashlib.sha256()
    if os.path.isfile(path):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    if not os.path.isdir(path):
        raise InputError(f"chart path {path} does not exist")
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in (".git",))
        for fn in sorted(files):
            full = os.path.join(root, fn)
            h.update(os.path.relpath(full, path).encode() + b"\0")
            with open(full, "rb") as f:
                h.update(f.read())
            h.update(b"\0")
    return h.hexdigest()


def merge(base: Any, over: Any) -> Any:
    """Deep merge of helm values: mappings merge, everything else is replaced."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return over


PLACEHOLDER = "palplat-plan-placeholder"


def merged_values(rel: Release, placeholders: bool = False) -> dict:
    """values with secret_values merged over them (plain: only for 0600 files and hashes).
    ``placeholders``: each secret value replaced by :data:`PLACEHOLDER` (a chart a pull
    request changed is never rendered with real secret values)."""
    secrets = dict(rel.secret_values)
    return merge(dict(rel.values), _placeholders(secrets) if placeholders else reveal(secrets))


def _placeholders(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _placeholders(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_placeholders(v) for v in tree]
    return PLACEHOLDER if isinstance(tree, Secret) else tree


@contextlib.contextmanager
def values_file(values: Mapping[str, Any]):
    """A 0600 temp file holding ``values`` (JSON is YAML); removed afterwards."""
    d = tempfile.mkdtemp(prefix="palplat-helm-")
    path = os.path.join(d, "values.yaml")
    try:
        proc.write_private(path, json.dumps(values, sort_keys=True, default=str))
        yield path
    finally:
        shutil.rmtree(d, ignore_errors=True)


def fingerprint(
    source: str, version: str | None, digest: str | None, values: Any, keep_pvcs: bool = True
) -> str:
    doc = {"format": FORMAT, "source": source, "version": version, "digest": digest}
    doc["values"] = values
    doc["keep_pvcs"] = keep_pvcs  # it changes the rendered manifest (post-renderer)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def values_hash(rel: Release) -> str:
    """The hash of a release's merged values alone (stored, to say when values changed)."""
    return fingerprint("", None, None, merged_values(rel))


class RepoIndex:
    """Repository indexes fetched once per run (for chart digests and version checks)."""

    def __init__(self, timeout: float = 20):
        self.timeout = timeout
        self._cache: dict[str, dict | Exception] = {}
        self._lock = threading.Lock()

    def entry(self, repo: str, name: str, version: str) -> dict:
        url = repo.rstrip("/")
        with self._lock:
            if url not in self._cache:
                self._cache[url] = self._fetch(url)
        idx = self._cache[url]
        if isinstance(idx, Exception):
            raise idx
        versions = (idx.get("entries") or {}).get(name)
        if not versions:
            raise InputError(
                f"chart {name} is not in repository {url}; check chart.name "
                f"(the repository has: {', '.join(sorted(idx.get('entries') or {})[:20])})"
            )
        for e in versions:
            if str(e.get("version")) == version or str(e.get("version")) == version.lstrip("v"):
                return e
        have = ", ".join(str(e.get("version")) for e in versions[:10])
        raise InputError(
            f"chart {name} has no version {version} in repository {url}; pin one it has "
            f"(newest: {have})"
        )

    def _fetch(self, url: str) -> dict | Exception:
        try:
            with urllib.request.urlopen(  # noqa: S310 - URL from the reviewed pillar
                f"{url}/index.yaml", timeout=self.timeout
            ) as resp:
                return (
                    yamlio.load(resp.read().decode("utf-8", "replace"), f"{url}/index.yaml") or {}
                )
        except (urllib.error.URLError, OSError, ValueError, InputError) as exc:
            reason = getattr(exc, "reason", exc)
            return PalplatError(
                f"helm repository {url} is unreachable ({reason}); check chart.repo and "
                "that the repository is up"
            )
