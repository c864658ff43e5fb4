"""Helm releases: exact plans, no-op runs that touch nothing, safe upgrades.

Layers (see docs/helm.md):

- :class:`Helm` builds argv for the ``helm`` CLI (never a shell string) and parses its JSON.
- :func:`plan` decides per release: install / upgrade / uninstall / correct drift / nothing,
  from ONE ``helm list -A -o json``, ONE LIST of palplat's fingerprint Secrets and one LIST
  per kind of the objects the unchanged releases own (drift check). A no-op run makes no
  other helm call and no write.
- :func:`converge` runs the plan in ``needs`` waves (releases in one wave in parallel, up to
  ``platform.parallel``): CRDs by server-side apply first, then an atomic ``helm upgrade
  --install``, then it re-reads the objects, verifies them and stores the fingerprint.

Fingerprint store: one Secret per release, ``palplat-helm-<release>`` in the release
namespace, labelled ``palplat.io/helm-release=<release>``. It holds the fingerprint
(chart source, version, archive digest, merged values), the helm revision it was written
for and the baseline of every object of the release (the live objects, restricted to the
fields the chart sets, read back after the upgrade). It is a Secret because the baseline
of a chart's Secrets holds their data.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import yaml

from palplat import kube as k8s
from palplat import proc, redact
from palplat.config import ROOT, release_order
from palplat.errors import CommandError, InputError, PalplatError
from palplat.model import Chart, Release
from palplat.secret import reveal

log = logging.getLogger("palplat.helm")

STORE_PREFIX = "palplat-helm-"
STORE_LABEL = "palplat.io/helm-release"
STORE_KEY = "state"
FORMAT = 1


class HelmError(PalplatError):
    """A release could not be converged; ``revision`` is its current helm revision."""

    def __init__(self, message: str, revision: int | None = None):
        self.revision = revision
        super().__init__(redact.mask_text(message))


# ------------------------------------------------------------------------- helm CLI


class Helm:
    """The ``helm`` CLI: one method per command, argv lists, JSON output parsed.

    ``env`` (e.g. ``HELM_CACHE_HOME``) is passed to every call; ``runner`` is
    :func:`palplat.proc.run` (secrets never reach argv: values go through 0600 files,
    registry passwords through stdin).
    """

    def __init__(
        self,
        binary: str = "helm",
        kubeconfig: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        runner: Callable[..., proc.Result] = proc.run,
    ):
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.env = dict(env or {})
        self.runner = runner

    def run(self, *args: str, input: str | None = None, timeout: float | None = 900) -> str:  # noqa: A002
        argv = [self.binary, *args]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        return self.runner(argv, input=input, env=self.env or None, timeout=timeout).stdout

    def list_releases(self) -> dict[tuple[str, str], dict]:
        """Every release in every namespace (all states): ``{(namespace, name): entry}``."""
        out = self.run("list", "--all-namespaces", "--all", "--max", "0", "-o", "json")
        rows = json.loads(out or "[]") or []
        return {(r["namespace"], r["name"]): r for r in rows}

    def repo_add(self, name: str, url: str) -> None:
        """Add (or refresh) a repository; downloads its index."""
        self.run("repo", "add", "--force-update", name, url, timeout=120)

    def registry_login(self, host: str, username: str, password: Any) -> None:
        """Log in to an OCI registry; the password goes through stdin only."""
        self.run(
            "registry",
            "login",
            host,
            "--username",
            username,
            "--password-stdin",
            input=str(password),
            timeout=120,
        )

    def upgrade(
        self,
        release: str,
        namespace: str,
        chart: list[str],
        values_file: str,
        *,
        atomic: bool,
        wait: bool,
        timeout: int,
        history_max: int,
        create_namespace: bool,
        dry_run: str | None = None,
        keep_pvcs: bool = False,
    ) -> dict:
        """``helm upgrade --install``; returns the release JSON (manifest included).

        ``dry_run``: ``"server"`` (lookup works) or ``"client"`` (no API validation)."""
        args = ["upgrade", "--install", release, *chart, "--namespace", namespace]
        args += ["--values", values_file, "--reset-values", "--skip-crds"]
        args += ["--history-max", str(history_max), "--timeout", f"{timeout}s", "-o", "json"]
        if create_namespace:
            args.append("--create-namespace")
        args += post_renderer(keep_pvcs)
        if dry_run:
            args.append(f"--dry-run={dry_run}")
        elif atomic:
            args.append("--atomic")
        if wait and not dry_run:
            args.append("--wait")
        out = self.run(*args, timeout=timeout + 120)
        return json.loads(out)

    def template(
        self, release: str, namespace: str, chart: list[str], values_file: str, keep_pvcs=False
    ) -> str:
        """Render offline (no API server): the manifest text."""
        args = ["template", release, *chart, "--namespace", namespace, "--values", values_file]
        args += post_renderer(keep_pvcs)
        return self.run(*args, "--skip-crds", timeout=300)

    def rollback(self, release: str, namespace: str, timeout: int) -> None:
        self.run("rollback", release, "--namespace", namespace, "--timeout", f"{timeout}s")

    def uninstall(self, release: str, namespace: str, timeout: int, wait: bool) -> None:
        args = ["uninstall", release, "--namespace", namespace, "--timeout", f"{timeout}s"]
        if wait:
            args.append("--wait")
        self.run(*args, timeout=timeout + 120)

    def status(self, release: str, namespace: str) -> dict | None:
        try:
            return json.loads(self.run("status", release, "--namespace", namespace, "-o", "json"))
        except CommandError as exc:
            if "not found" in (exc.stderr or ""):
                return None
            raise

    def show_crds(self, chart: list[str]) -> str:
        return self.run("show", "crds", *chart, timeout=300)


# ------------------------------------------------------------------ chart and values


def post_renderer(keep_pvcs: bool) -> list[str]:
    """helm flags that mark the chart's PVCs ``helm.sh/resource-policy: keep``."""
    if not keep_pvcs:
        return []
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helm_keep.py")
    return ["--post-renderer", sys.executable, "--post-renderer-args", script]


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


def merged_values(rel: Release) -> dict:
    """values with secret_values merged over them (plain: only for 0600 files and hashes)."""
    return merge(dict(rel.values), reveal(dict(rel.secret_values)))


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
                return yaml.safe_load(resp.read()) or {}
        except (urllib.error.URLError, OSError, ValueError, yaml.YAMLError) as exc:
            reason = getattr(exc, "reason", exc)
            return PalplatError(
                f"helm repository {url} is unreachable ({reason}); check chart.repo and "
                "that the repository is up"
            )


# ----------------------------------------------------------------------- store


def store_name(release: str) -> str:
    return f"{STORE_PREFIX}{release}"[:253]


def encode_state(state: Mapping[str, Any]) -> str:
    raw = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode()


def decode_state(secret: Mapping[str, Any]) -> dict:
    data = (secret.get("data") or {}).get(STORE_KEY)
    if not data:
        return {}
    try:
        raw = base64.b64decode(base64.b64decode(data))
        return json.loads(gzip.decompress(raw))
    except (ValueError, OSError):
        return {}


def store_manifest(release: str, namespace: str, state: Mapping[str, Any]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "palplat.io/helm-fingerprint",
        "metadata": {
            "name": store_name(release),
            "namespace": namespace,
            "labels": {k8s.MANAGED_BY_LABEL: k8s.MANAGED_BY_VALUE, STORE_LABEL: release},
        },
        "data": {STORE_KEY: base64.b64encode(encode_state(state).encode()).decode()},
    }


# ------------------------------------------------------------------------ objects


def parse_manifest(text: str, namespace: str) -> list[dict]:
    """The objects of a rendered manifest (``List`` kinds flattened)."""
    out: list[dict] = []
    for doc in yaml.safe_load_all(text or ""):
        if not isinstance(doc, dict) or not doc.get("kind"):
            continue
        items = doc.get("items") if doc["kind"].endswith("List") else None
        for obj in items if isinstance(items, list) else [doc]:
            out.append(obj)
    for obj in out:
        obj.setdefault("metadata", {}).setdefault("namespace", namespace)
    return out


def _drop_empty(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def shape_of(desired: Mapping[str, Any]) -> dict:
    """The fields a chart sets on an object, as the server stores them."""
    return _drop_empty(k8s.normalize(k8s._secret_as_stored(dict(desired))))


def baseline(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict | None:
    """``live`` restricted to the fields ``desired`` sets: what a drift check compares."""
    if live is None:
        return None
    return _drop_empty(k8s._project(k8s.normalize(live), shape_of(desired)))


def obj_key(obj: Mapping[str, Any], namespaced: bool = True) -> str:
    meta = obj.get("metadata") or {}
    return k8s.key_of(
        obj.get("kind", ""), meta.get("name", ""), meta.get("namespace") if namespaced else None
    )


# --------------------------------------------------------------------------- plan


@dataclass
class ReleasePlan:
    key: str  # pillar map key
    name: str  # helm release name
    namespace: str
    rel: Release
    action: str = "none"  # install | upgrade | uninstall | drift | none
    reasons: list[str] = field(default_factory=list)
    objects: dict[str, dict] = field(default_factory=dict)  # per-object field diffs
    fingerprint: str | None = None
    partial: str | None = None
    digest: str | None = None
    listed: dict | None = None
    stored: dict = field(default_factory=dict)
    error: str | None = None
    revision: int | None = None
    crds_text: str | None = None

    @property
    def changed(self) -> bool:
        return self.action != "none"

    def changes(self) -> dict:
        out: dict[str, Any] = {"action": self.action, "reasons": list(self.reasons)}
        c = self.rel.chart
        out["chart"] = f"{chart_source(c)} {c.version or ''}".strip()
        if self.objects:
            out["objects"] = self.objects
        if self.revision is not None:
            out["revision"] = self.revision
        return redact.mask(out)


@dataclass
class Context:
    helm: Helm
    kube: k8s.Kube
    history_max: int = 5
    parallel: int = 4
    registries: Mapping[str, Any] = field(default_factory=dict)  # host -> RegistryAuth
    progress: Callable[..., Any] | None = None
    index: RepoIndex = field(default_factory=RepoIndex)
    _repos_added: set = field(default_factory=set)
    _logins: set = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)


def _pillar_path(key: str, *rest: str) -> str:
    return ":".join([ROOT, "platform", "releases", key, *rest])


def _resolve(p: ReleasePlan, ctx: Context) -> None:
    """Chart digest and fingerprint of a release (no helm call)."""
    rel = p.rel
    c = rel.chart
    values = merged_values(rel)
    source = chart_source(c)
    try:
        if c.path:
            p.digest = path_digest(c.path)
        elif c.repo:
            p.digest = ctx.index.entry(c.repo, c.name or "", c.version or "").get("digest")
    except InputError as exc:
        raise InputError(f"{_pillar_path(p.key, 'chart')}: {exc}") from None
    p.partial = fingerprint(source, c.version, None, values, rel.keep_pvcs)
    p.fingerprint = fingerprint(source, c.version, p.digest, values, rel.keep_pvcs)


def plan(
    releases: Mapping[str, Release],
    ctx: Context,
    *,
    only: Iterable[str] | None = None,
) -> list[ReleasePlan]:
    """Decide what each release needs. One helm listing, one LIST of stored fingerprints,
    one LIST per kind of the objects owned by unchanged releases (drift)."""
    names = list(only) if only is not None else list(releases)
    listed = ctx.helm.list_releases()
    stores = {
        (
            (s.get("metadata") or {}).get("namespace"),
            (s.get("metadata") or {}).get("labels", {}).get(STORE_LABEL),
        ): s
        for s in ctx.kube.list("v1", "Secret", label_selector=STORE_LABEL)
    }
    plans: list[ReleasePlan] = []
    for key in names:
        rel = releases[key]
        name = rel.release_name or key
        p = ReleasePlan(key, name, rel.namespace, rel)
        p.listed = listed.get((rel.namespace, name))
        store = stores.get((rel.namespace, name))
        p.stored = decode_state(store) if store else {}
        if p.listed:
            p.revision = int(p.listed.get("revision") or 0)
        plans.append(p)
        if not rel.enabled:
            if p.listed:
                p.action = "uninstall"
                p.reasons.append("enabled is false")
            continue
        try:
            _resolve(p, ctx)
        except PalplatError as exc:
            src, ver = chart_source(rel.chart), rel.chart.version
            partial = fingerprint(src, ver, None, merged_values(rel), rel.keep_pvcs)
            if not (p.listed and p.stored.get("partial") == partial and "unreachable" in str(exc)):
                p.error = str(exc)
                continue
            # repository down, nothing else changed: keep the release, say so
            p.reasons.append(f"digest not verified: {exc}")
            p.fingerprint = p.stored.get("fingerprint")
        if not p.listed:
            p.action = "install"
            p.reasons.append("not installed")
            continue
        status = p.listed.get("status")
        if status != "deployed":
            p.action = "upgrade"
            p.reasons.append(f"helm status is {status}")
        elif not p.stored:
            p.action = "upgrade"
            p.reasons.append("no stored fingerprint (installed outside palplat or by an older run)")
        elif p.stored.get("fingerprint") != p.fingerprint:
            p.action = "upgrade"
            p.reasons.append(_what_changed(p))
        elif int(p.stored.get("revision") or -1) != p.revision:
            p.action = "upgrade"
            p.reasons.append(
                f"helm revision is {p.revision}, palplat last wrote revision "
                f"{p.stored.get('revision')} (changed outside palplat)"
            )
    _check_drift([p for p in plans if p.action == "none" and p.stored and p.rel.enabled], ctx)
    return plans


def _what_changed(p: ReleasePlan) -> str:
    s = p.stored
    c = p.rel.chart
    parts = []
    if s.get("source") != chart_source(c):
        parts.append("chart source")
    if s.get("version") != c.version:
        parts.append(f"chart version {s.get('version')} -> {c.version}")
    elif s.get("digest") != p.digest:
        parts.append("chart archive digest")
    if s.get("values_hash") != _values_hash(p.rel):
        parts.append("values")
    if s.get("keep_pvcs", True) != p.rel.keep_pvcs:
        parts.append("keep_pvcs")
    return (", ".join(parts) or "fingerprint") + " changed"


def _values_hash(rel: Release) -> str:
    return fingerprint("", None, None, merged_values(rel))


def _check_drift(plans: list[ReleasePlan], ctx: Context) -> None:
    """Compare each release's stored baseline with the live objects (one LIST per kind)."""
    kinds: dict[tuple[str, str], list[tuple[ReleasePlan, dict]]] = {}
    for p in plans:
        for o in p.stored.get("objects") or []:
            kinds.setdefault((o["apiVersion"], o["kind"]), []).append((p, o))
    for (api, kind), entries in sorted(kinds.items()):
        try:
            # helm's own release Secrets are big and never part of a chart
            sel = "owner!=helm" if (api, kind) == ("v1", "Secret") else None
            items = ctx.kube.list(api, kind, label_selector=sel)
        except k8s.UnknownKind:
            items = []
        index = {
            ((i.get("metadata") or {}).get("namespace"), (i.get("metadata") or {}).get("name")): i
            for i in items
        }
        for p, o in entries:
            live = index.get((o.get("namespace"), o["name"]))
            want = o.get("want") or {}
            key = k8s.key_of(kind, o["name"], o.get("namespace"))
            if live is None:
                d = {".": {"old": None, "new": f"present ({key})"}}
            else:
                got = _drop_empty(k8s._project(k8s.normalize(live), want))
                d = k8s.diff(got, want) if got != want else {}
                if d and k8s.is_secret(live):
                    d = {path: {"old": k8s.HIDDEN, "new": k8s.HIDDEN} for path in d}
            if d:
                p.objects[key] = d
    for p in plans:
        if p.objects and p.action == "none":
            p.action = "drift"
            p.reasons.append("objects changed outside helm: " + ", ".join(sorted(p.objects)))


# ------------------------------------------------------------------ test-mode diff


def render_diff(p: ReleasePlan, ctx: Context, upstream_changes: list[str] = ()) -> None:
    """Test mode for a release that would change: render it server-side (lookup works, so
    generated secrets stay stable), diff every object against the live one."""
    if p.action == "drift":
        return  # the drift check already holds the exact field diffs
    if p.action == "uninstall":
        for o in p.stored.get("objects") or []:
            p.objects[k8s.key_of(o["kind"], o["name"], o.get("namespace"))] = {
                ".": {"old": "present", "new": None}
            }
        return
    _prepare(p, ctx)

    def render(mode: str) -> dict:
        with values_file(merged_values(p.rel)) as vf:
            return ctx.helm.upgrade(
                p.name,
                p.namespace,
                chart_args(p.rel.chart),
                vf,
                atomic=False,
                wait=False,
                timeout=p.rel.timeout,
                history_max=ctx.history_max,
                create_namespace=p.rel.create_namespace,
                dry_run=mode,
                keep_pvcs=p.rel.keep_pvcs,
            )

    try:
        rendered = render("server")
    except CommandError as exc:
        pending = ((p.listed or {}).get("status") or "").startswith("pending-")
        if not upstream_changes and not pending:
            raise HelmError(
                f"{_pillar_path(p.key)}: helm cannot render the release: "
                f"{(exc.stderr or str(exc)).strip()}",
                p.revision,
            ) from None
        # a release it needs (e.g. the one with its CRDs) is not there yet, or the release
        # is stuck pending (recovered first on a real run): render offline
        why = (
            f"{', '.join(upstream_changes)} would change first"
            if upstream_changes
            else ("it would be recovered first")
        )
        p.reasons.append(f"rendered without the API server: {why}")
        with values_file(merged_values(p.rel)) as vf:
            text = ctx.helm.template(
                p.name, p.namespace, chart_args(p.rel.chart), vf, p.rel.keep_pvcs
            )
        rendered = {"manifest": text}
    desired = parse_manifest(rendered.get("manifest", ""), p.namespace)
    seen = set()
    for obj in desired:
        try:
            res = ctx.kube.resource(obj["apiVersion"], obj["kind"])
            ns = obj["metadata"]["namespace"] if res.namespaced else None
            live = ctx.kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], ns)
        except k8s.UnknownKind:
            ns, live = obj["metadata"].get("namespace"), None
        key = k8s.key_of(obj["kind"], obj["metadata"]["name"], ns)
        seen.add(key)
        if live is None:
            d = k8s.diff(None, obj)
        else:
            want = shape_of(obj)
            got = _drop_empty(k8s._project(k8s.normalize(live), want))
            d = k8s.diff(got, want)
        if d:
            p.objects[key] = d
    for o in p.stored.get("objects") or []:
        key = k8s.key_of(o["kind"], o["name"], o.get("namespace"))
        if key not in seen:
            p.objects[key] = {".": {"old": "present", "new": None}}


# ------------------------------------------------------------------------ converge


def _prepare(p: ReleasePlan, ctx: Context) -> None:
    """Repository add / registry login, once per run and only for what is needed."""
    c = p.rel.chart
    with ctx._lock:
        if c.repo and c.repo not in ctx._repos_added:
            try:
                ctx.helm.repo_add(repo_name(c.repo), c.repo)
            except CommandError as exc:
                raise HelmError(
                    f"{_pillar_path(p.key, 'chart:repo')}: cannot add helm repository "
                    f"{c.repo}: {exc.stderr.strip() or exc}"
                ) from None
            ctx._repos_added.add(c.repo)
        if c.oci:
            host = urllib.parse.urlparse(c.oci).netloc
            auth = getattr(ctx.registries.get(host), "auth", None)
            if auth is not None and host not in ctx._logins:
                ctx.helm.registry_login(host, auth.username, auth.password.reveal())
                ctx._logins.add(host)


def _apply_crds(p: ReleasePlan, ctx: Context, dry_run: bool) -> dict:
    """Create/upgrade the chart's CRDs by server-side apply (never deleted)."""
    _prepare(p, ctx)
    if p.crds_text is None:  # one `helm show crds` per release and run
        p.crds_text = ctx.helm.show_crds(chart_args(p.rel.chart))
    text = p.crds_text
    crds = [
        o for o in parse_manifest(text, p.namespace) if o.get("kind") == "CustomResourceDefinition"
    ]
    for c in crds:
        c["metadata"].pop("namespace", None)
    if not crds:
        return {}
    res = k8s.converge(
        ctx.kube, crds, owner=f"helm-crds.{p.name}"[:63], dry_run=dry_run, progress=ctx.progress
    )
    for c in crds:
        ctx.kube.forget(c["spec"]["group"] + "/" + c["spec"]["versions"][0]["name"])
    return res.get("changes") or {}


def _run_with_progress(fn: Callable[[], Any], what: str, ctx: Context, every: float = 5.0) -> Any:
    """Run a blocking helm call; log progress and fire events while it runs."""
    if ctx.progress is None:
        return fn()
    start = time.monotonic()
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(fn)
        while True:
            try:
                return fut.result(timeout=every)
            except FutureTimeout:  # builtin TimeoutError only from 3.11
                ctx.progress(
                    "waiting", f"{what}: still running after {time.monotonic() - start:.0f}s"
                )


def _store(p: ReleasePlan, ctx: Context, manifest: str, revision: int) -> dict[str, dict]:
    """Re-read the release's objects, verify them and write the fingerprint store."""
    desired = parse_manifest(manifest, p.namespace)
    objects, missing = [], []
    for obj in desired:
        try:
            res = ctx.kube.resource(obj["apiVersion"], obj["kind"])
        except k8s.UnknownKind:
            missing.append(obj_key(obj))
            continue
        ns = obj["metadata"]["namespace"] if res.namespaced else None
        live = ctx.kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], ns)
        if live is None:
            missing.append(obj_key(obj, res.namespaced))
            continue
        objects.append(
            {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": obj["metadata"]["name"],
                "namespace": ns,
                "want": baseline(live, obj),
            }
        )
    if missing:
        raise HelmError(
            f"release {p.namespace}/{p.name} revision {revision}: verify failed, objects "
            f"missing after the upgrade: {', '.join(missing)}",
            revision,
        )
    c = p.rel.chart
    state = {
        "format": FORMAT,
        "fingerprint": p.fingerprint,
        "partial": p.partial,
        "source": chart_source(c),
        "version": c.version,
        "digest": p.digest,
        "values_hash": _values_hash(p.rel),
        "keep_pvcs": p.rel.keep_pvcs,
        "revision": revision,
        "objects": objects,
    }
    ctx.kube.apply(store_manifest(p.name, p.namespace, state))
    return {}


def _upgrade(p: ReleasePlan, ctx: Context) -> None:
    rel = p.rel
    _prepare(p, ctx)
    _apply_crds(p, ctx, dry_run=False)
    before = p.revision
    what = f"helm upgrade {p.namespace}/{p.name}"
    if ctx.progress:
        ctx.progress("start", f"{what} ({'; '.join(p.reasons)})", release=p.name)

    def call() -> dict:
        with values_file(merged_values(rel)) as vf:
            return ctx.helm.upgrade(
                p.name,
                p.namespace,
                chart_args(rel.chart),
                vf,
                atomic=rel.wait,
                wait=rel.wait,
                timeout=rel.timeout,
                history_max=ctx.history_max,
                create_namespace=rel.create_namespace,
                keep_pvcs=rel.keep_pvcs,
            )

    try:
        out = _run_with_progress(call, what, ctx)
    except CommandError as exc:
        err = (exc.stderr or str(exc)).strip()
        if not rel.wait:
            _rollback_by_hand(p, ctx, before)
        st = ctx.helm.status(p.name, p.namespace)
        rev = int(st["version"]) if st else None
        state = f"now at revision {rev} ({st['info']['status']})" if st else "not installed"
        raise HelmError(
            f"helm upgrade of release {p.namespace}/{p.name} failed and was rolled back; "
            f"the release is {state}. helm said: {err}. Fix the chart or "
            f"{_pillar_path(p.key, 'values')} and re-run",
            rev,
        ) from None
    p.revision = int(out.get("version") or 0)
    _store(p, ctx, out.get("manifest", ""), p.revision)
    if ctx.progress:
        ctx.progress("done", f"{what}: revision {p.revision}", force=True, release=p.name)


def _recover_pending(p: ReleasePlan, ctx: Context) -> None:
    """A release left ``pending-*`` by an interrupted run (API server or minion down
    mid-upgrade) blocks every later helm operation: roll it back to its last deployed
    revision (or remove a never-completed install), then converge as usual. palplat is the
    only writer of these releases, so a pending state is never someone else's operation."""
    status = (p.listed or {}).get("status") or ""
    if not status.startswith("pending-"):
        return
    if ctx.progress:
        ctx.progress("recover", f"{p.namespace}/{p.name} is {status}: recovering", force=True)
    try:
        if status == "pending-install" or not p.revision or p.revision <= 1:
            ctx.helm.uninstall(p.name, p.namespace, p.rel.timeout, wait=False)
            p.revision = None
        else:
            ctx.helm.rollback(p.name, p.namespace, p.rel.timeout)
            st = ctx.helm.status(p.name, p.namespace)
            p.revision = int(st["version"]) if st else None
    except CommandError as exc:
        raise HelmError(
            f"release {p.namespace}/{p.name} is {status} (an earlier run was interrupted) "
            f"and could not be recovered: {exc.stderr.strip() or exc}; run `helm history "
            f"{p.name} -n {p.namespace}` and `helm rollback` by hand",
            p.revision,
        ) from None
    p.reasons.append(f"recovered from {status}")


def _rollback_by_hand(p: ReleasePlan, ctx: Context, before: int | None) -> None:
    """``wait: false`` releases run without --atomic (it implies --wait): undo here."""
    try:
        if before:
            ctx.helm.rollback(p.name, p.namespace, p.rel.timeout)
        else:
            ctx.helm.uninstall(p.name, p.namespace, p.rel.timeout, wait=False)
    except CommandError as exc:
        log.warning("rollback of %s/%s failed: %s", p.namespace, p.name, exc)


def _uninstall(p: ReleasePlan, ctx: Context) -> None:
    rel = p.rel
    what = f"helm uninstall {p.namespace}/{p.name}"
    _run_with_progress(
        lambda: ctx.helm.uninstall(p.name, p.namespace, rel.timeout, rel.wait), what, ctx
    )
    if not rel.keep_pvcs:
        claims = ctx.kube.list(
            "v1", "PersistentVolumeClaim", p.namespace, f"app.kubernetes.io/instance={p.name}"
        )
        for c in claims:
            ctx.kube.delete("v1", "PersistentVolumeClaim", c["metadata"]["name"], p.namespace)
    ctx.kube.delete("v1", "Secret", store_name(p.name), p.namespace)
    if ctx.helm.status(p.name, p.namespace) is not None:
        raise HelmError(f"verify: release {p.namespace}/{p.name} is still installed")
    p.revision = None


def converge(
    releases: Mapping[str, Release],
    ctx: Context,
    *,
    test: bool,
    only: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Plan, then (unless ``test``) execute in ``needs`` waves.

    Returns ``{"changes": {release: {...}}, "errors": {release: message},
    "unchanged": [release...], "plans": [...]}``. In test mode ``changes`` carries the
    manifest-level diff of every release that would change.
    """
    plans = plan(releases, ctx, only=only)
    by_key = {p.key: p for p in plans}
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {p.key: p.error for p in plans if p.error}
    unchanged = [p.key for p in plans if not p.changed and not p.error]
    todo = {p.key for p in plans if p.changed and not p.error}
    if not todo:
        return {"changes": {}, "errors": errors, "unchanged": unchanged, "plans": plans}
    waves = release_order({k: releases[k] for k in by_key})
    failed: set[str] = set(errors)

    def one(key: str) -> None:
        p = by_key[key]
        blocked = [n for n in p.rel.needs if n in failed]
        if blocked:
            errors[key] = f"not converged: it needs {', '.join(blocked)}, which failed"
            failed.add(key)
            return
        try:
            # the same diff in test mode and for real (before the write)
            if p.action in ("install", "upgrade"):
                p.objects.update(_apply_crds(p, ctx, dry_run=True))
            if not test and p.action != "uninstall":
                _recover_pending(p, ctx)
            render_diff(p, ctx, [n for n in p.rel.needs if n in todo] if test else [])
            if test:
                pass
            elif p.action == "uninstall":
                _uninstall(p, ctx)
            else:
                _upgrade(p, ctx)
            changes[key] = p.changes()
        except (PalplatError, k8s.KubeError) as exc:
            errors[key] = redact.mask_text(str(exc))
            if p.objects:
                changes[key] = p.changes()
            failed.add(key)

    for wave in waves:
        keys = [k for k in wave if k in todo]
        if len(keys) > 1 and ctx.parallel > 1:
            with ThreadPoolExecutor(min(ctx.parallel, len(keys))) as ex:
                list(ex.map(one, keys))
        else:
            for k in keys:
                one(k)
    return {"changes": changes, "errors": errors, "unchanged": unchanged, "plans": plans}


def context_for(
    cfg,
    *,
    helm_bin: str | None = None,
    kubeconfig: str | None = None,
    helm_env: Mapping[str, str] | None = None,
    fire=None,
) -> Context:
    """A :class:`Context` for a validated pillar. ``helm_bin`` defaults to the pinned
    install (``palplat:platform:helm``), else ``helm`` on PATH."""
    from palplat import config, helm_install, loaderkit

    helm_bin = helm_bin or helm_install.binary(cfg)
    kc = kubeconfig or config.kubeconfig_path(cfg)
    regs = {}
    if cfg.k3s.registries:
        regs = dict(cfg.k3s.registries.configs)
    return Context(
        helm=Helm(helm_bin, kc, env=helm_env),
        kube=k8s.Kube(kc),
        history_max=cfg.platform.history_max,
        parallel=cfg.platform.parallel,
        registries=regs,
        progress=loaderkit.Progress(fire, "helm"),
    )
