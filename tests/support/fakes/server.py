"""The HTTP side of a contract fake: a threaded server on loopback, request routing
through the vendor document, validation of both directions, fault injection.

A fake subclasses :class:`FakeApi` and implements one method per operationId it serves
(``def listProjects(self, req) -> Reply``). Everything the client sends and everything
the fake answers is checked by :class:`~.contract.Contract`; mismatches go to
``violations`` (and the request is refused with 400, so the client sees it too).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.fakes.contract import Contract


@dataclass
class Req:
    method: str
    path: str
    params: dict[str, str]  # path parameters
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # decoded JSON or None


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Fault:
    method: str
    path: re.Pattern
    status: int  # 0: drop the connection without an answer
    times: int | None  # None: until cleared
    body: Any = None


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


class FakeApi:
    """Base of a contract fake (see the module docstring)."""

    name = "fake"

    def __init__(self, contract: Contract):
        self.contract = contract
        self.violations: list[str] = []
        self.log: list[tuple[str, str, int]] = []
        self.calls: Counter = Counter()
        self.faults: list[Fault] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.is_down = False

    # -------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeApi:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: with Nagle's algorithm on, the body
            # waits for the client's delayed ACK of the headers (40 ms a request on Linux).
            # Real servers (Go's net/http: Harbor, Woodpecker, Forgejo) set TCP_NODELAY.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                if fake.is_down:  # connections opened before the outage get no answer
                    self.close_connection = True
                    return
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                out = fake.handle(self.command, self.path, dict(self.headers), body)
                if out is None:  # an injected outage: no answer at all
                    self.close_connection = True
                    return
                status, headers, data = out
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
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

    @contextlib.contextmanager
    def down(self):
        """The API is unreachable (connection refused) inside the block."""
        self.is_down = True
        self.stop()
        try:
            yield
        finally:
            self.is_down = False
            self.start()

    def fail(self, method: str, path: str, status: int, times: int | None = None, body=None):
        """Answer ``status`` to requests matching (regex on the path) ``times`` times."""
        with self._lock:
            self.faults.append(Fault(method.upper(), re.compile(path), status, times, body))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.calls.clear()

    # -------------------------------------------------------------------- handling

    def handle(self, method: str, raw: str, headers: dict, body: bytes):
        parts = urlsplit(raw)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        op, params = self.contract.match(method, path)
        with self._lock:
            if op is None:
                return self._violate(method, path, "no such operation in the vendor document")
            problems = self.contract.check_request(op, params, query, headers, body)
            if problems:
                return self._violate(method, path, "; ".join(problems))
            fault = self._fault(method, path)
            if fault is not None:
                self.log.append((method, path, fault.status))
                self.calls[method] += 1
                if fault.status == 0:
                    return None
                return self._encode(self.error_reply(fault.status, "injected fault"), fault)
            try:
                decoded = json.loads(body) if body else None
            except ValueError:
                decoded = None
            req = Req(method, path, params, query, headers, decoded)
            handler = getattr(self, op.operation_id, None)
            if handler is None:
                return self._violate(method, path, f"{op.operation_id} is not faked")
            try:
                reply = self.auth(req) or handler(req)
            except ApiError as exc:
                reply = self.error_reply(exc.status, exc.message)
            status, out_headers, data = self._encode(reply)
            problems = self.contract.check_response(op, status, out_headers, data)
            declared = str(status) in (op.op_spec.get("responses") or {})
            if problems and (declared or status < 400):
                self.violations.append(f"{self.name} {method} {path}: {'; '.join(problems)}")
            self.log.append((method, path, status))
            self.calls[method] += 1
            return status, out_headers, data

    def _fault(self, method: str, path: str) -> Fault | None:
        for f in self.faults:
            if f.method in (method, "*") and f.path.search(path):
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self.faults.remove(f)
                return f
        return None

    def _violate(self, method: str, path: str, why: str):
        self.violations.append(f"{self.name} {method} {path}: {why}")
        self.log.append((method, path, 400))
        return 400, {"Content-Type": "text/plain"}, f"contract violation: {why}".encode()

    def _encode(self, reply: Reply, fault: Fault | None = None):
        headers = {"X-Request-Id": uuid.uuid4().hex, **reply.headers}
        if fault is not None and fault.body is not None:
            reply = Reply(reply.status, fault.body, reply.headers, reply.content_type)
        if reply.body is None:
            headers["Content-Type"] = reply.content_type
            return reply.status, headers, b""
        headers["Content-Type"] = reply.content_type
        if reply.content_type == "application/json":
            return reply.status, headers, json.dumps(reply.body).encode()
        return reply.status, headers, str(reply.body).encode()

    # ------------------------------------------------------------------ state

    STATE: tuple[str, ...] = ()  # attributes that make up the fake's data

    def dump(self) -> dict:
        """The fake's data (JSON-able), to start a later fake where this one stopped."""
        with self._lock:
            return {k: _jsonable(getattr(self, k)) for k in self.STATE}

    def restore(self, data: dict) -> None:
        with self._lock:
            for k in self.STATE:
                if k in data:
                    setattr(self, k, _keyed(data[k]))
            self.restored()

    def restored(self) -> None:
        """Hook: rebuild what is derived from the data (id counters)."""

    # ------------------------------------------------------------------ per API

    def auth(self, req: Req) -> Reply | None:
        """None when authorized, else the error reply."""
        return None

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, {"message": message})


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _keyed(v):
    """JSON turned int keys into strings: turn them back (nested)."""
    if isinstance(v, dict):
        return {(int(k) if k.isdigit() else k): _keyed(x) for k, x in v.items()}
    return v
