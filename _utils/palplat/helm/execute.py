"""Executing a plan: :func:`converge` runs it in ``needs`` waves (releases in one wave in
parallel, up to ``platform.parallel``). Per release that is installed or upgraded: a
client-side render (checks the values, yields the CRDs of the enabled charts), the CRDs
by server-side apply (for real: waited for until Established, so the server-side render
knows their kinds), the diff, then an atomic ``helm upgrade --install``, then it re-reads
the objects, verifies them and stores the fingerprint; at the end a fresh plan of what it
converged must find nothing left to do. An error in one release, whatever it is, stays
that release's error."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from palplat import kube as k8s
from palplat import redact
from palplat.config import release_order
from palplat.errors import CommandError, PalplatError
from palplat.helm.chart import (
    FORMAT,
    chart_source,
    merged_values,
    values_file,
    values_hash,
)
from palplat.helm.cli import HelmError
from palplat.helm.context import Context, pillar_path
from palplat.helm.crds import apply_crds
from palplat.helm.diff import render_diff
from palplat.helm.manifest import baseline, obj_key, parse_manifest, scoped
from palplat.helm.planner import ReleasePlan, plan
from palplat.helm.render import render_client
from palplat.helm.store import store_manifest, store_name
from palplat.kube import pods
from palplat.model import Release

log = logging.getLogger("palplat.helm")

VERIFY_FAILED = "verify failed: still not converged"


def _run_with_progress(
    fn: Callable[[], Any],
    what: str,
    ctx: Context,
    every: float = 5.0,
    watch: pods.Watch | None = None,
) -> Any:
    """Run a blocking helm call; report progress while it runs (and let ``watch`` take
    its pictures of the pods that are not ready yet)."""
    if ctx.progress is None and watch is None:
        return fn()
    start = time.monotonic()
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(fn)
        while True:
            try:
                return fut.result(timeout=every)
            except FutureTimeout:  # builtin TimeoutError only from 3.11
                waiting = ""
                if watch is not None:
                    watch.tick()
                    if watch.last:
                        waiting = f"; {pods.describe(watch.last)}"
                if ctx.progress is not None:
                    ctx.progress(
                        "waiting",
                        f"{what}: still running after {time.monotonic() - start:.0f}s{waiting}",
                    )


def _store(p: ReleasePlan, ctx: Context, manifest: str, revision: int) -> None:
    """Re-read the release's objects, verify them and write the fingerprint store."""
    desired = parse_manifest(manifest, p.namespace)
    objects, missing = [], []
    for obj in desired:
        try:
            res = ctx.kube.resource(obj["apiVersion"], obj["kind"])
        except k8s.UnknownKind:
            missing.append(obj_key(obj))
            continue
        ns = scoped(obj, res.namespaced)["metadata"].get("namespace")
        live = ctx.kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], ns)
        if live is None:
            missing.append(obj_key(obj, res.namespaced))
            continue
        objects.append(
            {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": obj["metadata"]["name"],
                "namespace": ns,
                "want": baseline(live, obj),
            }
        )
    if missing:
        raise HelmError(
            f"release {p.namespace}/{p.name} revision {revision}: verify failed, objects "
            f"missing after the upgrade: {', '.join(missing)}",
            revision,
        )
    c = p.rel.chart
    state = {
        "format": FORMAT,
        "fingerprint": p.fingerprint,
        "partial": p.partial,
        "source": chart_source(c),
        "version": c.version,
        "digest": p.digest,
        "values_hash": values_hash(p.rel),
        "keep_pvcs": p.rel.keep_pvcs,
        "revision": revision,
        "objects": objects,
    }
    ctx.kube.apply(store_manifest(p.name, p.namespace, state))


def _upgrade(p: ReleasePlan, ctx: Context) -> None:
    rel = p.rel
    ctx.prepare(p.key, rel.chart)
    before = p.revision
    what = f"helm upgrade {p.namespace}/{p.name}"
    if ctx.progress:
        ctx.progress("start", f"{what} ({'; '.join(p.reasons)})", release=p.name)

    def call() -> dict:
        with values_file(merged_values(rel)) as vf:
            return ctx.helm.upgrade(
                p.name,
                p.namespace,
                ctx.chart_args(rel.chart),
                vf,
                atomic=rel.wait,
                wait=rel.wait,
                timeout=rel.timeout,
                history_max=ctx.history_max,
                create_namespace=rel.create_namespace,
                keep_pvcs=rel.keep_pvcs,
            )

    # the pods that keep the wait from ending, pictured while it runs: an atomic upgrade
    # that times out deletes them when it rolls back
    watch = pods.Watch(ctx.kube, p.namespace, p.name) if rel.wait else None
    try:
        out = _run_with_progress(call, what, ctx, watch=watch)
    except CommandError as exc:
        err = (exc.stderr or str(exc)).strip()
        stuck = pods.describe(watch.final()) if watch is not None and _timed_out(err) else ""
        if not rel.wait:
            _rollback_by_hand(p, ctx, before)
        st = ctx.helm.status(p.name, p.namespace)
        rev = int(st["version"]) if st else None
        state = f"now at revision {rev} ({st['info']['status']})" if st else "not installed"
        cause = (
            f" Waited {rel.timeout}s ({pillar_path(p.key, 'timeout')}); {stuck}. Fix what "
            f"keeps them from starting (docs: troubleshooting, a failed wait), or the chart "
            f"or {pillar_path(p.key, 'values')}, and re-run"
            if stuck
            else f" Fix the chart or {pillar_path(p.key, 'values')} and re-run"
        )
        raise HelmError(
            f"helm upgrade of release {p.namespace}/{p.name} failed and was rolled back; "
            f"the release is {state}. helm said: {err}.{cause}",
            rev,
        ) from None
    p.revision = int(out.get("version") or 0)
    _store(p, ctx, out.get("manifest", ""), p.revision)
    if ctx.progress:
        ctx.progress("done", f"{what}: revision {p.revision}", force=True, release=p.name)


def _timed_out(err: str) -> bool:
    """Whether helm's error is its wait running out (not a render or API error)."""
    text = err.lower()
    return any(s in text for s in ("context deadline exceeded", "timed out waiting", "timeout"))


def _recover_pending(p: ReleasePlan, ctx: Context) -> None:
    """A release left ``pending-*`` by an interrupted run (API server or minion down
    mid-upgrade) blocks every later helm operation: roll it back to its last deployed
    revision (or remove a never-completed install), then converge as usual. palplat is the
    only writer of these releases, so a pending state is never someone else's operation."""
    status = (p.listed or {}).get("status") or ""
    if not status.startswith("pending-"):
        return
    if ctx.progress:
        ctx.progress("recover", f"{p.namespace}/{p.name} is {status}: recovering", force=True)
    try:
        if status == "pending-install" or not p.revision or p.revision <= 1:
            ctx.helm.uninstall(p.name, p.namespace, p.rel.timeout, wait=False)
            p.revision = None
        else:
            ctx.helm.rollback(p.name, p.namespace, p.rel.timeout)
            st = ctx.helm.status(p.name, p.namespace)
            p.revision = int(st["version"]) if st else None
    except CommandError as exc:
        raise HelmError(
            f"release {p.namespace}/{p.name} is {status} (an earlier run was interrupted) "
            f"and could not be recovered: {exc.stderr.strip() or exc}; run `helm history "
            f"{p.name} -n {p.namespace}` and `helm rollback` by hand",
            p.revision,
        ) from None
    p.reasons.append(f"recovered from {status}")


def _rollback_by_hand(p: ReleasePlan, ctx: Context, before: int | None) -> None:
    """``wait: false`` releases run without --atomic (it implies --wait): undo here."""
    try:
        if before:
            ctx.helm.rollback(p.name, p.namespace, p.rel.timeout)
        else:
            ctx.helm.uninstall(p.name, p.namespace, p.rel.timeout, wait=False)
    except CommandError as exc:
        log.warning("rollback of %s/%s failed: %s", p.namespace, p.name, exc)


def _uninstall(p: ReleasePlan, ctx: Context) -> None:
    rel = p.rel
    what = f"helm uninstall {p.namespace}/{p.name}"
    _run_with_progress(
        lambda: ctx.helm.uninstall(p.name, p.namespace, rel.timeout, rel.wait), what, ctx
    )
    if not rel.keep_pvcs:
        claims = ctx.kube.list(
            "v1", "PersistentVolumeClaim", p.namespace, f"app.kubernetes.io/instance={p.name}"
        )
        for c in claims:
            ctx.kube.delete("v1", "PersistentVolumeClaim", c["metadata"]["name"], p.namespace)
    ctx.kube.delete("v1", "Secret", store_name(p.name), p.namespace)
    if ctx.helm.status(p.name, p.namespace) is not None:
        raise HelmError(f"verify: release {p.namespace}/{p.name} is still installed")
    p.revision = None


def _verify(
    releases: Mapping[str, Release], ctx: Context, keys: list[str], errors: dict[str, str]
) -> None:
    """A fresh plan of the releases in ``keys`` (converged without error) must find nothing
    left to do; each one it does not goes into ``errors``."""
    if not keys:
        return
    for p in plan(releases, ctx, only=keys):
        if p.changed or p.error:
            why = "; ".join(p.reasons) or p.error
            errors[p.key] = redact.mask_text(f"{VERIFY_FAILED}: {why}")


def _converge_one(p: ReleasePlan, ctx: Context, test: bool, upstream: list[str]) -> None:
    """One release: the same diff in test mode and for real (before the write)."""
    if p.action == "uninstall":
        render_diff(p, ctx)
        if not test:
            _uninstall(p, ctx)
        return
    if p.action == "drift":  # nothing to render: the drift check holds the diff
        if not test:
            _upgrade(p, ctx)
        return
    if not test:
        _recover_pending(p, ctx)
    client = render_client(p, ctx)  # checks the values before anything changes
    crds = apply_crds(p, ctx, client.crds, dry_run=test)
    p.objects.update(crds.changes)
    for key, why in sorted(crds.skipped.items()):
        p.reasons.append(f"{key}: {why}")
    render_diff(p, ctx, upstream, client=client, pending_crds=crds.pending)
    if not test:
        _upgrade(p, ctx)


def converge(
    releases: Mapping[str, Release],
    ctx: Context,
    *,
    test: bool,
    only: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Plan, then (unless ``test``) execute in ``needs`` waves and verify.

    Returns ``{"changes": {release: {...}}, "errors": {release: message},
    "unchanged": [release...], "plans": [...]}``. In test mode ``changes`` carries the
    manifest-level diff of every release that would change. After a real run, every
    release converged without error is planned again: one that still is not converged
    gets ``errors[release] = "verify failed: still not converged: <reasons>"`` (its
    ``changes`` entry stays). So ``errors`` empty means converged and verified.
    """
    plans = plan(releases, ctx, only=only)
    by_key = {p.key: p for p in plans}
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {p.key: p.error for p in plans if p.error}
    unchanged = [p.key for p in plans if not p.changed and not p.error]
    todo = {p.key for p in plans if p.changed and not p.error}
    if not todo:
        return {"changes": {}, "errors": errors, "unchanged": unchanged, "plans": plans}
    waves = release_order({k: releases[k] for k in by_key})
    failed: set[str] = set(errors)

    def one(key: str) -> None:
        p = by_key[key]
        blocked = [n for n in p.rel.needs if n in failed]
        if blocked:
            errors[key] = f"not converged: it needs {', '.join(blocked)}, which failed"
            failed.add(key)
            return
        try:
            _converge_one(p, ctx, test, [n for n in p.rel.needs if n in todo] if test else [])
            changes[key] = p.changes()
        except Exception as exc:  # noqa: BLE001 - one release's failure is its own
            if not isinstance(exc, (PalplatError, k8s.KubeError)):
                log.exception("release %s: unexpected error", key)
                exc = PalplatError(f"unexpected error: {type(exc).__name__}: {exc}")
            errors[key] = redact.mask_text(str(exc))
            if p.objects:
                changes[key] = p.changes()
            failed.add(key)

    for wave in waves:
        keys = [k for k in wave if k in todo]
        if len(keys) > 1 and ctx.parallel > 1:
            with ThreadPoolExecutor(min(ctx.parallel, len(keys))) as ex:
                list(ex.map(one, keys))
        else:
            for k in keys:
                one(k)
    if not test:
        _verify(releases, ctx, [k for k in changes if k not in errors], errors)
    return {"changes": changes, "errors": errors, "unchanged": unchanged, "plans": plans}
