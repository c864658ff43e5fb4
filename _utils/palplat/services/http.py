"""One REST API over ``requests``: base URL, authentication, timeouts, request counting,
and errors that say what to fix (with every secret masked).

:class:`Api` is what :mod:`.harbor` and :mod:`.woodpecker` build on. ``stats`` counts
``requests``, ``writes`` (POST/PUT/PATCH/DELETE) and requests per verb, which the
benchmarks and the no-op tests read.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from palplat import redact
from palplat.errors import PalplatError

WRITES = ("POST", "PUT", "PATCH", "DELETE")


class ApiError(PalplatError):
    """An API refused a request (``status``) or could not be reached (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(redact.mask_text(message))


class Unavailable(ApiError):
    """No answer: connection refused, TLS failure, timeout."""


class NotContacted(Unavailable):
    """A pull request's plan does not contact this API (:mod:`palplat.egress`)."""


def _short(text: str, limit: int = 300) -> str:
    # masked before it is cut or its whitespace folded: a secret at the cut (or one with
    # a newline) would otherwise no longer match and leak its prefix
    text = " ".join(redact.mask_text(str(text)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Api:
    """A JSON REST API at ``base`` (e.g. ``https://harbor.example/api/v2.0``).

    ``auth`` is a ``requests`` auth (tuple for basic auth) and ``headers`` extra headers
    (a bearer token); ``where`` names the pillar key of the credentials for error hints.
    """

    def __init__(
        self,
        name: str,
        base: str,
        *,
        auth: Any = None,
        headers: dict[str, str] | None = None,
        verify: bool | str = True,
        timeout: float = 20,
        where: str = "",
    ):
        import requests

        self.name = name
        self.base = base.rstrip("/")
        self.where = where
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = auth
        self.session.verify = verify
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        self.stats: dict[str, Any] = {"requests": 0, "writes": 0, "verbs": Counter()}

    def close(self) -> None:
        self.session.close()

    def reset_stats(self) -> None:
        self.stats.update(requests=0, writes=0)
        self.stats["verbs"].clear()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        missing_ok: bool = False,
    ):
        """One request; the ``requests.Response`` (None for a 404 when ``missing_ok``)."""
        import requests

        method = method.upper()
        self.stats["requests"] += 1
        self.stats["verbs"][method] += 1
        if method in WRITES:
            self.stats["writes"] += 1
        what = f"{self.name}: {method} {path}"
        try:
            resp = self.session.request(
                method,
                self.base + path,
                params=params,
                json=body,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise Unavailable(
                f"{what}: cannot reach {self.name} at {self.base} ({type(exc).__name__}: "
                f"{_short(str(exc))}); check that it runs and that {self.where or 'its URL'} "
                "is right, then re-run"
            ) from None
        if resp.status_code == 404 and missing_ok:
            return None
        if not 200 <= resp.status_code <= 299:
            raise ApiError(self._error_text(what, resp), status=resp.status_code)
        return resp

    def json(self, method: str, path: str, **kw) -> Any:
        """:meth:`request`, decoded (None for an empty body or a tolerated 404)."""
        resp = self.request(method, path, **kw)
        if resp is None or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise ApiError(
                f"{self.name}: {method} {path}: the answer is not JSON", status=resp.status_code
            ) from None

    def paged(
        self, path: str, size_param: str, size: int, params: dict[str, Any] | None = None
    ) -> list[dict]:
        """Every item of a list endpoint, a page at a time (``page`` from 1, ``size_param``
        names the page size: Harbor ``page_size``, Woodpecker ``perPage``, Forgejo
        ``limit``); stops at a short page or at the ``X-Total-Count`` the API sends."""
        out: list[dict] = []
        page = 1
        while True:
            resp = self.request(
                "GET", path, params={**(params or {}), "page": page, size_param: size}
            )
            try:
                items = resp.json() if resp.content else None
            except ValueError:
                raise ApiError(
                    f"{self.name}: GET {path}: the answer is not JSON", status=resp.status_code
                ) from None
            items = items or []
            out.extend(items)
            total = resp.headers.get("X-Total-Count")
            if len(items) < size or (total is not None and len(out) >= int(total)):
                return out
            page += 1

    def _error_text(self, what: str, resp) -> str:
        detail = ""
        try:
            doc = resp.json()
        except ValueError:
            doc = resp.text
        if isinstance(doc, dict):
            errs = doc.get("errors")
            if isinstance(errs, list) and errs and isinstance(errs[0], dict):
                detail = "; ".join(str(e.get("message", "")) for e in errs)
            else:
                detail = str(doc.get("message") or json.dumps(doc))
        elif doc:
            detail = str(doc)
        text = f"{what}: {self.name} answered {resp.status_code}"
        if detail:
            text += f": {_short(detail)}"
        hint = {
            401: f" (unauthorized: check {self.where})",
            403: f" (forbidden: the account in {self.where} lacks the permission)",
            409: " (conflict: it exists already)",
        }.get(resp.status_code)
        if hint is None and resp.status_code >= 500:
            hint = f" ({self.name} failed; re-run when it is healthy)"
        return text + (hint or "")


class Unreached(Api):
    """An API a pull request's plan must not contact (its endpoint or credential is not
    the applied pillar's): every request raises :class:`NotContacted` with ``reason``,
    before anything leaves the process."""

    def __init__(self, name: str, base: str, reason: str):
        self.name = name
        self.base = base.rstrip("/")
        self.where = ""
        self.timeout = 0
        self.reason = reason
        self.session = None
        self.stats = {"requests": 0, "writes": 0, "verbs": Counter()}

    def close(self) -> None:
        pass

    def request(self, method: str, path: str, **kw: Any):
        raise NotContacted(f"{self.name}: {method} {path}: {self.reason}")
