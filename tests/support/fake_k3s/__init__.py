"""A local k3s release server for tests: the stand-in ``k3s`` and its checksum files.

Layout mirrors GitHub releases: ``/k3s-io/k3s/releases/download/<version>/k3s`` and
``.../sha256sum-amd64.txt`` (``<sha256>  k3s``). ``url`` is the pattern for
``palplat:k3s:source:url``. Only 127.0.0.1.

    with ReleaseServer() as rs:
        rs.add_release("v1.33.5+k3s1")
        rs.corrupt("v1.33.6+k3s1")       # binary no longer matches its checksum file
"""

from __future__ import annotations

import hashlib
import http.server
import sys
import threading
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PREFIX = "/k3s-io/k3s/releases/download"


def render(version: str) -> bytes:
    """The stand-in executable for ``version`` (runs with this interpreter)."""
    text = (HERE / "k3s_standin.py").read_text()
    lines = text.split("\n")
    lines[0] = f"#!{sys.executable}"
    text = "\n".join(lines)
    text = text.replace("@@VERSION@@", version).replace("@@REPO@@", str(REPO))
    return text.encode()


class ReleaseServer:
    def __init__(self, arch: str = "amd64"):
        self.arch = arch
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self._srv: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._srv is not None
        return f"http://127.0.0.1:{self._srv.server_address[1]}{PREFIX}/{{version}}"

    def add_release(self, version: str, images: bytes | None = None) -> str:
        """Publish the stand-in for ``version``; returns its sha256."""
        binary = render(version)
        sha = hashlib.sha256(binary).hexdigest()
        base = f"{PREFIX}/{version}"
        self.files[f"{base}/k3s"] = binary
        sums = f"{sha}  k3s\n"
        if images is not None:
            name = f"k3s-airgap-images-{self.arch}.tar.zst"
            self.files[f"{base}/{name}"] = images
            sums += f"{hashlib.sha256(images).hexdigest()}  {name}\n"
        self.files[f"{base}/sha256sum-{self.arch}.txt"] = sums.encode()
        return sha

    def corrupt(self, version: str) -> None:
        """Serve a binary that no longer matches the release's checksum file."""
        key = f"{PREFIX}/{version}/k3s"
        self.files[key] = self.files[key] + b"\n# tampered\n"

    def start(self) -> ReleaseServer:
        files, requests = self.files, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802
                path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
                requests.append(path)
                body = files.get(path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None

    def __enter__(self) -> ReleaseServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
