"""Load and validate the ``palplat`` pillar: every problem at once, each with its path.

``load(pillar)`` is the single entry point used by every state, runner and module. It
returns a :class:`palplat.model.PalplatPillar` or raises :class:`PillarError` listing
every problem as ``palplat:<path>: <what is wrong and what to do> (found: <masked>)``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from palplat import provenance, redact, transport, validation
from palplat.errors import PillarError, PillarProblem
from palplat.host import checks as host_checks
from palplat.k3s import flags as k3s_flags
from palplat.k3s.layout import CLUSTER_STAGE_ELSEWHERE as CLUSTER_STAGE_ELSEWHERE  # re-exported
from palplat.k3s.layout import K3S_KUBECONFIG as K3S_KUBECONFIG  # re-exported
from palplat.k3s.layout import holds_the_cluster as holds_the_cluster  # re-exported
from palplat.k3s.layout import kubeconfig_path as kubeconfig_path  # re-exported
from palplat.k3s.layout import node_kubeconfig as node_kubeconfig  # re-exported
from palplat.model import PalplatPillar, Release
from palplat.nft import checks as nft_checks
from palplat.platform import checks as platform_checks
from palplat.services import checks as service_checks

ROOT = "palplat"
DEVICE_PLUGIN_RELEASE = "nvidia-device-plugin"
# The GPU stage labels GPU nodes with this; the device plugin selects on it.
GPU_NODE_LABEL = "nvidia.com/gpu.present"
# The RuntimeClass (and containerd runtime handler) of the NVIDIA container runtime.
RUNTIME_CLASS = "nvidia"


def load(
    pillar: Mapping[str, Any] | None,
    *,
    key: str = ROOT,
    required: bool = False,
    plaintext_secrets: bool = True,
    planning: bool = False,
    resolve: provenance.Resolve | None = None,
) -> PalplatPillar:
    """Validate ``pillar[key]`` (or a bare palplat mapping when ``key`` is None).

    ``required``: a missing or null ``palplat`` key is a problem (a minion palplat acts on,
    see ``Env.config``), not the defaults; a palplat state on such a minion changes nothing.
    ``plaintext_secrets``: whether a secret field may hold plain text; Salt-facing callers
    (``loaderkit.Env``, the runners) pass False unless the operator allowed it (tests, the
    sandbox). ``planning`` (a pull request's plan, test mode only): sealed values, which
    the plan does not decrypt, are allowed; ``resolve`` gives the applied pillar's raw
    value of a reference (:mod:`palplat.provenance`).

    Every problem is reported at once: field errors, then the cross checks on what is
    left once the entries in error are set aside.
    """
    data = pillar if key is None else (pillar or {}).get(key)
    if data is None and required and key is not None:
        raise PillarError([missing_problem(pillar, key)])
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PillarError(
            [
                PillarProblem(
                    ROOT,
                    "must be a mapping of sections (host, firewall, k3s, gpu, platform, services)",
                    validation.found(data),
                )
            ]
        )
    try:
        raw = provenance.unwrap(dict(data), resolve)
        problems = validation.placeholders(raw)
        context = {"plaintext_secrets": plaintext_secrets, "planning": planning}
        cfg, field_problems, dropped = validation.validate(raw, context)
        problems.extend(field_problems)
        if cfg is not None:
            problems.extend(validation.secret_problems(cfg, plaintext_secrets))
            problems.extend(p for p in cross_check(cfg) if not validation.set_aside(p, dropped))
    finally:
        # Validation registered every secret: from now on every log line is masked.
        redact.install_log_filter()
    problems = list(dict.fromkeys(problems))
    if problems:
        raise PillarError(problems)
    return cfg


def missing_problem(pillar: Mapping[str, Any] | None, key: str = ROOT) -> PillarProblem:
    what = "is null" if key in (pillar or {}) else "is missing"
    return PillarProblem(
        key,
        f"{what} in this minion's pillar: palplat acts only on minions that have one; assign "
        "the palplat pillar to this minion in the pillar top file, or do not target it",
    )


def problems_of(pillar: Mapping[str, Any] | None, **kw: Any) -> list[PillarProblem]:
    """The problems :func:`load` (same arguments) finds; empty when the pillar is valid."""
    try:
        load(pillar, **kw)
    except PillarError as exc:
        return exc.problems
    return []


# ------------------------------------------------------------------- cross checks


def releases(cfg: PalplatPillar) -> dict[str, Release]:
    """Every Helm release palplat manages: platform releases plus the GPU device plugin.

    The device plugin is synthesized whenever ``gpu:enabled`` is not false (also under
    ``auto``: whether any node has a GPU is a cluster fact no single pillar knows). Its
    DaemonSet runs with ``runtimeClassName: nvidia`` and only on nodes the GPU stage
    labelled ``nvidia.com/gpu.present=true``, so it is harmless where no node has a GPU.
    ``device_plugin:values`` are merged over these defaults.
    """
    out = dict(cfg.platform.releases)
    if cfg.gpu.enabled is not False and DEVICE_PLUGIN_RELEASE not in out:
        out[DEVICE_PLUGIN_RELEASE] = device_plugin_release(cfg)
    return out


def device_plugin_release(cfg: PalplatPillar) -> Release:
    """The NVIDIA device plugin release synthesized from ``palplat:gpu:device_plugin``."""
    dp = cfg.gpu.device_plugin
    values: dict[str, Any] = _merged(
        {"runtimeClassName": RUNTIME_CLASS, "nodeSelector": {GPU_NODE_LABEL: "true"}},
        dp.values,
    )
    if dp.time_slicing:
        values.setdefault("config", {}).setdefault(
            "map",
            {
                "default": json.dumps(
                    {
                        "version": "v1",
                        "sharing": {
                            "timeSlicing": {
                                "resources": [
                                    {
                                        "name": "nvidia.com/gpu",
                                        "replicas": dp.time_slicing.replicas,
                                    }
                                ]
                            }
                        },
                    }
                )
            },
        )
    return Release(namespace=dp.namespace, chart=dp.chart, values=values, wait=False)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merged(out[k], v)
        else:
            out[k] = v
    return out


def release_order(rels: Mapping[str, Release]) -> list[list[str]]:
    """Topological waves of release names: each wave only needs earlier waves."""
    remaining = {n: set(r.needs) for n, r in rels.items()}
    waves: list[list[str]] = []
    while remaining:
        ready = sorted(n for n, deps in remaining.items() if not deps & remaining.keys())
        if not ready:
            raise ValueError("cycle: " + " -> ".join(_find_cycle(remaining)))
        waves.append(ready)
        for n in ready:
            del remaining[n]
    return waves


def _find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    for start in sorted(graph):
        path, seen, node = [start], {start}, start
        while True:
            nxt = sorted(d for d in graph.get(node, ()) if d in graph)
            if not nxt:
                break
            node = nxt[0]
            if node in seen:
                return path[path.index(node) :] + [node]
            path.append(node)
            seen.add(node)
    return sorted(graph)


def cross_check(cfg: PalplatPillar) -> list[PillarProblem]:
    problems: list[PillarProblem] = []
    rels = releases(cfg)
    for name, rel in cfg.platform.releases.items():
        base = f"{ROOT}:platform:releases:{name}"
        for i, need in enumerate(rel.needs):
            if need not in rels:
                guess = difflib.get_close_matches(need, list(rels), n=1)
                hint = f"; did you mean '{guess[0]}'?" if guess else ""
                problems.append(
                    PillarProblem(
                        f"{base}:needs:{i}",
                        f"names a release that is not defined{hint} Define it under "
                        f"palplat:platform:releases or remove it from needs",
                        validation.found(need),
                    )
                )
        c = rel.chart
        kinds = [k for k in ("repo", "oci", "path") if getattr(c, k)]
        if len(kinds) != 1:
            problems.append(
                PillarProblem(
                    f"{base}:chart",
                    "must have exactly one of repo (with name), oci or path",
                    validation.found(kinds),
                )
            )
        elif c.repo and not c.name:
            problems.append(PillarProblem(f"{base}:chart:name", "is required with repo"))
        elif (c.repo or c.oci) and not c.version:
            problems.append(
                PillarProblem(
                    f"{base}:chart:version", "is required for repo and oci charts: pin a version"
                )
            )
    known = {n: {d for d in r.needs if d in rels} for n, r in rels.items()}
    try:
        release_order({n: _Needs(d) for n, d in known.items()})
    except ValueError as exc:
        problems.append(
            PillarProblem(
                f"{ROOT}:platform:releases",
                f"release needs form a {exc}; remove one of these needs",
            )
        )
    problems.extend(k3s_flags.check(cfg, stage=False))
    seen_ns: dict[str, str] = {}
    for name, svc in cfg.services.items():
        ns = svc.namespace or name
        if ns in seen_ns:
            problems.append(
                PillarProblem(
                    f"{ROOT}:services:{name}",
                    f"duplicate service: namespace '{ns}' is already used by service "
                    f"'{seen_ns[ns]}'; give one of them another name or namespace",
                )
            )
        seen_ns[ns] = name
    problems.extend(platform_checks.check(cfg))
    problems.extend(service_checks.check(cfg))
    problems.extend(nft_checks.check(cfg))
    problems.extend(_gpu_problems(cfg))
    problems.extend(host_checks.check(cfg))
    problems.extend(transport.check(cfg))
    return problems


def _gpu_problems(cfg: PalplatPillar) -> list[PillarProblem]:
    """``gpu:default_runtime`` and a ``default-runtime`` in ``k3s:config`` must agree."""
    own = cfg.k3s.config.get("default-runtime")
    if own is None:
        return []
    out: list[PillarProblem] = []
    if cfg.gpu.default_runtime and own != RUNTIME_CLASS:
        out.append(
            PillarProblem(
                f"{ROOT}:k3s:config:default-runtime",
                f"contradicts palplat:gpu:default_runtime (which makes it '{RUNTIME_CLASS}' on "
                "GPU nodes); remove one of them",
                validation.found(own),
            )
        )
    if own == RUNTIME_CLASS and cfg.gpu.enabled is False:
        out.append(
            PillarProblem(
                f"{ROOT}:k3s:config:default-runtime",
                "is nvidia while palplat:gpu:enabled is false: no pod could start on this node "
                "without the NVIDIA runtime; enable the GPU stage or remove it",
                validation.found(own),
            )
        )
    return out


class _Needs:
    def __init__(self, needs: set[str]):
        self.needs = needs
