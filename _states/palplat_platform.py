"""State module: the platform stage, the Helm releases of ``palplat:platform:releases`` and
the objects palplat creates beside them (CloudNativePG Clusters of ``database``, Tailscale
ingresses and blackbox Probes of ``expose``), in order.

``palplat_platform.converged`` plans everything once: a no-op run is one ``helm list``, the
fingerprint and drift LISTs and one LIST per kind of palplat's objects, no write. Test mode
returns the releases' manifest-level diffs and the objects' field diffs. See
docs/platform.md.
"""

from palplat import config, loaderkit
from palplat.platform import converge as platform


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _comment(res, test):
    comment = [f"palplat:platform:releases:{k}: {msg}" for k, msg in sorted(res["errors"].items())]
    comment += platform.orphan_lines(res)
    changes = res["changes"]
    n_same = len(res["unchanged"])
    n_objects = sum(len(a) for a in res["objects"].values())
    if not changes and not res["errors"]:
        return [
            f"{n_same} release(s) already converged (fingerprints and live objects match); "
            f"{n_objects} object(s) beside them as desired",
            *comment,
        ]
    if changes:
        verbs = ", ".join(
            f"{k}: {v['action']}" if "action" in v else f"{k}: {len(v)} object(s)"
            for k, v in sorted(changes.items())
        )
        what = "would converge" if test else "converged"
        comment.append(f"{what} {len(changes)} item(s) ({verbs}); {n_same} release(s) unchanged")
    return comment


@loaderkit.state
def converged(name="palplat-platform"):
    """Converge every release of ``palplat:platform:releases`` (plus the GPU device plugin)
    in ``needs`` order, the CloudNativePG Clusters of releases with ``database`` before the
    releases that use them, and the Tailscale ingresses and Probes of ``expose`` after."""
    e = _env()
    cfg = e.config()
    if not config.holds_the_cluster(cfg):
        return loaderkit.state_ret(name, {}, True, config.CLUSTER_STAGE_ELSEWHERE)
    with e.helm_context(cfg) as ctx:
        res = platform.converge(cfg, ctx, test=e.test)
    orphaned = sorted(res.get("orphaned", {}))
    summary = {"orphaned": orphaned} if orphaned else None
    if res["errors"]:
        return loaderkit.state_ret(name, res["changes"], False, _comment(res, e.test), summary)
    if not res["changes"]:
        return loaderkit.state_ret(name, {}, True, _comment(res, e.test), summary)
    return loaderkit.state_ret(
        name, res["changes"], None if e.test else True, _comment(res, e.test), summary
    )
