"""The join token against the running cluster: the join server's ``/cacerts`` and an
authenticated supervisor request, else the server's own token file."""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import urllib.error
import urllib.request
from typing import Any

from palplat import redact
from palplat.errors import PalplatError
from palplat.fetch import SourceError
from palplat.k3s.flags import P
from palplat.k3s.layout import paths
from palplat.model import K3s, PalplatPillar


class TokenMismatch(PalplatError):
    """The pillar token does not belong to the running cluster; nothing was restarted."""


def _token_parts(token: str, role: str) -> tuple[str | None, str, str]:
    """(CA hash or None, user, password) of a short or full (K10...) token."""
    m = re.match(r"^K10([0-9a-f]{64})::([^:]+):(.+)$", token)
    if m:
        return m.group(1), m.group(2), m.group(3)
    return None, ("node" if role == "agent" else "server"), token


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, never followed (it would carry the Authorization)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def _bootstrap_ctx() -> ssl.SSLContext:
    # Only for /cacerts, which carries no credential: its answer is checked against the
    # full token's CA hash before anything is sent with the token.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _pinned_ctx(ca_pem: bytes) -> ssl.SSLContext:
    """TLS that trusts only the cluster's CA (the one whose hash the token carries). The
    host name is not checked: server_url may name the server by an address k3s did not
    put in its certificate; the pinned CA is what proves it is the cluster's server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
    return ctx


def _get(url: str, ctx: ssl.SSLContext, headers: dict | None = None, timeout: float = 10):
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _NoRedirect)
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_token(cfg: PalplatPillar, guard: Any = None) -> str:
    """Check the pillar token against the running cluster; returns what was checked.

    - joining (``server_url`` set) with a full token (``K10<CA hash>::<user>:<secret>``):
      fetch ``<server_url>/cacerts`` (no credential sent) and compare its hash with the
      token's; only then, over TLS that trusts that CA alone, an authenticated supervisor
      request (``/v1-k3s/client-ca.crt``) must not be refused. Redirects are not followed.
      A short token cannot prove the server is the cluster's: it is not sent (the plan
      says so; use the full token to have it checked).
    - a server with a token file (it already ran): the token's secret part must match.
    ``guard`` (:class:`palplat.egress.Guard`): in a pull request's plan, a server or token
    the pull request changes is not contacted.
    Raises :class:`TokenMismatch` (nothing restarted) or :class:`SourceError`.
    """
    k, p = cfg.k3s, paths(cfg)
    if k.mode == "external":
        return "external mode: no token"
    token = str(k.token.reveal()) if k.token is not None else None
    why = guard.join_server(k.server_url, k.token) if guard is not None and token else None
    remote = None  # why the join server was not asked
    if k.server_url and token and why:
        remote = f"join token not checked: {why}"
    elif k.server_url and token:
        try:
            return _check_join_token(k, token)
        except _NotSent as exc:
            remote = str(exc)
        except SourceError:
            # the join server is away (an outage, or it is being upgraded): a server that
            # already ran can still compare with its own copy of the cluster token
            if not (k.role == "server" and p.token_file.exists()):
                raise
    if k.role == "server" and token and p.token_file.exists():
        stored = p.token_file.read_text().strip()
        redact.register([stored])
        _, _, have = _token_parts(stored, "server")
        _, _, want = _token_parts(token, "server")
        if have != want:
            raise TokenMismatch(
                f"{P}:token does not match the token of the cluster this server already runs "
                f"({p.token_file}); k3s would refuse to start with it. Put that token in the "
                "GPG pillar (or remove the server's data to start a new cluster); nothing "
                "was restarted"
            )
        return "token matches the running cluster"
    return remote or "no running cluster to check the token against"


class _NotSent(PalplatError):
    """A short token is not sent to the join server (it cannot prove who it is)."""


def _check_join_token(k: K3s, token: str) -> str:
    """Join token against ``server_url``: CA hash (full token), then supervisor auth over
    TLS pinned to that CA. A short token is never sent."""
    ca_hash, user, password = _token_parts(token, k.role)
    base = k.server_url.rstrip("/")
    if not ca_hash:
        raise _NotSent(
            f"join token not checked against {base}: a short token cannot prove that server "
            f"is the cluster's, so it is not sent before k3s joins with it. Put the full "
            f"token (K10<CA hash>::...; the server's {P}:token file) in the GPG pillar to "
            "have it checked"
        )
    try:
        code, body = _get(f"{base}/cacerts", _bootstrap_ctx())
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(
            f"cannot reach {P}:server_url {base} to check the join token "
            f"({getattr(exc, 'reason', exc)}); nothing was restarted"
        ) from None
    if code != 200:
        raise SourceError(f"{base}/cacerts answered HTTP {code}; is {base} a k3s server?")
    if hashlib.sha256(body).hexdigest() != ca_hash:
        raise TokenMismatch(
            f"{P}:token does not belong to the cluster at {base}: its CA hash differs from "
            "the server's /cacerts (another cluster, or something in between). The token "
            "was not sent. Put that cluster's token in the GPG pillar; nothing was restarted"
        )
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    redact.register([auth])
    try:
        code, _ = _get(
            f"{base}/v1-k3s/client-ca.crt",
            _pinned_ctx(body),
            headers={"Authorization": f"Basic {auth}"},
        )
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        raise SourceError(
            f"cannot check the token at {base} over TLS pinned to the cluster's CA: "
            f"{getattr(exc, 'reason', exc)}"
        ) from None
    if code in (401, 403):
        raise TokenMismatch(
            f"{P}:token is refused by the server at {base} (HTTP {code}): it does "
            "not match the running cluster. Put the cluster's token (server: "
            "/var/lib/rancher/k3s/server/token) in the GPG pillar; nothing was restarted"
        )
    if not 200 <= code < 300:
        raise SourceError(f"{base}/v1-k3s/client-ca.crt answered HTTP {code}")
    return f"token accepted by {base} (its CA matches the token)"
