"""Kubernetes objects: a service (one method per API verb), a differ, a runner, a waiter.

- :class:`Kube` (:mod:`.client`) talks to the API server through the ``kubernetes``
  client's REST layer (``ApiClient``): server-side apply with field manager ``palplat``,
  discovery cached per instance, every request counted in ``kube.stats``.
- :func:`normalize` / :func:`diff` (:mod:`.differ`) compare objects field by field,
  ignoring what the server owns (managedFields, resourceVersion, status, ...); Secret data
  is always ``<hidden>``.
- :func:`owned` / :func:`prune` / :func:`remove` (:mod:`.ownership`): palplat's ownership
  labels and applied-hash, and deleting what an owner no longer wants.
- :func:`converge` (:mod:`.runner`) decides per object: create / patch / delete / nothing.
  Test mode is the same server-side apply with ``dryRun=All``, diffed against the live
  object.
- :func:`wait` (:mod:`.waiter`) polls a predicate per kind on a monotonic clock and raises
  :class:`~palplat.errors.WaitTimeout` naming what was and was not ready.

References and names live in :mod:`.refs`, errors in :mod:`.errors`. This module only
re-exports: ``from palplat.kube import X`` is the API.
"""

from palplat.kube.client import Kube, reveal
from palplat.kube.differ import (
    diff,
    holds,
    is_secret,
    like_stored,
    masked,
    normalize,
    project,
    secret_as_stored,
)
from palplat.kube.errors import (
    ConvergeError,
    KubeError,
    NotFound,
    UnknownKind,
    Unreachable,
    WaitFailed,
)
from palplat.kube.ownership import (
    DEFAULT_PRUNE_KINDS,
    KEPT_UNLESS_NAMED,
    NEVER_PRUNED,
    check_owner,
    manifest_hash,
    owned,
    owner_selector,
    prune,
    remove,
)
from palplat.kube.refs import (
    CRD_API,
    FIELD_MANAGER,
    HASH_ANNOTATION,
    HIDDEN,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OWNER_LABEL,
    Ref,
    Resource,
    key_of,
    ref_of,
)
from palplat.kube.runner import converge, validate_manifests
from palplat.kube.waiter import ready, wait

__all__ = [
    "CRD_API",
    "DEFAULT_PRUNE_KINDS",
    "FIELD_MANAGER",
    "HASH_ANNOTATION",
    "HIDDEN",
    "KEPT_UNLESS_NAMED",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "NEVER_PRUNED",
    "OWNER_LABEL",
    "ConvergeError",
    "Kube",
    "KubeError",
    "NotFound",
    "Ref",
    "Resource",
    "UnknownKind",
    "Unreachable",
    "WaitFailed",
    "check_owner",
    "converge",
    "diff",
    "holds",
    "is_secret",
    "key_of",
    "like_stored",
    "manifest_hash",
    "masked",
    "normalize",
    "owned",
    "owner_selector",
    "project",
    "prune",
    "ready",
    "ref_of",
    "remove",
    "reveal",
    "secret_as_stored",
    "validate_manifests",
    "wait",
]
