"""What objects are called: references, discovered API resources, and the labels and
annotations palplat writes on every object it owns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from palplat import redact

FIELD_MANAGER = "palplat"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "palplat"
OWNER_LABEL = "palplat.io/owner"
HASH_ANNOTATION = "palplat.io/applied-hash"
HIDDEN = redact.HIDDEN

CRD_API = "apiextensions.k8s.io/v1"


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


def _namespace(res: Resource, namespace: str | None) -> str | None:
    """The namespace an object of ``res`` lives in: None when cluster-scoped."""
    if not res.namespaced:
        return None
    return namespace or "default"


def _identity(ref: Ref) -> tuple:
    """What makes two refs the same object: the API group, not its version, counts."""
    group = ref.api_version.rsplit("/", 1)[0] if "/" in ref.api_version else ""
    return (group, ref.kind, ref.namespace or None, ref.name)
