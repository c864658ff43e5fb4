"""What CI passes to a real run so that DORA can count changes and lead times: the
pillar revision being applied and the commits before it, with their times.

The orchestration reads them from the pillar key :data:`PILLAR_KEY` (an orchestrate
``pillar=`` override, so nothing is written anywhere)::

    salt-run state.orchestrate palplat.full pillar="$(python3 -m palplat.dora.ci --repo .)"

:func:`orchestrate_pillar` is the interface (revision + ``[(commit, time[, subject])]``);
:func:`git_commits` reads them from a checkout (``git log``, argv only); :func:`main`
prints the pillar JSON (merged with ``--pillar`` JSON given, e.g. ``palplat_target``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from palplat import proc
from palplat.dora.records import MAX_COMMITS, commits_of

PILLAR_KEY = "palplat_dora"


def orchestrate_pillar(revision: str | None, commits: Iterable[Any] = ()) -> dict[str, Any]:
    """``{"palplat_dora": {"revision": ..., "commits": [[sha, time, revert], ...]}}``;
    ``commits`` newest first (``(sha, time)``, ``(sha, time, subject)`` or mappings)."""
    return {PILLAR_KEY: {"revision": revision or None, "commits": commits_of(commits)}}


def git_commits(repo: str = ".", rev: str = "HEAD", limit: int = MAX_COMMITS) -> list[tuple]:
    """``[(sha, committer time, subject), ...]`` of ``rev`` and before, newest first."""
    out = proc.run(
        ["git", "-C", repo, "log", f"-n{int(limit)}", "--format=%H%x09%ct%x09%s", rev, "--"]
    ).stdout
    rows = []
    for line in out.splitlines():
        sha, when, subject = (line.split("\t", 2) + ["", ""])[:3]
        rows.append((sha, int(when), subject))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the orchestrate pillar DORA reads (JSON)")
    ap.add_argument("--repo", default=".", help="the pillar repository's checkout")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--pillar", default="{}", help="JSON to merge (e.g. palplat_target)")
    args = ap.parse_args(argv)
    commits = git_commits(args.repo, args.rev)
    pillar = dict(json.loads(args.pillar or "{}"))
    pillar.update(orchestrate_pillar(commits[0][0] if commits else None, commits))
    sys.stdout.write(json.dumps(pillar, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
