"""A loopback chart source for the example platform's real charts (../shared/reference/charts).

One HTTP server on 127.0.0.1 answers both ways the example pulls charts:

- as a helm repository: ``/index.yaml`` (built by ``helm repo index`` over copies of the
  archives in a temp dir, never in ../shared, which is read-only) and ``/<chart>-<v>.tgz``;
- as an OCI registry (read-only distribution API: ``/v2/``, manifests, blobs, tags), for the
  ``oci://`` charts (forgejo, woodpecker): any repository path whose last segment is a
  chart name serves that chart, so ``oci://code.forgejo.org/forgejo-helm/forgejo`` maps to
  ``oci://127.0.0.1:<port>/forgejo-helm/forgejo``. Each chart is the artifact ``helm push``
  makes: config ``application/vnd.cncf.helm.config.v1+json`` (the Chart.yaml metadata) and
  one layer ``application/vnd.cncf.helm.chart.content.v1.tar+gzip`` (the archive), tagged
  with its version. It is plain HTTP: helm 3.22 falls back to HTTP when the TLS handshake
  gets an HTTP answer (pkg/registry/fallback.go), so no ``--plain-http`` is needed.

:meth:`ChartRepo.mirrors` gives the ``palplat:platform:mirrors`` mapping (upstream
repository or OCI reference -> this server) for a pillar's releases.

Library::

    with ChartRepo() as repo:          # skips nothing itself: check CHARTS.is_dir() first
        repo.url, repo.oci_base, repo.mirrors(releases), repo.requests

CLI (the sandbox runs it detached)::

    python -m tests.support.chartrepo serve [--port P] [--charts DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.parse
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO.parent / "shared" / "reference" / "charts"
SKIP_REASON = f"the example platform's charts are not here ({CHARTS}; see ../shared/reference)"

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.cncf.helm.config.v1+json"
LAYER_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chart_metadata(archive: Path) -> dict:
    """Chart.yaml of a packaged chart (the top-level one, not a dependency's)."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "Chart.yaml":
                return yaml.safe_load(tar.extractfile(member).read())
    raise ValueError(f"{archive} holds no Chart.yaml")


class _Artifact:
    """One chart as an OCI artifact: manifest, config and layer blobs."""

    def __init__(self, archive: Path):
        meta = chart_metadata(archive)
        self.name, self.version = meta["name"], str(meta["version"])
        self.tag = self.version.replace("+", "_")
        config = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        layer = archive.read_bytes()
        self.blobs = {_digest(config): config, _digest(layer): layer}

        def desc(media_type: str, data: bytes) -> dict:
            return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}

        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": desc(CONFIG_TYPE, config),
                "layers": [desc(LAYER_TYPE, layer)],
                "annotations": {
                    "org.opencontainers.image.title": self.name,
                    "org.opencontainers.image.version": self.version,
                },
            },
            separators=(",", ":"),
        ).encode()
        self.digest = _digest(self.manifest)


class ChartRepo:
    """The charts of ``charts`` served on 127.0.0.1 (helm repository + OCI registry)."""

    def __init__(
        self,
        charts: Path | str = CHARTS,
        *,
        helm_bin: str | None = None,
        work: Path | str | None = None,
        port: int = 0,
    ):
        self.charts = Path(charts)
        self.helm_bin = helm_bin
        self._own_work = work is None
        self.work = Path(work) if work else Path(tempfile.mkdtemp(prefix="palplat-chartrepo-"))
        self.port = port
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests
        self.artifacts: dict[str, list[_Artifact]] = {}
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- what it serves
    @property
    def url(self) -> str:
        """The helm repository URL (``helm repo add x <url>``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def oci_base(self) -> str:
        return f"oci://127.0.0.1:{self.port}"

    def oci(self, ref: str) -> str:
        """The local reference of an upstream ``oci://host/path/chart``."""
        path = urllib.parse.urlparse(ref).path.strip("/")
        return f"{self.oci_base}/{path}"

    def mirrors(self, releases: dict) -> dict[str, str]:
        """``palplat:platform:mirrors`` for ``releases`` (name -> pillar dict or
        ``palplat.model.Release``): every upstream repository URL -> this repository, every
        ``oci://`` chart -> its path on this registry."""
        out = {}
        for rel in releases.values():
            if hasattr(rel, "chart"):
                chart = rel.chart.model_dump(exclude_none=True)
            else:
                chart = rel.get("chart") or {}
            if chart.get("repo"):
                out[chart["repo"]] = self.url
            elif chart.get("oci"):
                out[chart["oci"]] = self.oci(chart["oci"])
        return out

    def index(self) -> dict:
        return yaml.safe_load((self.work / "index.yaml").read_text())

    # ----- lifecycle
    def _build(self) -> None:
        archives = sorted(self.charts.glob("*.tgz"))
        if not archives:
            raise FileNotFoundError(SKIP_REASON)
        self.work.mkdir(parents=True, exist_ok=True)
        for a in archives:
            if not (self.work / a.name).exists():
                shutil.copyfile(a, self.work / a.name)
            art = _Artifact(self.work / a.name)
            self.artifacts.setdefault(art.name, []).append(art)
        helm = self.helm_bin
        if helm is None:
            from tests.support.testenv import find_bin

            found = find_bin("helm")
            helm = str(found) if found else shutil.which("helm")
        if not helm:
            raise FileNotFoundError("helm is not built: run tools/build-testbin")
        # Relative chart URLs: the index does not depend on the port.
        subprocess.run(
            [helm, "repo", "index", str(self.work)], check=True, capture_output=True, timeout=120
        )

    def start(self) -> ChartRepo:
        self._build()
        handler = type("Handler", (_Handler,), {"repo": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._own_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> ChartRepo:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        assert self._thread is not None
        self._thread.join()

    # ----- OCI lookups
    def artifact(self, name: str, ref: str) -> _Artifact | None:
        chart = name.rsplit("/", 1)[-1]
        for art in self.artifacts.get(chart, []):
            if ref in (art.tag, art.version, art.digest):
                return art
        return None

    def blob(self, name: str, digest: str) -> bytes | None:
        for art in self.artifacts.get(name.rsplit("/", 1)[-1], []):
            if digest in art.blobs:
                return art.blobs[digest]
        return None


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def example_pillar(
    kubeconfig: str, repo: ChartRepo | None = None, forge_api: str | None = None
) -> dict:
    """The example pillar (pillar/palplat/init.sls with secrets.sls merged over it, as Salt
    merges them) pointed at a test cluster (``k3s:mode: external``) and, with ``repo``,
    with every chart on that loopback repository (``palplat:platform:mirrors``).
    ``forge_api``: Forgejo's API (a contract fake) for what palplat makes there; without
    it nothing is made in Forgejo (no Forgejo runs on a kwok node)."""
    from palplat import config
    from tests.support import example as example_pillar

    pillar = example_pillar.filled()
    p = pillar["palplat"]
    p["k3s"] = {"mode": "external", "kubeconfig": str(kubeconfig)}
    defaults = p["services"]["defaults"]
    if forge_api:
        defaults["forge"].update(api_url=forge_api, allow_http=True)  # a fake on loopback
    else:
        defaults.pop("forge", None)
        # the token Argo CD would read deployments_repo with, given instead
        defaults["deployments_credentials"] = {"username": "argocd", "password": "bench-token"}
    if repo is not None:
        p["platform"]["mirrors"] = repo.mirrors(config.releases(config.load(pillar)))
    return pillar


class _Handler(http.server.BaseHTTPRequestHandler):
    repo: ChartRepo
    protocol_version = "HTTP/1.1"
    # headers and body are two writes: with Nagle's algorithm the body would wait for the
    # client's delayed ACK (40 ms a request on a kept-alive connection); real registries
    # (Go's net/http) set TCP_NODELAY
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:  # quiet
        pass

    def handle_one_request(self) -> None:
        # A TLS ClientHello (helm tries https first): answer with an HTTP status line, the
        # signal for helm's fallback to plain HTTP. (http.server would answer with an
        # HTML page without a status line, which helm cannot recognise.)
        try:
            first = self.rfile.peek(1)[:1]
        except (OSError, ValueError):
            first = b""
        if first == b"\x16":
            self.wfile.write(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.close_connection = True
            return
        super().handle_one_request()

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _send(self, code: int, data: bytes, ctype: str, body: bool, **headers: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _error(self, code: int, what: str, body: bool) -> None:
        err = {"errors": [{"code": what, "message": f"{what}: {self.path}"}]}
        self._send(code, json.dumps(err).encode(), "application/json", body)

    def _serve(self, body: bool) -> None:
        path = urllib.parse.urlparse(self.path).path
        self.repo.requests.append((self.command, path))
        if path == "/v2/" or path == "/v2":
            api = "registry/2.0"
            self._send(200, b"{}", "application/json", body, Docker_Distribution_API_Version=api)
            return
        if path.startswith("/v2/"):
            self._oci(path[4:], body)
            return
        name = path.lstrip("/")
        target = self.repo.work / name
        if "/" in name or not name or not target.is_file():
            self._error(404, "NOT_FOUND", body)
            return
        ctype = "application/x-yaml" if name.endswith(".yaml") else "application/gzip"
        self._send(200, target.read_bytes(), ctype, body)

    def _oci(self, rest: str, body: bool) -> None:
        for kind in ("/manifests/", "/blobs/", "/tags/"):
            if kind in rest:
                name, ref = rest.rsplit(kind, 1)
                break
        else:
            self._error(404, "NAME_UNKNOWN", body)
            return
        if kind == "/tags/":
            arts = self.repo.artifacts.get(name.rsplit("/", 1)[-1], [])
            if not arts:
                self._error(404, "NAME_UNKNOWN", body)
                return
            out = {"name": name, "tags": sorted(a.tag for a in arts)}
            self._send(200, json.dumps(out).encode(), "application/json", body)
        elif kind == "/manifests/":
            art = self.repo.artifact(name, ref)
            if art is None:
                self._error(404, "MANIFEST_UNKNOWN", body)
                return
            self._send(200, art.manifest, MANIFEST_TYPE, body, Docker_Content_Digest=art.digest)
        else:
            data = self.repo.blob(name, ref)
            if data is None:
                self._error(404, "BLOB_UNKNOWN", body)
                return
            self._send(200, data, "application/octet-stream", body, Docker_Content_Digest=ref)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.support.chartrepo")
    ap.add_argument("command", choices=["serve"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--charts", type=Path, default=CHARTS)
    ap.add_argument("--work", type=Path, default=None, help="where the index and copies go")
    args = ap.parse_args(argv)
    if not args.charts.is_dir():
        print(SKIP_REASON, file=sys.stderr)
        return 2
    repo = ChartRepo(args.charts, work=args.work, port=args.port).start()
    print(f"serving {args.charts} at {repo.url} (OCI: {repo.oci_base})", flush=True)
    try:
        repo.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        repo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
