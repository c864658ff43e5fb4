"""palplat-ci (palplat/pipeline.py, the installed CI command) against a local fake of the
Forgejo/Gitea issue-comments API: it posts the plan as exactly one comment and updates
that comment on the next push; a plan that fails without Markdown is posted as errors.

The fake checks the request shapes of Forgejo's swagger (/api/v1): GET and POST
/repos/{owner}/{repo}/issues/{index}/comments, PATCH /repos/{owner}/{repo}/issues/comments/{id},
JSON bodies {"body": string}, header ``Authorization: token <token>``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.saltenv import REPO

TOKEN = "forge-token-0123456789"


class FakeForge:
    def __init__(self):
        self.comments: dict[int, dict] = {}  # id -> {"id", "body", "issue"}
        self.requests: list[tuple[str, str]] = []
        self.problems: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _json(self, code, data):
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _check(self, body_expected):
                fake.requests.append((self.command, self.path))
                if self.headers.get("Authorization") != f"token {TOKEN}":
                    fake.problems.append(f"{self.command} {self.path}: no token header")
                    self._json(401, {"message": "token is required"})
                    return None
                if not body_expected:
                    return {}
                n = int(self.headers.get("Content-Length") or 0)
                try:
                    data = json.loads(self.rfile.read(n))
                except ValueError:
                    data = None
                if not isinstance(data, dict) or not isinstance(data.get("body"), str):
                    fake.problems.append(f"{self.command} {self.path}: body is not {{body: str}}")
                    self._json(422, {"message": "body is required"})
                    return None
                return data

            def do_GET(self):  # noqa: N802
                m = re.fullmatch(r"/api/v1/repos/o/pillar/issues/(\d+)/comments\?(.*)", self.path)
                if not m:
                    fake.problems.append(f"GET {self.path}: unknown endpoint")
                    return self._json(404, {"message": "not found"})
                if self._check(False) is None:
                    return None
                page = int(re.search(r"page=(\d+)", m.group(2)).group(1))
                mine = [c for c in fake.comments.values() if c["issue"] == int(m.group(1))]
                return self._json(200, mine if page == 1 else [])

            def do_POST(self):  # noqa: N802
                m = re.fullmatch(r"/api/v1/repos/o/pillar/issues/(\d+)/comments", self.path)
                if not m:
                    fake.problems.append(f"POST {self.path}: unknown endpoint")
                    return self._json(404, {"message": "not found"})
                data = self._check(True)
                if data is None:
                    return None
                cid = len(fake.comments) + 100
                fake.comments[cid] = {"id": cid, "body": data["body"], "issue": int(m.group(1))}
                return self._json(201, fake.comments[cid])

            def do_PATCH(self):  # noqa: N802
                m = re.fullmatch(r"/api/v1/repos/o/pillar/issues/comments/(\d+)", self.path)
                if not m or int(m.group(1)) not in fake.comments:
                    fake.problems.append(f"PATCH {self.path}: unknown comment")
                    return self._json(404, {"message": "not found"})
                data = self._check(True)
                if data is None:
                    return None
                fake.comments[int(m.group(1))]["body"] = data["body"]
                return self._json(200, fake.comments[int(m.group(1))])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def forge():
    f = FakeForge()
    yield f
    f.server.shutdown()


def fake_salt_run(tmp_path, text, code):
    """A stand-in `salt-run` that writes the plan Markdown to path= and exits `code`, and
    records its argv (pillarenv=pr-7 source=<the checkout>)."""
    script = tmp_path / f"salt-run-{code}"
    script.write_text(
        "#!/usr/bin/env python3\nimport sys\n"
        f"open({str(tmp_path / 'argv')!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        "path = [a.split('=', 1)[1] for a in sys.argv if a.startswith('path=')][0]\n"
        f"open(path, 'w').write({text!r})\nsys.exit({code})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def ci(*args, **env):
    full = dict(
        os.environ,
        PYTHONPATH=str(REPO / "_utils"),
        CI_FORGE_URL=env.pop("forge").url,
        CI_REPO="o/pillar",
        CI_COMMIT_PULL_REQUEST="7",
        PALPLAT_CI_ALLOW_HTTP="1",  # the fake forge is plain http on loopback
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "palplat.pipeline", *args],
        env=full, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def run_plan(forge, salt_run, tmp_path=None):
    out = (tmp_path or REPO) / "plan.md" if tmp_path else None
    planned = ci("plan", "--pillar", str(REPO / "pillar"), "--out", str(out), forge=forge,
                 SALT_RUN=salt_run)  # fmt: skip
    if planned.returncode not in (0, 2) and not out.exists():
        return planned
    posted = ci("comment", str(out), forge=forge, FORGE_TOKEN=TOKEN)
    assert posted.returncode == 0, posted.stdout + posted.stderr
    planned.stdout += posted.stdout
    return planned


def test_plan_posts_one_comment_then_updates_it(forge, tmp_path):
    first = "<!-- palplat-plan -->\n## palplat plan: changes\n\none change\n"
    r = run_plan(forge, fake_salt_run(tmp_path, first, 2), tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "posted comment" in r.stdout and len(forge.comments) == 1
    argv = (tmp_path / "argv").read_text()
    assert f"pillarenv=pr-7 source={REPO / 'pillar'}" in argv
    second = "<!-- palplat-plan -->\n## palplat plan: no changes\n"
    r = run_plan(forge, fake_salt_run(tmp_path, second, 0), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "updated comment" in r.stdout
    assert [c["body"] for c in forge.comments.values()] == [second]
    assert forge.problems == []
    assert [m for m, _ in forge.requests] == ["GET", "POST", "GET", "PATCH"]
    assert TOKEN not in r.stdout + r.stderr


def test_plan_error_without_markdown_is_posted_as_an_error(forge, tmp_path):
    script = tmp_path / "salt-run"
    script.write_text("#!/bin/sh\necho 'Salt request timed out' >&2\nexit 1\n")
    script.chmod(0o755)
    r = run_plan(forge, str(script), tmp_path)
    assert r.returncode == 1
    (c,) = forge.comments.values()
    assert "palplat plan: errors" in c["body"] and "timed out" in c["body"]


def test_the_forge_token_is_refused_over_plain_http(forge, tmp_path):
    (tmp_path / "plan.md").write_text("<!-- palplat-plan -->\nx\n")
    env = dict(os.environ, PYTHONPATH=str(REPO / "_utils"), CI_FORGE_URL=forge.url,
               CI_REPO="o/pillar", FORGE_TOKEN=TOKEN)  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "palplat.pipeline", "comment", str(tmp_path / "plan.md"),
         "--pr", "7"], env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode != 0 and "not https" in r.stderr
    assert forge.requests == []
