#!/usr/bin/env bash
# palplat CI for the repository that holds the pillar; any CI can call it on the master
# (or on a host whose `salt-run` reaches it).
#
#   ci/plan.sh plan    # pull request: validate and plan, post the Markdown as a comment
#   ci/plan.sh apply   # merge to main: run palplat.full, post the result
#
# Environment (Woodpecker sets the CI_* ones; other CIs: set them yourself):
#   FORGE_TOKEN          API token (a CI secret) that may comment on the repository
#   CI_FORGE_URL         https://forgejo.example  (Forgejo or Gitea)
#   CI_REPO              owner/name of the pillar repository
#   CI_COMMIT_PULL_REQUEST  the pull request's number (plan)
#   PALPLAT_REPORT_ISSUE    issue or pull request number the apply result goes to (apply;
#                           unset: printed only)
#   PALPLAT_TARGET       salt target (default: every minion with a palplat pillar)
#   PALPLAT_PILLARENV    plan the pillar of this environment (the pull request's checkout,
#                        where the master's pillar_roots maps __env__), not the current one
#   SALT_RUN             the salt-run command (default: salt-run)
# The plan comment is found again by its first line (<!-- palplat-plan -->) and updated
# on every push, so a pull request carries one plan comment, the latest.
# Exit code: plan 0 no changes, 2 changes, 1 errors; apply 0 or 1.
set -uo pipefail
mode="${1:-plan}"
salt_run="${SALT_RUN:-salt-run}"
target="${PALPLAT_TARGET:-I@palplat:*}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

case "$mode" in
  plan)
    env_arg=()
    [ -n "${PALPLAT_PILLARENV:-}" ] && env_arg=(pillarenv="$PALPLAT_PILLARENV")
    $salt_run palplat.plan tgt="$target" tgt_type=compound path="$out/comment.md" \
      "${env_arg[@]}" >"$out/stdout" 2>"$out/stderr"
    rc=$?
    if [ ! -s "$out/comment.md" ]; then
      { echo "<!-- palplat-plan -->"; echo "## palplat plan: errors"; echo; echo '```';
        tail -n 50 "$out/stderr" "$out/stdout"; echo '```'; } >"$out/comment.md"
      rc=1
    fi
    number="${CI_COMMIT_PULL_REQUEST:-}"
    ;;
  apply)
    $salt_run state.orchestrate palplat.full >"$out/stdout" 2>"$out/stderr"
    rc=$?
    [ "$rc" -eq 0 ] && verdict="succeeded" || verdict="FAILED (exit $rc)"
    { echo "## palplat apply ${verdict}"; echo; echo "<details><summary>output</summary>";
      echo; echo '```'; tail -n 300 "$out/stdout"; tail -n 50 "$out/stderr"; echo '```';
      echo; echo "</details>"; } >"$out/comment.md"
    number="${PALPLAT_REPORT_ISSUE:-}"
    ;;
  *)
    echo "usage: $0 plan|apply" >&2
    exit 64
    ;;
esac

cat "$out/comment.md"
if [ -n "${FORGE_TOKEN:-}" ] && [ -n "${CI_FORGE_URL:-}" ] && [ -n "${CI_REPO:-}" ] \
   && [ -n "$number" ]; then
  MODE="$mode" NUMBER="$number" BODY_FILE="$out/comment.md" python3 - <<'PY' || rc=1
# Forgejo/Gitea issue comments API (Forgejo's swagger, /api/v1):
#   GET   /repos/{owner}/{repo}/issues/{index}/comments   -> [{"id", "body", ...}]
#   POST  /repos/{owner}/{repo}/issues/{index}/comments   {"body"} -> 201 {"id", ...}
#   PATCH /repos/{owner}/{repo}/issues/comments/{id}      {"body"} -> 200 {"id", ...}
# Authorization: token <FORGE_TOKEN>. Pull requests are issues for these endpoints.
import json, os, urllib.request

base = os.environ["CI_FORGE_URL"].rstrip("/") + "/api/v1/repos/" + os.environ["CI_REPO"]
headers = {"Authorization": "token " + os.environ["FORGE_TOKEN"],
           "Content-Type": "application/json", "Accept": "application/json"}
body = open(os.environ["BODY_FILE"], encoding="utf-8").read()
marker = "<!-- palplat-plan -->"

def call(method, url, data=None):
    req = urllib.request.Request(url, method=method, headers=headers,
                                 data=None if data is None else json.dumps(data).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")

comments = f"{base}/issues/{os.environ['NUMBER']}/comments"
mine = None
if os.environ["MODE"] == "plan":
    page = 1
    while mine is None:
        got = call("GET", f"{comments}?page={page}&limit=50")
        if not got:
            break
        mine = next((c for c in got if (c.get("body") or "").startswith(marker)), None)
        page += 1
if mine:
    call("PATCH", f"{base}/issues/comments/{mine['id']}", {"body": body})
    print(f"updated comment {mine['id']}")
else:
    new = call("POST", comments, {"body": body})
    print(f"posted comment {new.get('id')}")
PY
fi
exit "$rc"
