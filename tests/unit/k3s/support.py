"""Shared by the k3s unit tests: versions the release server offers and a pillar builder."""

from __future__ import annotations

from palplat import k3s
from palplat.model import PalplatPillar

V1, V2, V3 = "v1.33.5+k3s1", "v1.33.6+k3s1", "v1.34.1+k3s1"


def load(root, **k3s_keys):
    """The model alone (no cross checks), so k3s.check itself is what is tested here;
    config.load runs the same checks (test_pillar_validation_runs_the_k3s_checks)."""
    k = {"version": V1, "root": str(root), "service_manager": "processes"}
    k.update(k3s_keys)
    return PalplatPillar.model_validate({"k3s": k})


def problems(cfg):
    return [str(p) for p in k3s.check(cfg)]
