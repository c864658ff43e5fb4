"""Kubernetes objects: a service (one method per API verb), a differ, a runner, a waiter.

- :class:`Kube` talks to the API server through the ``kubernetes`` client's REST layer
  (``ApiClient``): server-side apply with field manager ``palplat``, discovery cached per
  instance, every request counted in ``kube.stats``.
- :func:`normalize` / :func:`diff` compare objects field by field, ignoring what the server
  owns (managedFields, resourceVersion, status, ...); Secret data is always ``<hidden>``.
- :func:`converge` decides per object: create / patch / delete / nothing. Test mode is the
  same server-side apply with ``dryRun=All``, diffed against the live object.
- :func:`wait` polls a predicate per kind on a monotonic clock and raises
  :class:`~palplat.errors.WaitTimeout` naming what was and was not ready.

A no-op converge costs one LIST per kind and no write: an object whose live copy carries the
hash of the desired manifest (annotation ``palplat.io/applied-hash``) and already holds every
desired value is left alone; anything else goes through the dry-run apply, which decides.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from palplat import redact
from palplat.errors import InputError, PalplatError, WaitTimeout

log = logging.getLogger("palplat.kube")

FIELD_MANAGER = "palplat"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "palplat"
OWNER_LABEL = "palplat.io/owner"
HASH_ANNOTATION = "palplat.io/applied-hash"
HIDDEN = redact.HIDDEN

CRD_API = "apiextensions.k8s.io/v1"

# metadata fields owned by the server: never part of a diff
_SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# annotations written by servers, controllers or other clients, never by palplat
_SERVER_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    HASH_ANNOTATION,
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


# ------------------------------------------------------------------------------ errors


class KubeError(PalplatError):
    """The API server refused a request or could not be reached. Message is masked."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = ""):
        self.status = status
        self.reason = reason
        super().__init__(redact.mask_text(message))


class NotFound(KubeError):
    """404 from the API server."""


class UnknownKind(KubeError):
    """The API server does not serve this apiVersion/kind (CRD missing?)."""


class Unreachable(KubeError):
    """No answer from the API server (connection refused, TLS, timeout)."""


class ConvergeError(KubeError):
    """An object failed while converging; ``changes`` holds what was already done."""

    def __init__(self, message: str, changes: dict, cause: KubeError | None = None):
        self.changes = changes
        super().__init__(message, status=getattr(cause, "status", None))


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @property
    def key(self) -> str:
        return key_of(self.kind, self.name, self.namespace)

    def __str__(self) -> str:
        return self.key


def key_of(kind: str, name: str, namespace: str | None = None) -> str:
    """The key objects are reported under: ``Kind/namespace/name`` or ``Kind/name``."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def ref_of(obj: Mapping[str, Any] | Ref | tuple | list) -> Ref:
    """A :class:`Ref` from a manifest, a Ref, or ``(api_version, kind, name[, namespace])``."""
    if isinstance(obj, Ref):
        return obj
    if isinstance(obj, (tuple, list)):
        return Ref(*obj)
    meta = obj.get("metadata") or {}
    return Ref(
        obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("name", ""), meta.get("namespace")
    )


@dataclass(frozen=True)
class Resource:
    """One discovered API resource."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, name: str | None = None, namespace: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base


# ------------------------------------------------------------------------------ service


def _client_from(kubeconfig: str | None):
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
            obj = self.request("GET", res.path(name, ns), what=key_of(kind, name, ns))
        except NotFound:
            return None
        return obj

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
    from palplat.secret import Secret

    if isinstance(obj, Secret):
        return obj.reveal()
    if isinstance(obj, dict):
        new = {k: reveal(v) for k, v in obj.items()}
        return obj if all(new[k] is v for k, v in obj.items()) else new
    if isinstance(obj, list):
        new = [reveal(v) for v in obj]
        return obj if all(a is b for a, b in zip(new, obj, strict=True)) else new
    return obj


def _namespace(res: Resource, namespace: str | None) -> str | None:
    if not res.namespaced:
        return None
    return namespace or "default"


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _api_error(status: int, reason: str, body: Any, method: str, what: str) -> KubeError:
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
    if status in (400, 403, 409, 422):
        text += {
            403: " (forbidden: check the kubeconfig's permissions or the admission policy)",
            409: " (conflict: another field manager owns these fields)",
            422: " (the object is invalid: fix the manifest)",
            400: " (bad request: fix the manifest)",
        }[status]
    return KubeError(text, status=status, reason=reason)


# ------------------------------------------------------------------- normalize and diff


def normalize(obj: Mapping[str, Any] | None) -> dict:
    """A copy without what the server owns: managedFields, resourceVersion, generation,
    uid, creationTimestamp, selfLink, status and server/client-written annotations."""
    return copy.deepcopy(_strip(obj))


def _strip(obj: Mapping[str, Any] | None) -> dict:
    """:func:`normalize` without the copy: nested values are shared with ``obj`` (read only)."""
    if obj is None:
        return {}
    out = dict(obj)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, Mapping):
        meta = dict(meta)
        for f in _SERVER_METADATA:
            meta.pop(f, None)
        ann = meta.get("annotations")
        if ann:
            ann = {k: v for k, v in ann.items() if k not in _SERVER_ANNOTATIONS}
        if ann:
            meta["annotations"] = ann
        else:
            meta.pop("annotations", None)
        if not meta.get("labels"):
            meta.pop("labels", None)
        out["metadata"] = meta
    return out


def is_secret(obj: Mapping[str, Any] | None) -> bool:
    return bool(obj) and obj.get("kind") == "Secret" and obj.get("apiVersion", "v1") == "v1"


def masked(obj: Any) -> Any:
    """A copy safe to return or log: Secret data/stringData values are ``<hidden>`` and every
    registered secret is masked (lists of objects too)."""
    if isinstance(obj, list):
        return [masked(o) for o in obj]
    if not isinstance(obj, Mapping):
        return redact.mask(obj)
    out = dict(obj)
    if is_secret(out):
        for f in ("data", "stringData"):
            if isinstance(out.get(f), Mapping):
                out[f] = {k: HIDDEN for k in out[f]}
        meta = dict(out.get("metadata") or {})
        ann = dict(meta.get("annotations") or {})
        if "kubectl.kubernetes.io/last-applied-configuration" in ann:
            ann["kubectl.kubernetes.io/last-applied-configuration"] = HIDDEN
            meta["annotations"] = ann
            out["metadata"] = meta
        meta.pop("managedFields", None)
    return redact.mask(out)


def _fmt_key(prefix: str, key: Any) -> str:
    k = str(key)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", k):
        return f"{prefix}.{k}" if prefix else k
    return f"{prefix}[{k}]"


def _named(items: list) -> dict | None:
    """Map a list of dicts by their unique 'name' (containers, ports, env...)."""
    if not items or not all(isinstance(i, Mapping) and "name" in i for i in items):
        return None
    names = [i["name"] for i in items]
    if len(set(names)) != len(names):
        return None
    return {n: i for n, i in zip(names, items, strict=True)}


def _walk(old: Any, new: Any, path: str, out: dict) -> None:
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for k in list(old) + [k for k in new if k not in old]:
            _walk(old.get(k), new.get(k), _fmt_key(path, k), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        o, n = _named(old), _named(new)
        if o is not None and n is not None:
            for k in list(o) + [k for k in n if k not in o]:
                _walk(o.get(k), n.get(k), f"{path}[{k}]", out)
            return
        if len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                _walk(a, b, f"{path}[{i}]", out)
            return
    out[path or "."] = {"old": old, "new": new}


def _hide(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: HIDDEN for k in value}
    return HIDDEN


def diff(live: Mapping[str, Any] | None, desired: Mapping[str, Any] | None) -> dict:
    """Field-level differences ``{"path.to.field": {"old": ..., "new": ...}}``, only what
    changed. ``live=None``: the whole object under ``"."`` (a create); ``desired=None``: a
    delete. Secret data/stringData values are always ``<hidden>``; registered secrets masked.
    """
    if live is None and desired is None:
        return {}
    secret = is_secret(live) or is_secret(desired)
    if live is None:
        return {".": {"old": None, "new": masked(normalize(desired))}}
    if desired is None:
        ref = ref_of(live)
        return {".": {"old": f"present ({ref.key})", "new": None}}
    out: dict[str, dict] = {}
    _walk(_strip(live), _strip(desired), "", out)
    if secret:
        for path, change in out.items():
            if path == "." or re.match(r"^(data|stringData)([.\[]|$)", path):
                change["old"], change["new"] = _hide(change["old"]), _hide(change["new"])
    return redact.mask(out)


def _project(value: Any, shape: Any) -> Any:
    """``value`` restricted to the keys present in ``shape`` (recursively)."""
    if isinstance(shape, Mapping) and isinstance(value, Mapping):
        return {k: _project(value.get(k), v) for k, v in shape.items()}
    if isinstance(shape, list) and isinstance(value, list) and len(shape) == len(value):
        return [_project(v, s) for v, s in zip(value, shape, strict=True)]
    return value


project = _project


def _holds(value: Any, want: Any) -> bool:
    """``_project(value, want) == want``, without building the projection."""
    if isinstance(want, dict):
        if not isinstance(value, dict):
            return False
        get = value.get
        return all(_holds(get(k), w) for k, w in want.items())
    if isinstance(want, list) and isinstance(value, list) and len(want) == len(value):
        return all(_holds(v, w) for v, w in zip(value, want, strict=True))
    return value == want


def _secret_as_stored(obj: dict) -> dict:
    """A Secret manifest's stringData folded into data (as the server stores it)."""
    if not is_secret(obj) or not obj.get("stringData"):
        return obj
    out = dict(obj)
    data = dict(out.get("data") or {})
    for k, v in out.pop("stringData").items():
        data[k] = base64.b64encode(str(v).encode()).decode()
    out["data"] = data
    return out


# -------------------------------------------------------------------------- ownership


def check_owner(owner: str) -> str:
    if not owner or len(owner) > 63 or not _LABEL_VALUE.match(owner):
        raise InputError(
            f"owner {owner!r} is not a valid label value: use at most 63 characters, "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return owner


def owner_selector(owner: str) -> str:
    return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{OWNER_LABEL}={check_owner(owner)}"


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def owned(manifest: Mapping[str, Any], owner: str) -> dict:
    """A copy of ``manifest`` with palplat's ownership labels and its applied-hash.

    Only ``metadata`` is copied; the rest is shared with ``manifest`` (treat as read-only).
    """
    out = dict(manifest)
    meta = out["metadata"] = dict(out.get("metadata") or {})
    labels = meta["labels"] = dict(meta.get("labels") or {})
    labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
    labels[OWNER_LABEL] = check_owner(owner)
    ann = dict(meta.get("annotations") or {})
    ann.pop(HASH_ANNOTATION, None)
    if ann:
        meta["annotations"] = ann
    else:
        meta.pop("annotations", None)
    digest = manifest_hash(out)
    meta.setdefault("annotations", {})[HASH_ANNOTATION] = digest
    return out


def prune(
    kube: Kube,
    owner: str,
    keep_refs: Iterable[Any],
    *,
    kinds: Iterable[tuple[str, str]],
    dry_run: bool = False,
    listed: Mapping[tuple[str, str], list[dict]] | None = None,
) -> dict:
    """Delete objects labelled as owned by ``owner`` that are not in ``keep_refs``.

    Only objects carrying both palplat labels (managed-by and this owner) are ever
    candidates; CustomResourceDefinitions never are.
    Returns changes keyed by ``Kind/namespace/name``.
    """
    keep = {_identity(ref_of(r)) for r in keep_refs}
    selector = owner_selector(owner)
    changes: dict[str, dict] = {}
    for api_version, kind in sorted(set(kinds)):
        if kind in NEVER_PRUNED:
            continue  # deleting a CRD deletes every custom resource of it: never automatic
        try:
            items = (listed or {}).get((api_version, kind))
            if items is None:
                items = kube.list(api_version, kind, label_selector=selector)
        except UnknownKind:
            continue  # the kind is gone: nothing of it can be left
        for obj in items:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if labels.get(OWNER_LABEL) != owner or labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
                continue
            ref = ref_of(obj)
            ref = Ref(api_version, kind, ref.name, ref.namespace)
            if _identity(ref) in keep:
                continue
            if (obj.get("metadata") or {}).get("deletionTimestamp"):
                continue  # already going
            if kube.delete(api_version, kind, ref.name, ref.namespace, dry_run=dry_run):
                changes[ref.key] = diff(obj, None)
    return changes


_prune = prune


def remove(kube: Kube, refs: Iterable[Any], *, dry_run: bool) -> dict:
    """Delete the objects named by ``refs`` (those that exist); changes keyed by object.

    ``dry_run`` sends the same DELETE with ``dryRun=All``. After a real delete the object is
    re-read: it must be gone or terminating.
    """
    changes: dict[str, dict] = {}
    for r in refs:
        ref = ref_of(r)
        try:
            res = kube.resource(ref.api_version, ref.kind)
        except UnknownKind:
            continue  # the kind is not served: no such object can exist
        ns = _namespace(res, ref.namespace)
        key = key_of(ref.kind, ref.name, ns)
        live = kube.get(ref.api_version, ref.kind, ref.name, ns)
        if live is None or (live.get("metadata") or {}).get("deletionTimestamp"):
            continue
        try:
            if not kube.delete(ref.api_version, ref.kind, ref.name, ns, dry_run=dry_run):
                continue
        except KubeError as exc:
            raise ConvergeError(str(exc), changes, exc) from None
        changes[key] = diff(live, None)
        if not dry_run:
            back = kube.get(ref.api_version, ref.kind, ref.name, ns)
            if back is not None and not (back.get("metadata") or {}).get("deletionTimestamp"):
                raise ConvergeError(
                    f"verify {key}: still present and not terminating after delete", changes
                )
    return changes


def _identity(ref: Ref) -> tuple:
    group = ref.api_version.rsplit("/", 1)[0] if "/" in ref.api_version else ""
    return (group, ref.kind, ref.namespace or None, ref.name)


# ------------------------------------------------------------------------------ runner


_ORDER = {"Namespace": 0, "CustomResourceDefinition": 1}

# What converge(prune=True) looks at besides the kinds of the desired objects, so that an
# object whose whole kind left the manifests is still pruned. CRDs are never pruned (their
# deletion deletes every custom resource); PersistentVolumeClaims only when named in
# ``prune_kinds`` (data); Namespaces (deleting one deletes everything in it, whoever made
# it) only while the manifests still hold Namespaces or when named in ``prune_kinds``.
DEFAULT_PRUNE_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
)
NEVER_PRUNED = {"CustomResourceDefinition"}
KEPT_UNLESS_NAMED = {"PersistentVolumeClaim"}


def validate_manifests(manifests: Any, where: str = "manifests") -> list[dict]:
    """Check the shape of every manifest before anything changes; InputError names each."""
    if isinstance(manifests, Mapping):
        manifests = [manifests]
    if not isinstance(manifests, (list, tuple)):
        raise InputError(f"{where} must be a list of Kubernetes objects (mappings)")
    problems = []
    seen: dict[tuple, int] = {}
    out = []
    for i, m in enumerate(manifests):
        at = f"{where}[{i}]"
        if not isinstance(m, Mapping):
            problems.append(f"{at}: must be a mapping with apiVersion, kind and metadata.name")
            continue
        missing = [f for f in ("apiVersion", "kind") if not m.get(f)]
        meta = m.get("metadata")
        if not isinstance(meta, Mapping) or not meta.get("name"):
            missing.append("metadata.name")
        if missing:
            problems.append(f"{at}: {', '.join(missing)} missing")
            continue
        ident = _identity(ref_of(m))
        if ident in seen:
            problems.append(f"{at}: duplicates {where}[{seen[ident]}] ({ref_of(m).key})")
            continue
        seen[ident] = i
        out.append(reveal(dict(m)))
    if problems:
        raise InputError("; ".join(problems) + "; nothing was changed")
    return out


def converge(
    kube: Kube,
    manifests: Iterable[Mapping[str, Any]],
    *,
    owner: str,
    dry_run: bool,
    prune: bool = False,
    prune_kinds: Iterable[tuple[str, str]] | None = None,
    progress: Callable[..., Any] | None = None,
    crd_timeout: float = 60,
) -> dict:
    """Bring ``manifests`` to the cluster; the decision per object is create / patch /
    delete / nothing.

    Returns ``{"changes": {key: field diff}, "actions": {key: action}}``. In ``dry_run``
    every apply is sent with ``dryRun=All`` and nothing is stored. After a real write the
    object is re-read and compared with what the server returned (verification).
    Namespaces go first, then CRDs (waited for until Established), then the rest in order.
    """
    check_owner(owner)
    desired = [owned(m, owner) for m in validate_manifests(list(manifests))]
    desired.sort(key=lambda m: _ORDER.get(m["kind"], 2))
    changes: dict[str, dict] = {}
    actions: dict[str, str] = {}
    selector = owner_selector(owner)
    listed: dict[tuple[str, str], list[dict] | None] = {}
    live_index: dict[tuple, dict] = {}

    def prefetch(api_version: str, kind: str) -> None:
        if (api_version, kind) in listed:
            return
        try:
            items = kube.list(api_version, kind, label_selector=selector)
        except UnknownKind:
            listed[(api_version, kind)] = None
            return
        listed[(api_version, kind)] = items
        for obj in items:
            r = ref_of(obj)
            live_index[_identity(Ref(api_version, kind, r.name, r.namespace))] = obj

    new_namespaces: set[str] = set()  # namespaces a dry run would create
    new_crds: dict[str, dict] = {}  # group/plural -> applied CRD (real run)
    pending_crds: set[tuple[str, str]] = set()  # (group, kind) served by a CRD in this batch
    for m in desired:
        if m["kind"] == "CustomResourceDefinition":
            spec = m.get("spec") or {}
            pending_crds.add((spec.get("group", ""), (spec.get("names") or {}).get("kind", "")))

    try:
        for m in desired:
            ref = ref_of(m)
            group = ref.api_version.rsplit("/", 1)[0] if "/" in ref.api_version else ""
            try:
                res = kube.resource(ref.api_version, ref.kind)
            except UnknownKind:
                if (group, ref.kind) not in pending_crds:
                    raise
                if dry_run:
                    key = key_of(ref.kind, ref.name, ref.namespace)
                    actions[key] = "create"
                    changes[key] = diff(None, m)
                    continue
                _wait_crds(kube, new_crds, crd_timeout, progress)
                kube.forget(ref.api_version)
                res = kube.resource(ref.api_version, ref.kind)
            ns = _namespace(res, ref.namespace)
            key = key_of(ref.kind, ref.name, ns)
            prefetch(ref.api_version, ref.kind)
            ident = _identity(Ref(ref.api_version, ref.kind, ref.name, ns))
            live = live_index.get(ident)
            if live is None:
                live = kube.get(ref.api_version, ref.kind, ref.name, ns)
            if res.namespaced:
                m.setdefault("metadata", {})["namespace"] = ns
            if live is not None and _unchanged(live, m):
                actions[key] = "nothing"
                continue
            if live is None:
                # a create: the change is the manifest itself (short to review); in test
                # mode the server still validates and admits it through a dry-run apply
                actions[key] = "create"
                changes_now = diff(None, m)
                if dry_run:
                    if ns not in new_namespaces:  # else the server cannot dry-run it yet
                        try:
                            kube.apply(m, dry_run=True)
                        except KubeError as exc:
                            raise ConvergeError(str(exc), changes, exc) from None
                    if ref.kind == "Namespace":
                        new_namespaces.add(ref.name)
                    changes[key] = changes_now
                    continue
            else:
                try:
                    would = kube.apply(m, dry_run=True)
                except KubeError as exc:
                    raise ConvergeError(str(exc), changes, exc) from None
                changes_now = diff(live, would)
                if not changes_now:
                    actions[key] = "nothing"
                    if not dry_run and _hash(live) != _hash(m):
                        kube.apply(m)  # record the new manifest hash: next run is fast
                    continue
                actions[key] = "patch"
                if dry_run:
                    changes[key] = changes_now
                    continue
            if progress:
                progress("apply", f"{actions[key]} {key}", key=key)
            try:
                result = kube.apply(m)
            except KubeError as exc:
                raise ConvergeError(str(exc), changes, exc) from None
            changes[key] = changes_now if live is None else diff(live, result)
            _verify(kube, m, result, key)
            if ref.kind == "CustomResourceDefinition":
                new_crds[ref.name] = result
        if new_crds and not dry_run:
            _wait_crds(kube, new_crds, crd_timeout, progress)
        if prune:
            named = set(prune_kinds or ())
            kinds = {
                k
                for k in set(DEFAULT_PRUNE_KINDS) | {(m["apiVersion"], m["kind"]) for m in desired}
                if k[1] not in KEPT_UNLESS_NAMED
            } | named
            kinds = {k for k in kinds if k[1] not in NEVER_PRUNED}
            pruned = _prune(
                kube,
                owner,
                desired,
                kinds=kinds,
                dry_run=dry_run,
                listed={k: v for k, v in listed.items() if v is not None},
            )
            for key, d in pruned.items():
                actions[key] = "delete"
                changes[key] = d
    except ConvergeError:
        raise
    except KubeError as exc:
        raise ConvergeError(str(exc), changes, exc) from None
    return {"changes": changes, "actions": actions}


def _hash(obj: Mapping[str, Any] | None) -> str | None:
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)


def _unchanged(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True when applying ``desired`` cannot change ``live``: the live object records this
    exact manifest as palplat's last apply and still holds every desired value."""
    if _hash(live) != _hash(desired):
        return False
    return _holds(_strip(live), _strip(_secret_as_stored(dict(desired))))


def _verify(kube: Kube, desired: Mapping[str, Any], result: Mapping[str, Any], key: str) -> None:
    ref = ref_of(result)
    back = kube.get(
        ref.api_version or desired["apiVersion"],
        ref.kind or desired["kind"],
        ref.name,
        ref.namespace,
    )
    if back is None:
        raise KubeError(f"verify {key}: the object is gone right after it was applied")
    shape = _strip(_secret_as_stored(dict(desired)))
    got, expect = _project(_strip(back), shape), _project(_strip(result), shape)
    if got != expect:
        fields = ", ".join(sorted(diff(expect, got))) or "?"
        raise KubeError(
            f"verify {key}: the object read back differs from what was applied ({fields}); "
            "another controller may be fighting over these fields"
        )


def _wait_crds(kube: Kube, crds: Mapping[str, dict], timeout: float, progress) -> None:
    if not crds:
        return
    refs = [Ref(CRD_API, "CustomResourceDefinition", n) for n in crds]
    wait(kube, refs, timeout=timeout, progress=progress)
    for crd in crds.values():
        spec = crd.get("spec") or {}
        for v in spec.get("versions") or []:
            kube.forget(f"{spec.get('group')}/{v.get('name')}")


# ------------------------------------------------------------------------------ waiter


def _condition(obj: Mapping[str, Any], ctype: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _cond_ready(obj: Mapping[str, Any], ctype: str) -> tuple[bool, str]:
    c = _condition(obj, ctype)
    if c is None:
        return False, f"no {ctype} condition yet"
    if c.get("status") == "True":
        return True, ctype
    why = ": ".join(x for x in (c.get("reason"), c.get("message")) if x)
    return False, f"{ctype}={c.get('status')}" + (f" ({why})" if why else "")


class WaitFailed(KubeError):
    """The object reached a state it cannot recover from (a failed Job)."""


def ready(obj: Mapping[str, Any] | None) -> tuple[bool, str]:
    """The readiness predicate per kind: ``(ready, why not)``."""
    if obj is None:
        return False, "does not exist"
    kind = obj.get("kind")
    if kind == "CustomResourceDefinition":
        return _cond_ready(obj, "Established")
    if kind == "Namespace":
        phase = (obj.get("status") or {}).get("phase")
        return phase == "Active", f"phase {phase or 'unknown'}"
    if kind == "Deployment":
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        if status.get("observedGeneration", 0) < meta.get("generation", 0):
            return False, "the controller has not observed the latest generation yet"
        ok, why = _cond_ready(obj, "Available")
        if ok:
            return True, why
        want = (obj.get("spec") or {}).get("replicas", 1)
        return False, f"{why}; {status.get('availableReplicas', 0)}/{want} replicas available"
    if kind == "Job":
        failed, _ = _cond_ready(obj, "Failed")
        if failed:
            c = _condition(obj, "Failed") or {}
            why = " ".join(x for x in (c.get("reason"), c.get("message")) if x)
            raise WaitFailed(f"Job {ref_of(obj).key} failed: {why or 'Failed condition'}")
        return _cond_ready(obj, "Complete")
    return True, "exists"


def wait(
    kube: Kube,
    refs: Iterable[Any],
    *,
    timeout: float,
    progress: Callable[..., Any] | None = None,
    interval: float = 0.5,
    max_interval: float = 3.0,
) -> dict:
    """Wait until every ref is ready (predicate per kind) or raise :class:`WaitTimeout`.

    ``refs``: manifests, :class:`Ref` or ``(api_version, kind, name[, namespace])``.
    Returns ``{"ready": [keys], "elapsed": seconds}``. The timeout's message and
    ``.partial`` (``{"ready": [...], "not_ready": {key: why}}``) say what was not ready.
    """
    pending: dict[str, Ref] = {}
    for r in refs:
        ref = ref_of(r)
        try:
            res = kube.resource(ref.api_version, ref.kind)
            ref = Ref(ref.api_version, ref.kind, ref.name, _namespace(res, ref.namespace))
        except UnknownKind:
            pass
        pending[ref.key] = ref
    start = time.monotonic()
    deadline = start + timeout
    done: list[str] = []
    why: dict[str, str] = {}
    total = len(pending)
    if progress:
        progress("start", f"waiting up to {timeout:g}s for {total} object(s): {', '.join(pending)}")
    delay = interval
    while True:
        for key, ref in list(pending.items()):
            try:
                obj = kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
            except UnknownKind:
                kube.forget(ref.api_version)
                obj = None
            if obj is not None:
                obj.setdefault("kind", ref.kind)
            ok, reason = ready(obj)
            if ok:
                done.append(key)
                del pending[key]
                why.pop(key, None)
            else:
                why[key] = reason
        elapsed = time.monotonic() - start
        if not pending:
            if progress:
                progress("done", f"{total} object(s) ready after {elapsed:.1f}s", force=True)
            return {"ready": done, "elapsed": round(elapsed, 3)}
        now = time.monotonic()
        if now >= deadline:
            not_ready = {k: why.get(k, "unknown") for k in pending}
            msg = (
                f"timed out after {timeout:g}s: {len(pending)} of {total} object(s) not ready: "
                + "; ".join(f"{k} ({v})" for k, v in not_ready.items())
                + (f"; ready: {', '.join(done)}" if done else "; none ready")
            )
            if progress:
                progress("timeout", msg, force=True)
            raise WaitTimeout(redact.mask_text(msg), {"ready": done, "not_ready": not_ready})
        if progress:
            progress(
                "waiting",
                f"{len(done)}/{total} ready after {elapsed:.0f}s; waiting for "
                + ", ".join(f"{k} ({why.get(k)})" for k in pending),
            )
        time.sleep(min(delay, max(0.0, deadline - now)))
        delay = min(delay * 1.5, max_interval)
