"""What palplat owns: ownership labels, the applied-hash, and deleting what it owns.

Every object palplat applies carries ``app.kubernetes.io/managed-by=palplat`` and
``palplat.io/owner=<owner>``, plus the hash of the manifest it applied (annotation
``palplat.io/applied-hash``). :func:`prune` deletes only objects carrying both labels;
:func:`remove` deletes objects by name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from palplat.errors import InputError
from palplat.kube.client import Kube
from palplat.kube.differ import diff
from palplat.kube.errors import ConvergeError, KubeError, UnknownKind
from palplat.kube.refs import (
    HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OWNER_LABEL,
    Ref,
    _identity,
    _namespace,
    key_of,
    ref_of,
)

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

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


def check_owner(owner: str) -> str:
    """``owner`` when it is a valid label value, else InputError."""
    if not owner or len(owner) > 63 or not _LABEL_VALUE.match(owner):
        raise InputError(
            f"owner {owner!r} is not a valid label value: use at most 63 characters, "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return owner


def owner_selector(owner: str) -> str:
    """The label selector of the objects ``owner`` owns."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{OWNER_LABEL}={check_owner(owner)}"


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """A stable digest of ``manifest`` (key order does not count)."""
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
