"""``palplat-ci``: the pillar repository's CI, from the master's installed palplat.

A pull request's pipeline must not run a script from the pull request's own checkout (it
would run whatever the pull request wrote into it, on the master). So the CI steps call
this installed command (the ``palplat-ci`` console script of the wheel, or
``python3 -m palplat.pipeline`` with the synced library on ``PYTHONPATH``)::

    palplat-ci plan --pr 12 --pillar pillar/ [--out plan.md]   # exit 0 / 2 changes / 1
    palplat-ci comment plan.md --pr 12                          # post or update the comment
    palplat-ci revision [--repo .] --out dora.json              # DORA: revision, commits
    palplat-ci apply [--out result.md] [--dora dora.json]       # after merge: palplat.full

``plan`` runs ``salt-run palplat.plan pillarenv=pr-<N> source=<dir>``: the master stages
the pull request's ``.sls`` files, reads them as YAML only and never decrypts what the
pull request changed (docs/security.md). ``comment`` needs only the forge token and runs
as the CI agent's own user; ``plan`` and ``apply`` need ``salt-run`` (root on the master,
or a sudo rule for exactly this command). Environment (Woodpecker sets the ``CI_*``):
``FORGE_TOKEN`` (``comment`` only), ``CI_FORGE_URL`` (https), ``CI_REPO`` (owner/name),
``CI_COMMIT_PULL_REQUEST``, ``PALPLAT_TARGET``, ``SALT_RUN`` (default ``salt-run``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

MARKER = "<!-- palplat-plan -->"
TARGET = "I@palplat:*"


def _salt_run() -> list[str]:
    return [os.environ.get("SALT_RUN") or "salt-run"]


def _tail(text: str, n: int = 50) -> str:
    return "\n".join(text.splitlines()[-n:])


def plan(pr: str, pillar: str, out: str | None, target: str) -> int:
    """The plan of pull request ``pr`` (its pillar checkout: ``pillar``) as Markdown."""
    if not pr.isdigit():
        print(f"palplat-ci plan: --pr must be the pull request's number: {pr!r}", file=sys.stderr)
        return 64
    source = Path(pillar).resolve()
    with tempfile.TemporaryDirectory(prefix="palplat-ci-") as tmp:
        md = Path(tmp) / "plan.md"
        argv = [
            *_salt_run(),
            "palplat.plan",
            f"pillarenv=pr-{pr}",
            f"source={source}",
            f"path={md}",
        ]
        if target != TARGET:
            argv += [f"tgt={target}", "tgt_type=compound"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        rc = proc.returncode
        if md.exists() and md.stat().st_size:
            text = md.read_text()
        else:
            rc = 1
            text = "\n".join(
                [
                    MARKER,
                    "## palplat plan: errors",
                    "",
                    "```",
                    _tail(proc.stderr),
                    _tail(proc.stdout),
                    "```",
                ]
            )
    _emit(text, out)
    return rc if rc in (0, 1, 2) else 1


def revision(repo: str, out: str | None) -> int:
    """DORA (docs/dora.md): the merged revision and the commits before it, with their
    times, as the JSON ``apply --dora`` passes to the run. Run as the CI agent's user
    (``git log`` of its checkout), not under sudo: apply reads the file as data only."""
    from palplat.dora import ci

    commits = ci.git_commits(repo)
    text = json.dumps(ci.orchestrate_pillar(commits[0][0] if commits else None, commits))
    _emit(text, out)
    return 0


def _dora_pillar(path: str | None) -> list[str]:
    """``pillar=<json>`` for the orchestration from ``revision``'s file: only a revision
    and ``[sha, time, revert]`` rows are taken from it (data, re-validated)."""
    if not path:
        return []
    from palplat.dora import ci

    try:
        given = json.loads(Path(path).read_text()).get(ci.PILLAR_KEY) or {}
        rev = given.get("revision")
        rows = [r for r in given.get("commits") or [] if isinstance(r, list) and len(r) >= 2]
        ok = all(isinstance(x, str) and x.isalnum() and len(x) <= 64
                 for x in [rev or "x", *(r[0] for r in rows)])  # fmt: skip
        if not ok:
            raise ValueError("revisions must be commit ids")
        pillar = ci.orchestrate_pillar(rev, [(r[0], float(r[1]), bool(r[2:] and r[2]))
                                             for r in rows])  # fmt: skip
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        print(f"palplat-ci: {path}: no DORA revision passed ({exc})", file=sys.stderr)
        return []
    return [f"pillar={json.dumps(pillar)}"]


def apply(out: str | None, dora: str | None = None) -> int:
    """``salt-run state.orchestrate palplat.full``, its result as Markdown."""
    proc = subprocess.run(  # noqa: S603
        [*_salt_run(), "state.orchestrate", "palplat.full", *_dora_pillar(dora)],
        capture_output=True,
        text=True,
        check=False,
    )
    verdict = "succeeded" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    text = "\n".join(
        [
            f"## palplat apply {verdict}",
            "",
            "<details><summary>output</summary>",
            "",
            "```",
            _tail(proc.stdout, 300),
            _tail(proc.stderr, 50),
            "```",
            "",
            "</details>",
        ]
    )
    _emit(text, out)
    return 0 if proc.returncode == 0 else 1


def _emit(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text)
    print(text)


# --------------------------------------------------------------------------- comments


class Forge:
    """Forgejo/Gitea issue comments (Forgejo's swagger, /api/v1): pull requests are
    issues for these endpoints. ``Authorization: token <FORGE_TOKEN>``."""

    def __init__(self, url: str, repo: str, token: str, allow_http: bool = False):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" and not allow_http:
            raise SystemExit(
                f"palplat-ci: CI_FORGE_URL {url!r} is not https: the forge token would travel "
                "in clear (PALPLAT_CI_ALLOW_HTTP=1 only for a forge on loopback)"
            )
        self.base = url.rstrip("/") + "/api/v1/repos/" + repo
        self._headers = {
            "Authorization": "token " + token,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def call(self, method: str, path: str, data: dict | None = None):
        req = urllib.request.Request(
            self.base + path,
            method=method,
            headers=self._headers,
            data=None if data is None else json.dumps(data).encode(),
        )
        opener = urllib.request.build_opener(_NoRedirect)
        with opener.open(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def upsert(self, number: str, body: str, find: bool) -> str:
        """Update this pull request's palplat comment (found by its first line), or post."""
        mine = None
        page = 1
        while find and mine is None:
            got = self.call("GET", f"/issues/{number}/comments?page={page}&limit=50")
            if not got:
                break
            mine = next((c for c in got if (c.get("body") or "").startswith(MARKER)), None)
            page += 1
        if mine:
            self.call("PATCH", f"/issues/comments/{mine['id']}", {"body": body})
            return f"updated comment {mine['id']}"
        new = self.call("POST", f"/issues/{number}/comments", {"body": body})
        return f"posted comment {new.get('id')}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None  # the token never follows a redirect


def comment(path: str, number: str) -> int:
    env = os.environ
    missing = [k for k in ("FORGE_TOKEN", "CI_FORGE_URL", "CI_REPO") if not env.get(k)]
    if missing or not number:
        print(f"palplat-ci comment: set {', '.join(missing) or '--pr'}", file=sys.stderr)
        return 64
    body = Path(path).read_text()
    forge = Forge(
        env["CI_FORGE_URL"],
        env["CI_REPO"],
        env["FORGE_TOKEN"],
        allow_http=env.get("PALPLAT_CI_ALLOW_HTTP") == "1",
    )
    print(forge.upsert(number, body, find=body.startswith(MARKER)))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="palplat-ci", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan", help="plan a pull request's pillar (exit 0, 2 changes, 1 errors)")
    p.add_argument("--pr", default=os.environ.get("CI_COMMIT_PULL_REQUEST", ""))
    p.add_argument("--pillar", default="pillar", help="the pull request's pillar directory")
    p.add_argument("--out", help="also write the Markdown here")
    p.add_argument("--target", default=os.environ.get("PALPLAT_TARGET") or TARGET)
    a = sub.add_parser("apply", help="run palplat.full (after a merge)")
    a.add_argument("--out")
    a.add_argument("--dora", help="the JSON `palplat-ci revision` wrote (docs/dora.md)")
    r = sub.add_parser("revision", help="DORA: the merged revision and its commits (JSON)")
    r.add_argument("--repo", default=".", help="the pillar repository's checkout")
    r.add_argument("--out")
    c = sub.add_parser("comment", help="post (or update) a Markdown file as the PR comment")
    c.add_argument("file")
    c.add_argument("--pr", default=os.environ.get("CI_COMMIT_PULL_REQUEST", ""))
    args = ap.parse_args(argv)
    if args.cmd == "plan":
        return plan(str(args.pr), args.pillar, args.out, args.target)
    if args.cmd == "apply":
        return apply(args.out, args.dora)
    if args.cmd == "revision":
        return revision(args.repo, args.out)
    return comment(args.file, str(args.pr))


if __name__ == "__main__":
    sys.exit(main())
