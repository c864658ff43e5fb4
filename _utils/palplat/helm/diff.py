"""The manifest-level diff of a release that would change (test mode, and a real run
before its write): render it, compare every object with the live one, like with like
(:func:`palplat.helm.manifest.compare`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from palplat import kube as k8s
from palplat.errors import CommandError
from palplat.helm.chart import values_file
from palplat.helm.cli import HelmError
from palplat.helm.context import Context, pillar_path
from palplat.helm.manifest import compare, parse_manifest, scoped
from palplat.helm.planner import ReleasePlan
from palplat.helm.render import Rendered, crd_apis, helm_message, render_client


def _render_server(p: ReleasePlan, ctx: Context) -> list[dict]:
    """``helm upgrade --install --dry-run=server``: lookup works, so generated secrets
    stay what they are."""
    with values_file(ctx.values(p.key, p.rel)) as vf:
        out = ctx.helm.upgrade(
            p.name,
            p.namespace,
            ctx.chart_args(p.rel.chart),
            vf,
            atomic=False,
            wait=False,
            timeout=p.rel.timeout,
            history_max=ctx.history_max,
            create_namespace=p.rel.create_namespace,
            dry_run="server",
            keep_pvcs=p.rel.keep_pvcs,
        )
    return parse_manifest(out.get("manifest", ""), p.namespace)


def _client_objects(
    p: ReleasePlan, ctx: Context, client: Rendered, pending: Sequence[dict]
) -> list[dict]:
    """The client-side render's objects, rendered again when the CRDs not installed yet
    add APIs the chart may look for (``.Capabilities.APIVersions``)."""
    apis = crd_apis(pending)
    if apis and not set(apis) <= set(client.extra_apis):
        client = render_client(p, ctx, apis)
    return client.objects


def render_diff(
    p: ReleasePlan,
    ctx: Context,
    upstream_changes: Sequence[str] = (),
    *,
    client: Rendered | None = None,
    pending_crds: Sequence[dict] = (),
) -> None:
    """Fill ``p.objects``: render the release server-side and diff every object against
    the live one.

    ``client``: its client-side render (:func:`palplat.helm.render.render_client`).
    ``pending_crds``: its CRDs whose APIs the server does not serve yet (test mode): the
    server cannot render objects of those kinds, so the plan shows the client-side render.
    ``upstream_changes``: the releases it needs that would change first (then a failed
    server-side render falls back to the client-side one)."""
    if p.action == "drift":
        return  # the drift check already holds the exact field diffs
    if p.action == "uninstall":
        for o in p.stored.get("objects") or []:
            p.objects[k8s.key_of(o["kind"], o["name"], o.get("namespace"))] = {
                ".": {"old": "present", "new": None}
            }
        return
    ctx.prepare(p.key, p.rel.chart)
    if client is None:
        client = render_client(p, ctx)
    if ctx.client_only:
        p.reasons.append(
            "rendered client-side (helm template): a pull request's plan renders without "
            "cluster access (a chart's lookup reads nothing)"
            + (
                "; its chart changed, so with placeholders for its secret values"
                if p.key in ctx.untrusted
                else ""
            )
        )
        desired = _client_objects(p, ctx, client, pending_crds)
    elif pending_crds:
        names = ", ".join(c["metadata"]["name"] for c in pending_crds)
        p.reasons.append(
            f"rendered client-side (helm template): its CustomResourceDefinitions are not "
            f"installed yet ({names})"
        )
        desired = _client_objects(p, ctx, client, pending_crds)
    else:
        try:
            desired = _render_server(p, ctx)
        except CommandError as exc:
            pending = ((p.listed or {}).get("status") or "").startswith("pending-")
            if not upstream_changes and not pending:
                raise HelmError(
                    f"{pillar_path(p.key)}: helm cannot render the release: {helm_message(exc)}",
                    p.revision,
                ) from None
            # a release it needs (e.g. the one with its CRDs) is not there yet, or the
            # release is stuck pending (recovered first on a real run): client-side render
            why = (
                f"{', '.join(upstream_changes)} would change first"
                if upstream_changes
                else "it would be recovered first"
            )
            p.reasons.append(f"rendered client-side (helm template): {why}")
            desired = client.objects
    _diff_objects(p, ctx, desired, client.crds)


def _crd_scopes(crds: Iterable[dict]) -> dict[tuple[str, str], bool]:
    """``(group, kind) -> namespaced`` of the kinds ``crds`` define."""
    out = {}
    for c in crds:
        spec = c.get("spec") or {}
        out[(spec.get("group", ""), (spec.get("names") or {}).get("kind", ""))] = (
            spec.get("scope") != "Cluster"
        )
    return out


def _diff_objects(p: ReleasePlan, ctx: Context, desired: list[dict], crds: list[dict]) -> None:
    scopes = _crd_scopes(crds)
    seen = set()
    for obj in desired:
        api, kind, name = obj["apiVersion"], obj["kind"], obj["metadata"]["name"]
        try:
            namespaced = ctx.kube.resource(api, kind).namespaced
            scoped(obj, namespaced)
            ns = obj["metadata"].get("namespace")
            live = ctx.kube.get(api, kind, name, ns)
        except k8s.UnknownKind:  # a kind its own CRDs define, not installed yet
            group = api.rsplit("/", 1)[0] if "/" in api else ""
            scoped(obj, scopes.get((group, kind), True))
            ns, live = obj["metadata"].get("namespace"), None
        key = k8s.key_of(kind, name, ns)
        seen.add(key)
        d = compare(live, obj)
        if d:
            p.objects[key] = d
    for o in p.stored.get("objects") or []:
        key = k8s.key_of(o["kind"], o["name"], o.get("namespace"))
        if key not in seen:
            p.objects[key] = {".": {"old": "present", "new": None}}
