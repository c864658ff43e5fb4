"""A pull request's pillar, made safe to plan on the master (docs/security.md).

A pull request is untrusted until it is merged: its pillar files are data to compare,
never code to run on the master, which holds the GPG key and root on every minion.

1. :func:`stage` copies the checkout's pillar files (regular ``.sls`` files only: never a
   symlink, a device or a file outside it) into ``<palplat_pr_root>/<name>``, a directory
   Salt's ``pillar_roots`` does not map (so nothing renders it with Jinja).
2. :func:`scan` refuses what a YAML-only read would silently change: a renderer line
   other than YAML (``#!py``, ``#!jinja``, ...) and Jinja markup.
3. :func:`render` compiles a minion's pillar from a directory as Salt does (its top file,
   matching, includes, merging) with the YAML renderer only: Salt skips every other
   renderer named in a file, so ``{{ salt['cmd.run'](...) }}`` stays text and ``#!py``
   runs nothing, and no ciphertext is decrypted.
4. :func:`provenance.seal` (per minion, against the applied pillar rendered the same way)
   turns each ciphertext into a reference to the applied value (same ciphertext, same
   path) or a sealed marker (never decrypted). The result holds no secret value; it
   travels to the minions as the ``palplat_plan`` pillar (:func:`payload`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palplat import provenance
from palplat.errors import InputError

# master config: where pull requests' pillars are staged (outside pillar_roots)
ROOT_OPTION = "palplat_pr_root"
DEFAULT_ROOT = "/srv/palplat/pull-requests"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_FILES = 500
MAX_BYTES = 8 * 1024 * 1024
ALLOWED_RENDERERS = {("yaml",), ("yaml", "gpg"), ("yaml", "palplat")}
JINJA = re.compile(r"\{\{|\{%|\{#")


@dataclass
class Prepared:
    """What :func:`prepare` found: the minions to plan, their sealed pillars (by minion)
    and the problems that stop the plan (exit 1)."""

    directory: str
    trees: dict[str, Any] = field(default_factory=dict)  # minion -> sealed palplat tree
    errors: list[str] = field(default_factory=list)
    not_palplat: list[str] = field(default_factory=list)  # minions the PR gives no palplat

    @property
    def minions(self) -> list[str]:
        return sorted(self.trees)


def directory(opts: Mapping[str, Any], name: str) -> Path:
    """``<palplat_pr_root>/<name>``; refuses a name that could leave the root, and a
    root (or name) Salt's ``pillar_roots`` maps: Salt would render it with its full
    renderer pipeline (Jinja) whenever anyone asks for that pillarenv."""
    if not NAME.match(name or "") or name in (".", ".."):
        raise InputError(
            f"pillarenv={name!r}: a pull request's pillar is named like pr-12 (letters, "
            "digits, '.', '_', '-')"
        )
    roots = opts.get("pillar_roots") or {}
    if name in roots or "__env__" in roots:
        raise InputError(
            f"pillar_roots maps {'__env__' if '__env__' in roots else name!r}: Salt would "
            "render a pull request's pillar with Jinja whenever that pillarenv is asked "
            f"for. Remove it from pillar_roots; palplat reads pull requests from "
            f"{ROOT_OPTION} ({opts.get(ROOT_OPTION) or DEFAULT_ROOT}), see docs/security.md"
        )
    root = Path(opts.get(ROOT_OPTION) or DEFAULT_ROOT)
    return root / name


def stage(source: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Copy the ``.sls`` files of ``source`` (a pull request's pillar checkout) into a
    fresh ``dest``: regular files only, read without following links. Returns what was
    left out, and why; raises :class:`InputError` when too much is there."""
    src, out = Path(source), Path(dest)
    if not src.is_dir() or src.is_symlink():
        raise InputError(f"{source}: not a directory (the pull request's pillar checkout)")
    tmp = out.with_name(out.name + ".staging")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o700)
    skipped, count, size = [], 0, 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = Path(dirpath).relative_to(src)
        for d in list(dirnames):
            if (Path(dirpath) / d).is_symlink() or d.startswith("."):
                dirnames.remove(d)
                if not d.startswith("."):
                    skipped.append(f"{rel / d}: a symlink (left out)")
        for f in sorted(filenames):
            path = Path(dirpath) / f
            st = os.lstat(path)
            if not f.endswith(".sls"):
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append(f"{rel / f}: not a regular file (a symlink?): left out")
                continue
            count += 1
            size += st.st_size
            if count > MAX_FILES or size > MAX_BYTES:
                shutil.rmtree(tmp, ignore_errors=True)
                raise InputError(
                    f"{source}: more than {MAX_FILES} files or {MAX_BYTES} bytes of pillar"
                )
            (tmp / rel).mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                (tmp / rel / f).write_bytes(fh.read())
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return skipped


def scan(root: str | os.PathLike) -> list[str]:
    """Problems of the staged files that a YAML-only read would hide: a renderer line
    other than YAML (with palplat's or Salt's decryption), and Jinja markup (the master's
    default renderer would run it once merged)."""
    base = Path(root)
    return [p for path in sorted(base.rglob("*.sls")) for p in scan_file(path, base)]


def scan_file(path: Path, base: Path | None = None) -> list[str]:
    """:func:`scan` of one file (``base``: what its name is shown relative to)."""
    rel = path.relative_to(base) if base else path
    text = path.read_text(errors="replace")
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if first.startswith("#!"):
        pipe = tuple(p.strip().split(" ")[0] for p in first[2:].split("|") if p.strip())
        if pipe not in ALLOWED_RENDERERS:
            return [
                f"{rel}: renderer '{first[2:].strip()}' refused: a pull request's pillar is "
                "read as YAML (with '#!yaml|palplat' for GPG values) and never run; write "
                "it as plain YAML"
            ]
    m = JINJA.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        return [
            f"{rel}:{line}: Jinja markup refused: palplat plans a pull request's pillar as "
            "YAML only, so this would not be what the master renders once merged (and "
            "would run code on it); write plain YAML"
        ]
    return []


def read_files(paths: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """Pillar files read as a pull request's are (:func:`scan_file`, YAML only), merged as
    Salt merges pillar files, every ciphertext sealed: ``(pillar, problems)``."""
    import salt.utils.dictupdate
    import salt.utils.yaml

    merged: dict[str, Any] = {}
    problems: list[str] = []
    for name in paths:
        path = Path(name)
        if path.is_symlink() or not path.is_file():
            problems.append(f"{name}: not a regular file")
            continue
        found = scan_file(path)
        if found:
            problems.extend(found)
            continue
        try:
            data = salt.utils.yaml.safe_load(path.read_text()) or {}
        except Exception as exc:  # noqa: BLE001 - any YAML error is the file's problem
            problems.append(f"{name}: not valid YAML ({type(exc).__name__})")
            continue
        if not isinstance(data, dict):
            problems.append(f"{name}: does not hold a mapping")
            continue
        merged = salt.utils.dictupdate.merge(merged, data, strategy="smart")
    if "palplat" in merged:
        merged["palplat"] = provenance.seal(merged["palplat"], None)
    return merged, problems


def safe_opts(opts: Mapping[str, Any], roots: list[str]) -> dict[str, Any]:
    """The master's opts, for compiling a pillar from ``root`` as plain YAML: no other
    renderer, no external pillars, no decryption."""
    out = copy.deepcopy(dict(opts))
    out.update(
        {
            "pillar_roots": {"base": [str(r) for r in roots]},
            "pillarenv": "base",
            "renderer": "yaml",
            "renderer_whitelist": ["yaml"],
            "renderer_blacklist": [],
            "ext_pillar": [],
            "on_demand_ext_pillar": [],
            "decrypt_pillar": [],
            "pillar_cache": False,
            "pillarenv_from_saltenv": False,
            "file_client": "local",
        }
    )
    return out


def render(opts: Mapping[str, Any], roots: list[str], minion: str, grains: Any) -> dict:
    """A minion's pillar compiled from ``roots`` with :func:`safe_opts` (its ``_errors``
    kept, for the report)."""
    import salt.pillar

    pillar = salt.pillar.Pillar(
        safe_opts(opts, roots), dict(grains or {}), minion, "base", pillarenv="base"
    )
    return pillar.compile_pillar() or {}


def applied_root(opts: Mapping[str, Any]) -> list[str]:
    return list((opts.get("pillar_roots") or {}).get("base") or [])


def prepare(
    opts: Mapping[str, Any],
    name: str,
    minions: Iterable[str],
    grains: Mapping[str, Any],
    *,
    source: str | None = None,
    required: Iterable[str] = (),
) -> Prepared:
    """Stage (from ``source``), scan and render pull request ``name`` for ``minions``
    (``grains``: each minion's cached grains), each sealed against the applied pillar.
    ``required``: minions the caller targeted by name; each must get a palplat pillar."""
    where = directory(opts, name)
    prep = Prepared(str(where))
    if source:
        prep.errors.extend(stage(source, where))
    if not where.is_dir():
        raise InputError(
            f"{where}: no pull request pillar staged there; run the plan with source=<the "
            "pull request's pillar checkout> (palplat-ci does)"
        )
    prep.errors.extend(scan(where))
    if prep.errors:
        return prep
    applied_dirs = applied_root(opts)
    for mid in sorted(set(minions)):
        pr = render(opts, [str(where)], mid, grains.get(mid))
        for err in pr.get("_errors") or []:
            prep.errors.append(f"{mid}: the pull request's pillar: {err}")
        if "palplat" not in pr:
            prep.not_palplat.append(mid)
            continue
        applied = {}
        if applied_dirs:
            # the applied pillar read the same way: its ciphertexts, not their values (a
            # pillar that needs Jinja reads as nothing here: every secret is then sealed)
            applied = render(opts, applied_dirs, mid, grains.get(mid))
            applied = applied if "_errors" not in applied else {}
        prep.trees[mid] = provenance.seal(pr["palplat"], applied.get("palplat"))
    for mid in required:
        if mid not in prep.trees:
            prep.errors.append(
                f"{mid}: the pull request gives this minion no palplat pillar: assign it in "
                "the pull request's top file, or do not target it"
            )
    return prep


def payload(trees: Mapping[str, Any]) -> dict[str, Any]:
    """The ``palplat_plan`` pillar for one job to every planned minion: each distinct
    sealed tree once, and which minion gets which."""
    digests: dict[str, str] = {}
    by_digest: dict[str, Any] = {}
    for mid, tree in sorted(trees.items()):
        d = hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()
        digests[mid] = d[:16]
        by_digest[d[:16]] = tree
    return {"trees": by_digest, "minions": digests}


def tree_for(plan: Mapping[str, Any], minion: str) -> Any:
    """This minion's sealed tree from a :func:`payload` (None: the plan has none)."""
    digest = ((plan or {}).get("minions") or {}).get(minion)
    return ((plan or {}).get("trees") or {}).get(digest) if digest else None
