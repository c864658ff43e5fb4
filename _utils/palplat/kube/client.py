"""The Kubernetes API as a service, one method per verb: :class:`Kube`.

It talks to the API server through the ``kubernetes`` client's REST layer (``ApiClient``):
server-side apply with field manager ``palplat``, discovery cached per instance, every
request counted in ``kube.stats``. Error answers become :class:`~palplat.kube.KubeError`
with a message that says what to fix.

``kubernetes`` itself is imported only where a request is made: the Salt modules import
:mod:`palplat.kube` before they check that the client library is installed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from palplat import redact
from palplat.errors import InputError
from palplat.kube.errors import KubeError, NotFound, UnknownKind, Unreachable
from palplat.kube.refs import FIELD_MANAGER, Resource, _namespace, key_of, ref_of
from palplat.secret import Secret


def _client_from(kubeconfig: str | None):
    """An ``ApiClient`` from ``kubeconfig``, the default kubeconfig, or the in-cluster config."""
    from kubernetes import config as kconfig

    try:
        if kubeconfig:
            return kconfig.new_client_from_config(config_file=kubeconfig, persist_config=False)
        try:
            return kconfig.new_client_from_config(persist_config=False)
        except kconfig.ConfigException:
            from kubernetes.client import ApiClient, Configuration

            cfg = Configuration()
            kconfig.load_incluster_config(client_configuration=cfg)
            return ApiClient(configuration=cfg)
    except (kconfig.ConfigException, OSError, TypeError, ValueError) as exc:
        where = kubeconfig or "the default kubeconfig (KUBECONFIG, ~/.kube/config)"
        raise InputError(
            f"cannot load kubeconfig {where}: {exc}; set palplat:k3s:kubeconfig to a readable "
            "kubeconfig file"
        ) from None


USER_AGENT = "palplat"


def set_user_agent(agent: str) -> None:
    """What every :class:`Kube` this process makes tells the API server it is (the
    loader glue sets ``palplat (<minion id>)``)."""
    global USER_AGENT  # noqa: PLW0603 - one per process: the minion's job, the runner
    USER_AGENT = agent


class Kube:
    """The Kubernetes API, one method per verb. Discovery is cached per instance.

    ``stats``: ``requests`` (every HTTP request), ``writes`` (requests that persist
    something: non-dry-run PATCH/POST/PUT/DELETE) and ``verbs`` (a Counter per verb).
    """

    def __init__(
        self,
        kubeconfig: str | None = None,
        *,
        api_client=None,
        field_manager: str = FIELD_MANAGER,
        request_timeout: float = 30,
    ):
        self.api = api_client if api_client is not None else _client_from(kubeconfig)
        if api_client is None:
            self.api.user_agent = USER_AGENT
        self.field_manager = field_manager
        self.request_timeout = request_timeout
        self.stats: dict[str, Any] = {"requests": 0, "writes": 0, "verbs": Counter()}
        self._discovery: dict[str, dict[str, Resource]] = {}

    @property
    def server(self) -> str:
        return getattr(self.api.configuration, "host", "?")

    def close(self) -> None:
        try:
            self.api.close()
        except Exception:  # noqa: BLE001, S110 - closing a pool must not fail a state
            pass

    # ---------------------------------------------------------------------- transport

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        what: str = "",
    ) -> Any:
        """One HTTP request; returns the decoded JSON body. Raises :class:`KubeError`."""
        method = method.upper()
        headers = {"Accept": "application/json"}
        if body is not None or method in ("PATCH", "POST", "PUT"):
            headers["Content-Type"] = content_type or "application/json"
        dry = any(k == "dryRun" for k, _ in (query or []))
        self.stats["requests"] += 1
        self.stats["verbs"][method + (" dry-run" if dry else "")] += 1
        if method in ("PATCH", "POST", "PUT", "DELETE") and not dry:
            self.stats["writes"] += 1
        try:
            req = self.api.param_serialize(
                method,
                path,
                query_params=list(query or []),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            resp = self.api.call_api(*req, _request_timeout=self.request_timeout)
            data = resp.read()
        except Exception as exc:  # urllib3 errors, TLS, ApiException(status=0)
            from kubernetes.client.exceptions import ApiException

            if isinstance(exc, ApiException) and exc.status:
                raise _api_error(
                    exc.status, exc.reason or "", exc.body, method, what or path
                ) from None
            raise Unreachable(
                f"cannot reach the Kubernetes API server at {self.server} ({method} "
                f"{what or path}): {type(exc).__name__}: {_short(str(exc))}; check that the "
                "API server is running and the kubeconfig points at it"
            ) from None
        status = resp.status
        if not 200 <= status <= 299:
            raise _api_error(status, resp.reason or "", data, method, what or path)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise KubeError(
                f"{method} {what or path}: the API server answered with something that is not JSON",
                status=status,
            ) from None

    # ---------------------------------------------------------------------- discovery

    def resource(self, api_version: str, kind: str) -> Resource:
        """The resource serving ``kind`` in ``api_version`` (one discovery call per version)."""
        if not api_version or not kind:
            raise InputError("apiVersion and kind are required")
        cached = self._discovery.get(api_version)
        if cached is not None and kind in cached:
            return cached[kind]
        found = self._discover(api_version)
        if kind in found:
            return found[kind]
        raise UnknownKind(
            f"the API server does not serve kind {kind} in {api_version}; install its "
            "CustomResourceDefinition first (and wait for it to be Established) or fix "
            "apiVersion/kind",
            status=404,
        )

    def _discover(self, api_version: str) -> dict[str, Resource]:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            doc = self.request("GET", path, what=f"discovery {api_version}")
        except NotFound:
            self._discovery[api_version] = {}
            return {}
        found: dict[str, Resource] = {}
        for r in (doc or {}).get("resources", []):
            if "/" in r.get("name", ""):
                continue  # subresource
            found[r["kind"]] = Resource(
                api_version, r["kind"], r["name"], bool(r.get("namespaced"))
            )
        self._discovery[api_version] = found
        return found

    def forget(self, api_version: str | None = None) -> None:
        """Drop cached discovery (after a CRD was installed)."""
        if api_version is None:
            self._discovery.clear()
        else:
            self._discovery.pop(api_version, None)

    # --------------------------------------------------------------------------- verbs

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict | None:
        """The live object, or None when it does not exist."""
        res = self.resource(api_version, kind)
        ns = _namespace(res, namespace)
        try:
            return self.request("GET", res.path(name, ns), what=key_of(kind, name, ns))
        except NotFound:
            return None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict]:
        """Every object of a kind (in ``namespace``, or in all namespaces when None)."""
        res = self.resource(api_version, kind)
        query: list[tuple[str, Any]] = [("limit", 500)]
        if label_selector:
            query.append(("labelSelector", label_selector))
        items: list[dict] = []
        path = res.path(None, namespace if res.namespaced else None)
        cont = None
        while True:
            q = query + ([("continue", cont)] if cont else [])
            doc = self.request("GET", path, query=q, what=f"list {kind}") or {}
            for item in doc.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                items.append(item)
            cont = (doc.get("metadata") or {}).get("continue")
            if not cont:
                return items

    def apply(
        self, manifest: Mapping[str, Any], *, dry_run: bool = False, force: bool = True
    ) -> dict:
        """Server-side apply of ``manifest`` (field manager ``palplat``); the resulting object.

        ``dry_run=True`` sends the very same request with ``dryRun=All``: the server runs
        defaulting, validation and admission and returns the object it would store.
        """
        ref = ref_of(manifest)
        if not ref.name:
            raise InputError(f"{ref.kind or 'object'}: metadata.name is required")
        res = self.resource(ref.api_version, ref.kind)
        ns = _namespace(res, ref.namespace)
        body = dict(reveal(dict(manifest)))
        if res.namespaced:
            body["metadata"] = {**(body.get("metadata") or {}), "namespace": ns}
        query: list[tuple[str, Any]] = [("fieldManager", self.field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request(
            "PATCH",
            res.path(ref.name, ns),
            query=query,
            body=body,
            content_type="application/apply-patch+yaml",
            what=key_of(ref.kind, ref.name, ns),
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        propagation: str = "Background",
    ) -> bool:
        """Delete an object; False when it did not exist."""
        res = self.resource(api_version, kind)
        ns = _namespace(res, namespace)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        query: list[tuple[str, Any]] = []
        if dry_run:
            body["dryRun"] = ["All"]
            query.append(("dryRun", "All"))
        try:
            self.request(
                "DELETE", res.path(name, ns), query=query, body=body, what=key_of(kind, name, ns)
            )
        except NotFound:
            return False
        return True


def reveal(obj: Any) -> Any:
    """``obj`` with every :class:`palplat.secret.Secret` replaced by its value (to send to
    the API server); the very same object when it holds none."""
    if isinstance(obj, Secret):
        return obj.reveal()
    if isinstance(obj, dict):
        new = {k: reveal(v) for k, v in obj.items()}
        return obj if all(new[k] is v for k, v in obj.items()) else new
    if isinstance(obj, list):
        new = [reveal(v) for v in obj]
        return obj if all(a is b for a, b in zip(new, obj, strict=True)) else new
    return obj


def _short(text: str, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    # masked before it is cut or its whitespace folded: a secret at the cut (or one with
    # a newline) would otherwise no longer match and leak its prefix
    text = " ".join(redact.mask_text(str(text)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# what to do about an error answer, by HTTP status
_HINTS = {
    400: " (bad request: fix the manifest)",
    403: " (forbidden: check the kubeconfig's permissions or the admission policy)",
    409: " (conflict: another field manager owns these fields)",
    422: " (the object is invalid: fix the manifest)",
}


def _api_error(status: int, reason: str, body: Any, method: str, what: str) -> KubeError:
    """The :class:`KubeError` for an error answer: the server's message and a hint."""
    message = ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            doc = json.loads(body)
            message = doc.get("message") or ""
            reason = doc.get("reason") or reason
        except ValueError:
            message = body
    verb = {"PATCH": "apply", "GET": "read", "DELETE": "delete"}.get(method, method)
    text = f"{verb} {what}: the API server answered {status} {reason}"
    if message:
        text += f": {_short(message, 1500)}"
    if status == 404:
        return NotFound(text, status=status, reason=reason)
    if status == 500 and "typed patch" in message:
        text += " (the object does not match its schema: fix the manifest)"
    text += _HINTS.get(status, "")
    return KubeError(text, status=status, reason=reason)
