"""A recording server on loopback for the adversarial tests: it answers like the thing a
hostile pull request points palplat at (Harbor, Woodpecker, a registry, a k3s server) and
keeps every request it receives (method, path, headers, body), so a test can prove that
no credential reached it."""

from __future__ import annotations

import http.server
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Listener:
    pki: Path | None = None  # TLS with this test PKI's apiserver certificate, else http
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                data = b"{}"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="listener"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any  # noqa: N815

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if self.pki is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.pki / "apiserver.crt"), str(self.pki / "apiserver.key"))
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
            scheme = "https"
        self.host = f"127.0.0.1:{self.srv.server_address[1]}"
        self.url = f"{scheme}://{self.host}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def credentials(self) -> list[str]:
        """Every Authorization (or cookie) header received."""
        out = []
        for s in self.seen:
            for k, v in s.headers.items():
                if k.lower() in ("authorization", "cookie", "proxy-authorization"):
                    out.append(f"{s.method} {s.path}: {k}: {v}")
        return out

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()
