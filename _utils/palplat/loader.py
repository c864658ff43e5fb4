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
        for kind in ("modules", "states", "runners", "output", "renderers")
        if (_SALT / kind).is_dir()
    }


def state_tree() -> str | None:
    """The directory that holds the ``palplat`` state tree (``palplat/full.sls`` and the
    stages) in an installed wheel: the entry to add to the master's ``file_roots``. None
    when palplat runs from a checkout (file_roots + ``saltutil.sync_all``), whose
    ``salt/`` directory is that entry."""
    files = _SALT / "files"
    return str(files) if (files / "palplat" / "full.sls").is_file() else None
