"""Entry point for deployment mode (a): ``pip install`` into Salt's Python.

``pyproject.toml`` registers :func:`get_loader_dirs` under the ``salt.loader`` entry point
group; Salt calls it and adds the returned directories to its loaders.
"""

from __future__ import annotations

from pathlib import Path

_SALT = Path(__file__).resolve().parent / "_salt"


def get_loader_dirs() -> dict[str, list[str]]:
    return {
        kind: [str(_SALT / kind)]
        for kind in ("modules", "states", "runners", "output")
        if (_SALT / kind).is_dir()
    }
