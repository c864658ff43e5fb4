"""Wait for objects to be ready: :func:`ready` is the predicate per kind, :func:`wait` polls
it on a monotonic clock and raises :class:`~palplat.errors.WaitTimeout` naming what was and
was not ready."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from palplat import redact
from palplat.errors import WaitTimeout
from palplat.kube.client import Kube
from palplat.kube.errors import UnknownKind, WaitFailed
from palplat.kube.refs import Ref, _namespace, ref_of


def _condition(obj: Mapping[str, Any], ctype: str) -> dict | None:
    """The status condition of type ``ctype``, None when there is none."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _cond_ready(obj: Mapping[str, Any], ctype: str) -> tuple[bool, str]:
    """``(True, ctype)`` when condition ``ctype`` is True, else ``(False, why not)``."""
    c = _condition(obj, ctype)
    if c is None:
        return False, f"no {ctype} condition yet"
    if c.get("status") == "True":
        return True, ctype
    why = ": ".join(x for x in (c.get("reason"), c.get("message")) if x)
    return False, f"{ctype}={c.get('status')}" + (f" ({why})" if why else "")


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
        c = _condition(obj, "Failed")
        if c is not None and c.get("status") == "True":
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
