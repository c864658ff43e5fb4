"""Client-side rendering of a release (``helm template``) with the server's capabilities.

Every release that would be installed or upgraded is rendered client-side first, in test
mode and for real, before anything changes:

- it checks the values: a chart that rejects them (``values.schema.json``, ``required``,
  a template error) fails the release with helm's message and the pillar path of its
  values;
- it yields the CRDs to apply: those of the crds/ directories of the chart and of the
  subcharts its values enable (``helm show crds`` would list disabled subcharts' too);
- where the server cannot render the release yet (test mode, its CRDs are not installed,
  or a release it needs would change first) its objects are what the plan shows.

helm's client-side defaults are Kubernetes v1.20 and its built-in APIs; the render gets
the server's version and API versions instead (discovery, once per run), plus the APIs
of the release's own CRDs when the plan renders it before they exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from palplat.errors import CommandError
from palplat.helm import keep
from palplat.helm.chart import values_file
from palplat.helm.cli import HelmError
from palplat.helm.context import Context, pillar_path
from palplat.helm.manifest import split_crds
from palplat.helm.planner import ReleasePlan
from palplat.kube import KubeError


@dataclass
class Rendered:
    """One client-side render: the CRDs to apply and the other objects."""

    crds: list[dict] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)
    extra_apis: tuple[str, ...] = ()  # API versions added for CRDs not installed yet


def capabilities(ctx: Context) -> tuple[str | None, tuple[str, ...]]:
    """``(server version, API versions)`` as helm's ``.Capabilities`` has them against the
    server: every ``group/version`` and ``group/version/Kind``. Discovered once per run."""
    with ctx._lock:
        if ctx.caps is None:
            ctx.caps = _discover(ctx)
        return ctx.caps


def _discover(ctx: Context) -> tuple[str | None, tuple[str, ...]]:
    req = ctx.kube.request
    version = (req("GET", "/version", what="server version") or {}).get("gitVersion")
    gvs = list((req("GET", "/api", what="discovery") or {}).get("versions") or [])
    for g in (req("GET", "/apis", what="discovery") or {}).get("groups") or []:
        gvs += [v["groupVersion"] for v in g.get("versions") or [] if v.get("groupVersion")]
    found: dict[str, None] = {}
    for gv in gvs:
        found[gv] = None
        path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        try:
            doc = req("GET", path, what=f"discovery {gv}") or {}
        except KubeError:  # an aggregated API that is down (metrics-server): as helm does
            continue
        for r in doc.get("resources") or []:
            if r.get("kind"):
                found[f"{gv}/{r['kind']}"] = None
    return version, tuple(found)


def helm_message(exc: CommandError, limit: int = 1200) -> str:
    """helm's error, without its ``--debug`` hint; a long one (a ``tpl`` error quotes the
    whole template) keeps its start (where) and its end (the cause)."""
    text = (exc.stderr or str(exc)).strip()
    lines = [ln for ln in text.splitlines() if not ln.startswith("Use --debug flag")]
    text = "\n".join(lines).strip()
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} [...] {text[-half:]}"


def crd_apis(crds: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The ``group/version`` and ``group/version/Kind`` every served version of ``crds``
    adds to the server."""
    out: dict[str, None] = {}
    for c in crds:
        spec = c.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        for v in spec.get("versions") or []:
            if v.get("served", True) and v.get("name"):
                gv = f"{spec.get('group')}/{v['name']}"
                out[gv] = None
                if kind:
                    out[f"{gv}/{kind}"] = None
    return tuple(out)


def render_client(p: ReleasePlan, ctx: Context, extra_apis: Iterable[str] = ()) -> Rendered:
    """``helm template --include-crds`` of release ``p`` with its values and the server's
    capabilities (plus ``extra_apis``). Raises :class:`HelmError` naming the release's
    values when helm cannot render it."""
    ctx.prepare(p.key, p.rel.chart)
    version, apis = capabilities(ctx)
    extra = tuple(a for a in extra_apis if a not in set(apis))
    try:
        with values_file(ctx.values(p.key, p.rel)) as vf:
            text = ctx.helm.template(
                p.name,
                p.namespace,
                ctx.chart_args(p.rel.chart),
                vf,
                kube_version=version,
                api_versions=(*apis, *extra),
                is_upgrade=bool(p.listed),
            )
    except CommandError as exc:
        raise HelmError(
            f"{pillar_path(p.key, 'values')}: helm cannot render the chart with these "
            f"values, nothing was changed: {helm_message(exc)}",
            p.revision,
        ) from None
    crds, objects = split_crds(text, p.namespace)
    if p.rel.keep_pvcs:  # what the post-renderer does to the real release
        objects = list(keep.mark(objects))
    return Rendered(crds, objects, extra)
