"""The join token against the running cluster: the join server's ``/cacerts`` and an
authenticated supervisor request, else the server's own token file."""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import urllib.error
import urllib.request

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


def _insecure_ctx() -> ssl.SSLContext:
    # The CA is checked against the token's hash (full token) right after fetching it.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _get(url: str, ctx: ssl.SSLContext, headers: dict | None = None, timeout: float = 10):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_token(cfg: PalplatPillar) -> str:
    """Check the pillar token against the running cluster; returns what was checked.

    - joining (``server_url`` set): fetch ``<server_url>/cacerts``; with a full token its
      CA hash must match; then an authenticated supervisor request
      (``/v1-k3s/client-ca.crt``, basic auth with the token) must not be refused.
    - a server with a token file (it already ran): the token's secret part must match.
    Raises :class:`TokenMismatch` (nothing restarted) or :class:`SourceError`.
    """
    k, p = cfg.k3s, paths(cfg)
    if k.mode == "external":
        return "external mode: no token"
    token = str(k.token.reveal()) if k.token is not None else None
    if k.server_url and token:
        try:
            return _check_join_token(k, token)
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
    return "no running cluster to check the token against"


def _check_join_token(k: K3s, token: str) -> str:
    """Join token against ``server_url``: CA hash (full token), then supervisor auth."""
    ca_hash, user, password = _token_parts(token, k.role)
    base = k.server_url.rstrip("/")
    ctx = _insecure_ctx()
    try:
        code, body = _get(f"{base}/cacerts", ctx)
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(
            f"cannot reach {P}:server_url {base} to check the join token "
            f"({getattr(exc, 'reason', exc)}); nothing was restarted"
        ) from None
    if code != 200:
        raise SourceError(f"{base}/cacerts answered HTTP {code}; is {base} a k3s server?")
    if ca_hash and hashlib.sha256(body).hexdigest() != ca_hash:
        raise TokenMismatch(
            f"{P}:token does not belong to the cluster at {base}: its CA hash differs from "
            "the server's /cacerts. Put that cluster's token in the GPG pillar; nothing "
            "was restarted"
        )
    # A short token may be accepted as either supervisor user (agent-token setups):
    # it is wrong only when every candidate is refused.
    users = [user] if ca_hash else list(dict.fromkeys([user, "node", "server"]))
    codes = []
    for u in users:
        auth = base64.b64encode(f"{u}:{password}".encode()).decode()
        try:
            code, _ = _get(
                f"{base}/v1-k3s/client-ca.crt",
                ctx,
                headers={"Authorization": f"Basic {auth}"},
            )
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError(f"cannot check the token at {base}: {exc}") from None
        codes.append(code)
        if code not in (401, 403):
            break
    else:
        raise TokenMismatch(
            f"{P}:token is refused by the server at {base} (HTTP {codes[-1]}): it does "
            "not match the running cluster. Put the cluster's token (server: "
            "/var/lib/rancher/k3s/server/token) in the GPG pillar; nothing was restarted"
        )
    return f"token accepted by {base}"
