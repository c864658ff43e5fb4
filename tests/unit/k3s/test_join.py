"""palplat.k3s.join: the join token against the running cluster."""

from __future__ import annotations

import pytest

from palplat import k3s
from tests.unit.k3s.support import load


def test_token_check_falls_back_to_the_servers_own_copy(tmp_path):
    away = "https://127.0.0.1:9"
    cfg = load(tmp_path, server_url=away, token="right-token", cluster_init=False)
    token_file = k3s.paths(cfg).token_file
    token_file.parent.mkdir(parents=True)
    token_file.write_text("K10" + "a" * 64 + "::server:right-token\n")
    assert k3s.check_token(cfg) == "token matches the running cluster"
    wrong = load(tmp_path, server_url=away, token="wrong-token", cluster_init=False)
    with pytest.raises(k3s.TokenMismatch, match="nothing was restarted"):
        k3s.check_token(wrong)
    agent = load(tmp_path / "a", role="agent", server_url=away, token="right-token")
    assert "not checked" in k3s.check_token(agent)  # a short token is never sent
    agent = load(tmp_path / "a", role="agent", server_url=away, token="K10" + "b" * 64 + "::node:x")
    with pytest.raises(k3s.SourceError, match="cannot reach palplat:k3s:server_url"):
        k3s.check_token(agent)


# -------------------------------------------------------------- the server is the cluster's


class _Recorder:
    """A TLS server on loopback that answers like k3s's supervisor and records every
    Authorization header it receives (a stand-in for a man in the middle)."""

    def __init__(self, pki, password=None, redirect_to=None):
        import http.server
        import ssl
        import threading

        self.seen: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802
                outer.seen.append(self.headers.get("Authorization") or "")
                if redirect_to and self.path.startswith("/v1-k3s/"):
                    self.send_response(302)
                    self.send_header("Location", redirect_to + self.path)
                    self.end_headers()
                    return
                body, code = b"nope", 404
                if self.path == "/cacerts":
                    body, code = (pki / "ca.crt").read_bytes(), 200
                elif self.path == "/v1-k3s/client-ca.crt":
                    auth = self.headers.get("Authorization", "")
                    ok = password and auth == "Basic " + _b64(f"node:{password}")
                    body, code = (b"ca", 200) if ok else (b"no", 401)
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


def _b64(text):
    import base64

    return base64.b64encode(text.encode()).decode()


def _pki(path):
    from tests.support import testenv

    testenv.make_pki(path)
    return path


def _full(pki, password):
    import hashlib

    return "K10" + hashlib.sha256((pki / "ca.crt").read_bytes()).hexdigest() + "::node:" + password


def test_a_server_of_another_ca_never_receives_the_token(tmp_path):
    """The man in the middle: a self-signed server on loopback where server_url points.
    The token's CA hash does not match its /cacerts, so the token is never sent."""
    cluster, mitm_pki = _pki(tmp_path / "cluster"), _pki(tmp_path / "mitm")
    mitm = _Recorder(mitm_pki, password="anything")
    try:
        cfg = load(tmp_path, role="agent", server_url=mitm.url, token=_full(cluster, "s3cret-1"))
        with pytest.raises(k3s.TokenMismatch, match="The token was not sent"):
            k3s.check_token(cfg)
        assert all("s3cret-1" not in h and _b64("node:s3cret-1") not in h for h in mitm.seen)
        assert mitm.seen == [""]  # /cacerts only, without credentials
    finally:
        mitm.close()


def test_the_clusters_server_checks_the_token_over_pinned_tls(tmp_path):
    pki = _pki(tmp_path / "cluster")
    srv = _Recorder(pki, password="right-pw-1")
    try:
        good = load(tmp_path, role="agent", server_url=srv.url, token=_full(pki, "right-pw-1"))
        assert "token accepted" in k3s.check_token(good)
        bad = load(tmp_path, role="agent", server_url=srv.url, token=_full(pki, "wrong-pw-2"))
        with pytest.raises(k3s.TokenMismatch, match="refused by the server"):
            k3s.check_token(bad)
    finally:
        srv.close()


def test_a_redirect_is_not_followed_with_the_token(tmp_path):
    pki = _pki(tmp_path / "cluster")
    elsewhere = _Recorder(pki, password="pw-3")
    srv = _Recorder(pki, password="pw-3", redirect_to=elsewhere.url)
    try:
        cfg = load(tmp_path, role="agent", server_url=srv.url, token=_full(pki, "pw-3"))
        with pytest.raises(k3s.SourceError, match="HTTP 302"):
            k3s.check_token(cfg)
        assert elsewhere.seen == []
    finally:
        srv.close()
        elsewhere.close()


def test_a_short_token_is_not_sent_and_the_check_says_why(tmp_path):
    pki = _pki(tmp_path / "cluster")
    srv = _Recorder(pki, password="short-pw-4")
    try:
        cfg = load(tmp_path, role="agent", server_url=srv.url, token="short-pw-4")
        said = k3s.check_token(cfg)
        assert "not checked" in said and "full token" in said
        assert srv.seen == []
    finally:
        srv.close()


def test_a_plan_does_not_contact_a_server_the_pull_request_changes(tmp_path):
    from palplat import egress

    pki = _pki(tmp_path / "cluster")
    srv = _Recorder(pki, password="pw-5")
    try:
        applied = load(tmp_path, role="agent", server_url="https://10.0.0.1:6443",
                       token=_full(pki, "pw-5"))  # fmt: skip
        planned = load(tmp_path, role="agent", server_url=srv.url, token=_full(pki, "pw-5"))
        said = k3s.check_token(planned, egress.Guard(True, applied))
        assert "not contacted" in said and "server_url" in said
        assert srv.seen == []
    finally:
        srv.close()
