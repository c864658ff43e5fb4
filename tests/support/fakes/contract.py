"""A Swagger 2.0 document as a contract: route a request to its operation, validate the
request and the response with bravado-core (a maintained validator that reads 2.0).

Checked for every request: the operation exists (method and path), path/query/header/body
parameters match their declared types and schemas (bravado-core's ``unmarshal_request``),
no undeclared query parameter, no body where none is declared. For every response: its
status is declared for the operation and body and headers match (``validate_response``).
An error answer (4xx/5xx) the document does not declare is not a violation when the fake
was told to give it (fault injection): Woodpecker's document declares no error answers.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from requests.structures import CaseInsensitiveDict

REPO = Path(__file__).resolve().parents[3]
APIS = REPO.parent / "shared" / "reference" / "apis"
HARBOR_DOC = APIS / "harbor-v2.0-swagger.yaml"
WOODPECKER_DOC = APIS / "woodpecker-openapi.json"

_SPECS: dict[str, Any] = {}


def available() -> tuple[bool, str]:
    missing = [p.name for p in (HARBOR_DOC, WOODPECKER_DOC) if not p.exists()]
    if missing:
        return False, f"vendor API documents not found in {APIS} ({', '.join(missing)})"
    try:
        import bravado_core  # noqa: F401
    except ImportError:
        return False, "bravado-core is not installed (pip install -e .[test])"
    return True, ""


def load(path: Path):
    """The bravado-core Spec of a vendor document (cached per process)."""
    key = str(path)
    if key not in _SPECS:
        import yaml
        from bravado_core.spec import Spec

        text = path.read_text()
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if not doc.get("host"):
            doc["host"] = "127.0.0.1"  # Woodpecker's generated document leaves it empty
        config = {
            "validate_requests": True,
            "validate_responses": True,
            "use_models": False,
            "validate_swagger_spec": True,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # '$ref with siblings' notes in Harbor's document
            _SPECS[key] = Spec.from_dict(doc, origin_url=f"file://{path}", config=config)
    return _SPECS[key]


class _Request:
    """bravado-core's IncomingRequest."""

    def __init__(self, path_params, query, headers, body: bytes):
        self.path = path_params
        self.query = query
        self.headers = headers
        self.form = {}
        self.files = {}
        self.raw_bytes = body
        self._body = body

    def json(self, **kw):
        return json.loads(self._body.decode() or "null")


class _Response:
    """bravado-core's OutgoingResponse."""

    def __init__(self, status: int, headers: dict, body: bytes, header_types: dict):
        self.status_code = status
        ctype = headers.get("Content-Type", "")
        self.content_type = ctype.split(";")[0].strip()
        self.raw_bytes = body
        self.text = body.decode()
        # HTTP headers are strings: give declared integer headers their type
        self.headers = {
            k: (int(v) if header_types.get(k) == "integer" and str(v).isdigit() else v)
            for k, v in headers.items()
        }

    def json(self, **kw):
        return json.loads(self.text)


class Contract:
    def __init__(self, path: Path):
        self.spec = load(path)
        self.base = self.spec.spec_dict.get("basePath", "").rstrip("/")
        self.routes: list[tuple[str, re.Pattern, list[str], Any]] = []
        for resource in self.spec.resources.values():
            for op in resource.operations.values():
                names = re.findall(r"\{([^}]+)\}", op.path_name)
                pieces = re.split(r"\{[^}]+\}", op.path_name)
                rx = "".join(
                    re.escape(piece) + (f"(?P<g{i}>[^/]+)" if i < len(names) else "")
                    for i, piece in enumerate(pieces)
                )
                self.routes.append((op.http_method.upper(), re.compile(f"^{rx}/?$"), names, op))
        # literal paths before templated ones (/repos/lookup/x before /repos/{repo_id})
        self.routes.sort(key=lambda r: len(r[2]))

    def match(self, method: str, path: str):
        """The operation serving ``method path`` and its (decoded) path parameters."""
        if not path.startswith(self.base):
            return None, {}
        rel = path[len(self.base) :] or "/"
        for m, rx, names, op in self.routes:
            hit = rx.match(rel)
            if hit and m == method:
                return op, {n: unquote(hit.group(f"g{i}")) for i, n in enumerate(names)}
        return None, {}

    def check_request(self, op, path_params, query: dict, headers, body: bytes) -> list[str]:
        from bravado_core.request import unmarshal_request

        problems = []
        declared = {p.name for p in op.params.values()}
        sent = {h.lower() for h in headers}
        for p in op.params.values():
            # a declared default must not stand in for a required header never sent
            if p.location == "header" and p.required and p.name.lower() not in sent:
                problems.append(f"required header {p.name} missing")
        extra = sorted(q for q in query if q not in declared)
        if extra:
            problems.append(f"undeclared query parameter(s) {extra}")
        has_body = any(p.location == "body" for p in op.params.values())
        if body and not has_body:
            problems.append("a body where the operation declares none")
        req = _Request(path_params, query, CaseInsensitiveDict(headers), body)
        try:
            unmarshal_request(req, op)
        except Exception as exc:  # noqa: BLE001 - every bravado/jsonschema error is a mismatch
            problems.append(f"request: {type(exc).__name__}: {_short(exc)}")
        return problems

    def check_response(self, op, status: int, headers: dict, body: bytes) -> list[str]:
        from bravado_core.response import get_response_spec, validate_response_body

        try:
            rspec = get_response_spec(status, op)
        except Exception as exc:  # noqa: BLE001
            return [f"response {status}: {_short(exc)}"]
        from bravado_core.validate import validate_schema_object

        declared = {
            k: self.spec.deref(v) or {}
            for k, v in (self.spec.deref(rspec.get("headers")) or {}).items()
        }
        resp = _Response(status, headers, body, {k: v.get("type") for k, v in declared.items()})
        problems = []
        try:
            validate_response_body(op, rspec, resp)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"response {status}: {type(exc).__name__}: {_short(exc)}")
        # Swagger 2.0 response headers are optional: those sent must match their type
        for name, hspec in declared.items():
            if name in resp.headers:
                try:
                    validate_schema_object(self.spec, hspec, resp.headers[name])
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"response {status}: header {name}: {_short(exc)}")
        return problems


def _short(exc: Exception, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
