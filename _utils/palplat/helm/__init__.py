"""Helm releases: exact plans, no-op runs that touch nothing, safe upgrades.

Layers (see docs/helm.md), one module each:

- :mod:`.cli`: :class:`Helm` builds argv for the ``helm`` CLI (never a shell string) and
  parses its JSON; :class:`HelmError`; the post-renderer flags (:mod:`.keep` is the
  post-renderer script).
- :mod:`.chart`: chart source and arguments, digests, merged values, fingerprints,
  :class:`RepoIndex`.
- :mod:`.store`: the fingerprint Secret per release.
- :mod:`.manifest`: rendered manifests (one YAML reader, :mod:`palplat.yamlio`), object
  shapes, baselines and the like-with-like comparison.
- :mod:`.mirror`: chart mirrors (``palplat:platform:mirrors``), applied to every helm call.
- :mod:`.context`: :class:`Context` (what a run shares) and :func:`context_for`.
- :mod:`.planner`: :func:`plan` decides per release: install / upgrade / uninstall / correct
  drift / nothing, from ONE ``helm list -A -o json``, ONE LIST of palplat's fingerprint
  Secrets and one LIST per kind of the objects the unchanged releases own (drift check).
  A no-op run makes no other helm call and no write.
- :mod:`.render`: :func:`render_client`, the client-side render with the server's
  capabilities (values check, the CRDs of the enabled charts).
- :mod:`.crds`: :func:`apply_crds`, a release's CRDs by server-side apply, never taken
  from another owner.
- :mod:`.diff`: :func:`render_diff`, the manifest-level diff of a release that would change.
- :mod:`.execute`: :func:`converge` runs the plan in ``needs`` waves (releases in one wave
  in parallel, up to ``platform.parallel``): client-side render, CRDs by server-side apply
  (Established before the server-side render), the diff, an atomic ``helm upgrade
  --install``, then it re-reads the objects, verifies them and stores the fingerprint;
  finally a fresh plan of what it converged must find nothing left to do.
- :mod:`.install`: the pinned helm binary (``palplat:platform:helm``).

This module only re-exports.
"""

from palplat.helm import install, keep
from palplat.helm.chart import (
    FORMAT,
    RepoIndex,
    chart_args,
    chart_source,
    fingerprint,
    merge,
    merged_values,
    path_digest,
    repo_name,
    values_file,
    values_hash,
)
from palplat.helm.cli import Helm, HelmError, post_renderer
from palplat.helm.context import Context, context_for, pillar_path
from palplat.helm.crds import apply_crds
from palplat.helm.diff import render_diff
from palplat.helm.execute import VERIFY_FAILED, converge
from palplat.helm.manifest import (
    baseline,
    compare,
    obj_key,
    parse_manifest,
    restrict,
    scoped,
    shape_of,
    split_crds,
)
from palplat.helm.mirror import mirrored
from palplat.helm.planner import ReleasePlan, plan
from palplat.helm.render import render_client
from palplat.helm.store import (
    STORE_KEY,
    STORE_LABEL,
    STORE_PREFIX,
    decode_state,
    encode_state,
    store_manifest,
    store_name,
)

__all__ = [
    "FORMAT",
    "STORE_KEY",
    "STORE_LABEL",
    "STORE_PREFIX",
    "VERIFY_FAILED",
    "Context",
    "Helm",
    "HelmError",
    "ReleasePlan",
    "RepoIndex",
    "apply_crds",
    "baseline",
    "chart_args",
    "chart_source",
    "compare",
    "context_for",
    "converge",
    "decode_state",
    "encode_state",
    "fingerprint",
    "install",
    "keep",
    "merge",
    "merged_values",
    "mirrored",
    "obj_key",
    "parse_manifest",
    "path_digest",
    "pillar_path",
    "plan",
    "post_renderer",
    "render_client",
    "render_diff",
    "repo_name",
    "restrict",
    "scoped",
    "shape_of",
    "split_crds",
    "store_manifest",
    "store_name",
    "values_file",
    "values_hash",
]
