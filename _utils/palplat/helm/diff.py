"""The manifest-level diff of a release that would change (test mode, and a real run
before its write): render it, compare every object with the live one."""

from __future__ import annotations

from collections.abc import Sequence

from palplat import kube as k8s
from palplat.errors import CommandError
from palplat.helm.chart import chart_args, merged_values, values_file
from palplat.helm.cli import HelmError
from palplat.helm.context import Context, pillar_path
from palplat.helm.manifest import parse_manifest, restrict, shape_of
from palplat.helm.planner import ReleasePlan


def render_diff(p: ReleasePlan, ctx: Context, upstream_changes: Sequence[str] = ()) -> None:
    """Fill ``p.objects``: render the release server-side (lookup works, so generated
    secrets stay stable) and diff every object against the live one. ``upstream_changes``:
    the releases it needs that would change first (then a failed server-side render falls
    back to an offline one)."""
    if p.action == "drift":
        return  # the drift check already holds the exact field diffs
    if p.action == "uninstall":
        for o in p.stored.get("objects") or []:
            p.objects[k8s.key_of(o["kind"], o["name"], o.get("namespace"))] = {
                ".": {"old": "present", "new": None}
            }
        return
    ctx.prepare(p.key, p.rel.chart)

    def render(mode: str) -> dict:
        with values_file(merged_values(p.rel)) as vf:
            return ctx.helm.upgrade(
                p.name,
                p.namespace,
                chart_args(p.rel.chart),
                vf,
                atomic=False,
                wait=False,
                timeout=p.rel.timeout,
                history_max=ctx.history_max,
                create_namespace=p.rel.create_namespace,
                dry_run=mode,
                keep_pvcs=p.rel.keep_pvcs,
            )

    try:
        rendered = render("server")
    except CommandError as exc:
        pending = ((p.listed or {}).get("status") or "").startswith("pending-")
        if not upstream_changes and not pending:
            raise HelmError(
                f"{pillar_path(p.key)}: helm cannot render the release: "
                f"{(exc.stderr or str(exc)).strip()}",
                p.revision,
            ) from None
        # a release it needs (e.g. the one with its CRDs) is not there yet, or the release
        # is stuck pending (recovered first on a real run): render offline
        why = (
            f"{', '.join(upstream_changes)} would change first"
            if upstream_changes
            else ("it would be recovered first")
        )
        p.reasons.append(f"rendered without the API server: {why}")
        with values_file(merged_values(p.rel)) as vf:
            text = ctx.helm.template(
                p.name, p.namespace, chart_args(p.rel.chart), vf, p.rel.keep_pvcs
            )
        rendered = {"manifest": text}
    desired = parse_manifest(rendered.get("manifest", ""), p.namespace)
    seen = set()
    for obj in desired:
        try:
            res = ctx.kube.resource(obj["apiVersion"], obj["kind"])
            ns = obj["metadata"]["namespace"] if res.namespaced else None
            live = ctx.kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], ns)
        except k8s.UnknownKind:
            ns, live = obj["metadata"].get("namespace"), None
        key = k8s.key_of(obj["kind"], obj["metadata"]["name"], ns)
        seen.add(key)
        if live is None:
            d = k8s.diff(None, obj)
        else:
            want = shape_of(obj)
            d = k8s.diff(restrict(live, want), want)
        if d:
            p.objects[key] = d
    for o in p.stored.get("objects") or []:
        key = k8s.key_of(o["kind"], o["name"], o.get("namespace"))
        if key not in seen:
            p.objects[key] = {".": {"old": "present", "new": None}}
