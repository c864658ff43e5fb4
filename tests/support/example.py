"""The example pillar (pillar/palplat/init.sls with secrets.sls merged over it, as Salt
merges them), for tests: ``raw()`` as committed (its CHANGE-ME placeholders fail
validation, on purpose), ``filled()`` with every placeholder replaced by a test value."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = "CHANGE-ME"


def merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def raw() -> dict[str, Any]:
    """The whole example pillar (``{"palplat": ...}``), placeholders kept."""
    base = yaml.safe_load((REPO / "pillar/palplat/init.sls").read_text())
    secrets = yaml.safe_load((REPO / "pillar/palplat/secrets.sls").read_text())
    return merge(base, secrets)


def test_value(placeholder: str, salt: str = "test") -> str:
    """The value a test (or the sandbox, with its key's fingerprint as ``salt``) puts in
    place of a placeholder: the same placeholder gives the same value (YAML aliases)."""
    return f"{salt}-" + hashlib.sha256((salt + placeholder).encode()).hexdigest()[:24]


def fill(tree: Any, value=test_value) -> Any:
    """``tree`` with every string holding a placeholder replaced by ``value(string)``."""
    if isinstance(tree, dict):
        return {k: fill(v, value) for k, v in tree.items()}
    if isinstance(tree, list):
        return [fill(v, value) for v in tree]
    if isinstance(tree, str) and PLACEHOLDER in tree:
        return value(tree)
    return tree


def filled() -> dict[str, Any]:
    """The whole example pillar with its placeholders replaced by test values."""
    return fill(raw())


def palplat() -> dict[str, Any]:
    """``filled()["palplat"]``."""
    return filled()["palplat"]
