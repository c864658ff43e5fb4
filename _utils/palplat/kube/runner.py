"""Bring manifests to the cluster: :func:`converge` decides per object create / patch /
delete / nothing, applies, verifies and prunes.

Test mode is the same server-side apply with ``dryRun=All``, diffed against the live object.
A no-op converge costs one LIST per kind and no write: an object whose live copy carries the
hash of the desired manifest (annotation ``palplat.io/applied-hash``) and already holds every
desired value is left alone; anything else goes through the dry-run apply, which decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from palplat.errors import InputError
from palplat.kube.client import Kube, reveal
from palplat.kube.differ import _strip, diff, holds, project, secret_as_stored
from palplat.kube.errors import ConvergeError, KubeError, UnknownKind
from palplat.kube.ownership import (
    DEFAULT_PRUNE_KINDS,
    KEPT_UNLESS_NAMED,
    check_owner,
    owned,
    owner_selector,
)
from palplat.kube.ownership import prune as _prune_owned
from palplat.kube.refs import (
    CRD_API,
    HASH_ANNOTATION,
    Ref,
    Resource,
    _identity,
    _namespace,
    key_of,
    ref_of,
)
from palplat.kube.waiter import wait

# Namespaces go first, then CRDs, then the rest in the order given
_ORDER = {"Namespace": 0, "CustomResourceDefinition": 1}


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
    listed: Mapping[tuple[str, str], list[dict]] | None = None,
) -> dict:
    """Bring ``manifests`` to the cluster; the decision per object is create / patch /
    delete / nothing.

    Returns ``{"changes": {key: field diff}, "actions": {key: action}}``. In ``dry_run``
    every apply is sent with ``dryRun=All`` and nothing is stored. After a real write the
    object is re-read and compared with what the server returned (verification).
    Namespaces go first, then CRDs (waited for until Established), then the rest in order.
    A :class:`KubeError` on the way becomes a :class:`ConvergeError` carrying the changes
    already made.

    ``listed``: the owner's objects of some kinds, already listed by the caller (keyed by
    ``(apiVersion, kind)``): those kinds are not listed again, so a caller converging many
    owners lists each kind once for all of them.
    """
    desired = _plan(manifests, owner)
    run = _Run(
        kube, owner, owner_selector(owner), dry_run, progress, crd_timeout, _crds_in(desired)
    )
    for (api_version, kind), items in (listed or {}).items():
        _index(run, api_version, kind, items)
    try:
        for m in desired:
            _converge_one(run, m)
        _wait_crds(kube, run.new_crds, crd_timeout, progress)  # those applied by a real run
        if prune:
            _prune(run, desired, prune_kinds)
    except ConvergeError:
        raise
    except KubeError as exc:
        raise ConvergeError(str(exc), run.changes, exc) from None
    return {"changes": run.changes, "actions": run.actions}


@dataclass
class _Run:
    """One converge: its settings, what it decided so far and what it listed."""

    kube: Kube
    owner: str
    selector: str  # the owner's label selector
    dry_run: bool
    progress: Callable[..., Any] | None
    crd_timeout: float
    pending_crds: set[tuple[str, str]]  # (group, kind) served by a CRD in this batch
    changes: dict[str, dict] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    listed: dict[tuple[str, str], list[dict] | None] = field(default_factory=dict)
    live_index: dict[tuple, dict] = field(default_factory=dict)
    new_namespaces: set[str] = field(default_factory=set)  # namespaces a dry run would create
    new_crds: dict[str, dict] = field(default_factory=dict)  # name -> applied CRD (real run)


def _plan(manifests: Iterable[Mapping[str, Any]], owner: str) -> list[dict]:
    """The desired objects, owned by ``owner``, in the order they are applied."""
    check_owner(owner)
    desired = [owned(m, owner) for m in validate_manifests(list(manifests))]
    desired.sort(key=lambda m: _ORDER.get(m["kind"], 2))
    return desired


def _crds_in(desired: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """``(group, kind)`` of every custom resource a CRD among ``desired`` defines."""
    found = set()
    for m in desired:
        if m["kind"] == "CustomResourceDefinition":
            spec = m.get("spec") or {}
            found.add((spec.get("group", ""), (spec.get("names") or {}).get("kind", "")))
    return found


def _converge_one(run: _Run, m: dict) -> None:
    """Decide what ``m`` needs and, in a real run, apply it."""
    ref = ref_of(m)
    res = _resource(run, ref, m)
    if res is None:
        return
    ns = _namespace(res, ref.namespace)
    key = key_of(ref.kind, ref.name, ns)
    live = _live(run, ref, ns)
    if res.namespaced:
        m.setdefault("metadata", {})["namespace"] = ns
    action, change = _decide(run, m, live, ns)
    run.actions[key] = action
    if action == "nothing":
        if not run.dry_run and _hash(live) != _hash(m):
            run.kube.apply(m)  # record the new manifest hash: next run is fast
        return
    if run.dry_run:
        run.changes[key] = change
        if action == "create" and ref.kind == "Namespace":
            run.new_namespaces.add(ref.name)
        return
    _apply(run, m, ref, key, live, change)


def _resource(run: _Run, ref: Ref, m: dict) -> Resource | None:
    """The resource serving ``ref``; None when a CRD of this batch serves it in a dry run
    (the CRD is not created, so the object is reported as a create without asking)."""
    group = ref.api_version.rsplit("/", 1)[0] if "/" in ref.api_version else ""
    try:
        return run.kube.resource(ref.api_version, ref.kind)
    except UnknownKind:
        if (group, ref.kind) not in run.pending_crds:
            raise
    if run.dry_run:
        key = key_of(ref.kind, ref.name, ref.namespace)
        run.actions[key] = "create"
        run.changes[key] = diff(None, m)
        return None
    _wait_crds(run.kube, run.new_crds, run.crd_timeout, run.progress)
    run.kube.forget(ref.api_version)
    return run.kube.resource(ref.api_version, ref.kind)


def _live(run: _Run, ref: Ref, ns: str | None) -> dict | None:
    """The live object: from the owner's LIST of its kind, else one GET."""
    _prefetch(run, ref.api_version, ref.kind)
    live = run.live_index.get(_identity(Ref(ref.api_version, ref.kind, ref.name, ns)))
    if live is None:
        live = run.kube.get(ref.api_version, ref.kind, ref.name, ns)
    return live


def _prefetch(run: _Run, api_version: str, kind: str) -> None:
    """LIST the objects of a kind labelled as the owner's, once per converge."""
    if (api_version, kind) in run.listed:
        return
    try:
        items = run.kube.list(api_version, kind, label_selector=run.selector)
    except UnknownKind:
        run.listed[(api_version, kind)] = None
        return
    _index(run, api_version, kind, items)


def _index(run: _Run, api_version: str, kind: str, items: list[dict]) -> None:
    """Remember the owner's listed objects of a kind (for lookups and pruning)."""
    run.listed[(api_version, kind)] = items
    for obj in items:
        r = ref_of(obj)
        run.live_index[_identity(Ref(api_version, kind, r.name, r.namespace))] = obj


def _decide(run: _Run, m: dict, live: dict | None, ns: str | None) -> tuple[str, dict]:
    """``("nothing" | "create" | "patch", field diff)``: what applying ``m`` would do."""
    if live is not None and _unchanged(live, m):
        return "nothing", {}
    if live is None:
        # a create: the change is the manifest itself (short to review); in test
        # mode the server still validates and admits it through a dry-run apply
        if run.dry_run and ns not in run.new_namespaces:  # else the server cannot dry-run it
            run.kube.apply(m, dry_run=True)
        return "create", diff(None, m)
    change = diff(live, run.kube.apply(m, dry_run=True))
    return ("patch", change) if change else ("nothing", {})


def _apply(run: _Run, m: dict, ref: Ref, key: str, live: dict | None, change: dict) -> None:
    """Apply ``m`` for real, record the change and verify the object read back."""
    if run.progress:
        run.progress("apply", f"{run.actions[key]} {key}", key=key)
    result = run.kube.apply(m)
    run.changes[key] = change if live is None else diff(live, result)
    _verify(run.kube, m, result, key)
    if ref.kind == "CustomResourceDefinition":
        run.new_crds[ref.name] = result


def _prune(run: _Run, desired: list[dict], prune_kinds: Iterable[tuple[str, str]] | None) -> None:
    """Delete the owner's objects that left the manifests (see ``DEFAULT_PRUNE_KINDS``)."""
    kinds = {
        k
        for k in set(DEFAULT_PRUNE_KINDS) | {(m["apiVersion"], m["kind"]) for m in desired}
        if k[1] not in KEPT_UNLESS_NAMED
    } | set(prune_kinds or ())
    pruned = _prune_owned(
        run.kube,
        run.owner,
        desired,
        kinds=kinds,
        dry_run=run.dry_run,
        listed={k: v for k, v in run.listed.items() if v is not None},
    )
    for key, d in pruned.items():
        run.actions[key] = "delete"
        run.changes[key] = d


def _hash(obj: Mapping[str, Any] | None) -> str | None:
    """The applied-hash annotation of ``obj`` (None when it has none)."""
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)


def _unchanged(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True when applying ``desired`` cannot change ``live``: the live object records this
    exact manifest as palplat's last apply and still holds every desired value."""
    if _hash(live) != _hash(desired):
        return False
    return holds(_strip(live), _strip(secret_as_stored(dict(desired))))


def _verify(kube: Kube, desired: Mapping[str, Any], result: Mapping[str, Any], key: str) -> None:
    """Re-read an applied object: it must still hold what the apply returned for every
    field of ``desired`` (else another controller fights over them)."""
    ref = ref_of(result)
    back = kube.get(
        ref.api_version or desired["apiVersion"],
        ref.kind or desired["kind"],
        ref.name,
        ref.namespace,
    )
    if back is None:
        raise KubeError(f"verify {key}: the object is gone right after it was applied")
    shape = _strip(secret_as_stored(dict(desired)))
    got, expect = project(_strip(back), shape), project(_strip(result), shape)
    if got != expect:
        fields = ", ".join(sorted(diff(expect, got))) or "?"
        raise KubeError(
            f"verify {key}: the object read back differs from what was applied ({fields}); "
            "another controller may be fighting over these fields"
        )


def _wait_crds(kube: Kube, crds: Mapping[str, dict], timeout: float, progress) -> None:
    """Wait until the applied CRDs are Established, then forget the discovery of the
    versions they serve. Nothing when none was applied."""
    if not crds:
        return
    refs = [Ref(CRD_API, "CustomResourceDefinition", n) for n in crds]
    wait(kube, refs, timeout=timeout, progress=progress)
    for crd in crds.values():
        spec = crd.get("spec") or {}
        for v in spec.get("versions") or []:
            kube.forget(f"{spec.get('group')}/{v.get('name')}")
