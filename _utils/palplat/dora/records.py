"""Ledger records: small JSON mappings, one per fact, built from what palplat saw.

Every record has ``id`` (stable: the same fact seen twice is one record), ``k`` (its
kind) and ``t`` (when it happened, seconds since the epoch). Kinds:

- ``run``: one real ``palplat.full`` run: ``run`` (its id), ``rev`` (the pillar revision
  CI passed, or None), ``commits`` (``[[sha, time, revert], ...]``, newest first),
  ``ok`` (the run succeeded), ``stages`` (``{stage: ok|changed|failed|skipped}``).
- ``apply``: one platform component that changed or failed in a run: ``run``, ``c``
  (component), ``o`` (``changed`` | ``failed`` | ``skipped``), ``rb`` (rolled back),
  ``act`` (the actions, e.g. ``upgrade``, ``drift``), ``rev``, ``why`` (masked, short).
- ``mark``: ``salt-run palplat.dora_mark``: ``scope``, ``c``, ``why``.
- ``argo``: what a service's Argo CD Application showed: ``c`` (service), ``op``
  (``[startedAt, finishedAt, phase, revision]`` of its last operation), ``img`` (images),
  ``h`` (health), ``hs`` (health since), ``hist`` (``[[id, revision, deployedAt,
  deployStartedAt], ...]``, Argo CD keeps 10).
- ``pipe``: a finished Woodpecker pipeline of a service's repository: ``c``, ``n``
  (number), ``sha``, ``ct`` (commit time), ``cr``/``st``/``fi`` (created, started,
  finished), ``s`` (status), ``ev`` (event), ``br`` (branch).

Nothing here holds a secret value: components and stages are names, ``why`` is a masked
one-line message, revisions are commit ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from palplat import redact

PLATFORM, SERVICE = "platform", "service"
STAGE_COMPONENT = {
    "host": "host",
    "firewall": "firewall",
    "firewall-baseline": "firewall",
    "firewall-confirm": "firewall",
    "k3s-upgrade": "k3s-upgrade",
    "k3s": "k3s",
    "gpu": "gpu",
}
ORDER = {"skipped": 0, "unchanged": 1, "changed": 2, "failed": 3}
REQUISITE = "One or more requisite failed"
_RELEASE_LINE = re.compile(r"^palplat:platform:releases:(objects:[a-z]+|[^:\s]+): (.*)$", re.M)
_SERVICE_LINE = re.compile(r"^palplat:services:([a-z0-9][-a-z0-9]*) (\S+): (.*)$", re.M)
MAX_COMMITS = 200
WHY_CHARS = 240


def ts(value: Any) -> float | None:
    """Seconds since the epoch from a number or an RFC 3339 string (None: unknown)."""
    if value in (None, "", 0):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _why(text: Any) -> str:
    line = " ".join(redact.mask_text(str(text or "")).split())
    return line[:WHY_CHARS]


def digest(data: Any) -> str:
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


# ----------------------------------------------------------------- orchestration runs


def commits_of(items: Iterable[Any] | None) -> list[list]:
    """``[[sha, time, revert], ...]`` (newest first, at most 200) from CI's list of
    ``(sha, time)``, ``(sha, time, subject)`` or mappings with those keys; a subject that
    starts with ``Revert "`` (git revert's) marks a revert."""
    out: list[list] = []
    for c in items or ():
        if isinstance(c, Mapping):
            sha, when, subject = c.get("sha") or c.get("commit"), c.get("time"), c.get("subject")
            revert = bool(c.get("revert"))
        else:
            c = list(c)
            sha, when = c[0], c[1] if len(c) > 1 else None
            subject, revert = (c[2] if len(c) > 2 else None), False
            if isinstance(subject, bool):
                subject, revert = None, subject
        if not sha:
            continue
        revert = revert or str(subject or "").startswith('Revert "')
        out.append([str(sha), ts(when), 1 if revert else 0])
        if len(out) >= MAX_COMMITS:
            break
    return out


def _merge(into: dict[str, dict], comp: str, o: str, **extra: Any) -> None:
    cur = into.setdefault(comp, {"o": o, "rb": False, "act": [], "why": ""})
    if ORDER[o] > ORDER[cur["o"]]:
        cur["o"] = o
    cur["rb"] = cur["rb"] or bool(extra.get("rb"))
    for a in extra.get("act") or ():
        if a not in cur["act"]:
            cur["act"].append(a)
    if extra.get("why") and not cur["why"]:
        cur["why"] = _why(extra["why"])


def _state_outcome(ret: Mapping[str, Any]) -> str:
    if ret.get("result") is False:
        return "skipped" if str(ret.get("comment") or "").startswith(REQUISITE) else "failed"
    return "changed" if ret.get("changes") else "unchanged"


def _platform(ret: Mapping[str, Any], out: dict[str, dict]) -> None:
    changes = ret.get("changes") or {}
    comment = str(ret.get("comment") or "")
    for key, v in changes.items():
        action = v.get("action") if isinstance(v, Mapping) else None
        comp = "objects/" + key.split(":", 1)[1] if key.startswith("objects:") else f"release/{key}"
        _merge(out, comp, "changed", act=[action or "apply"])
    for key, msg in _RELEASE_LINE.findall(comment):
        comp = "objects/" + key.split(":", 1)[1] if key.startswith("objects:") else f"release/{key}"
        blocked = msg.startswith("not converged: it needs") or "its secrets failed" in msg
        _merge(out, comp, "skipped" if blocked else "failed", rb="rolled back" in msg, why=msg)
    if ret.get("result") is False and not _RELEASE_LINE.search(comment):
        _merge(out, "platform", _state_outcome(ret), why=comment)


def _services(ret: Mapping[str, Any], out: dict[str, dict]) -> None:
    for name in ret.get("changes") or {}:
        comp = "onboarding" if name == "(shared)" else f"onboarding/{name}"
        _merge(out, comp, "changed", act=["onboard"])
    comment = str(ret.get("comment") or "")
    for name, part, why in _SERVICE_LINE.findall(comment):
        _merge(out, f"onboarding/{name}", "failed", why=f"{part}: {why}")
    if ret.get("result") is False and not _SERVICE_LINE.search(comment):
        _merge(out, "onboarding", _state_outcome(ret), why=comment)


def _minion_states(stage: str, rets: Any, out: dict[str, dict]) -> None:
    """One minion's state returns of one stage into component outcomes."""
    if not isinstance(rets, Mapping):  # a render error: a list of strings
        _merge(out, STAGE_COMPONENT.get(stage, stage), "failed", why=rets)
        return
    for ret in rets.values():
        if not isinstance(ret, Mapping):
            continue
        sid = str(ret.get("__id__") or "")
        if sid.endswith("-valid"):
            if ret.get("result") is False:
                _merge(out, STAGE_COMPONENT.get(stage, stage), "failed", why=ret.get("comment"))
            continue
        if stage == "platform" and sid == "palplat-platform-releases":
            _platform(ret, out)
        elif stage == "service" and sid == "palplat-services":
            _services(ret, out)
        else:
            comp = "helm" if sid == "palplat-platform-helm" else STAGE_COMPONENT.get(stage, stage)
            o = _state_outcome(ret)
            if o in ("changed", "failed"):
                _merge(out, comp, o, act=["apply"] if o == "changed" else [], why=(
                    ret.get("comment") if o == "failed" else None))  # fmt: skip


def _clock(start: Any, duration: Any, now: float) -> float | None:
    """A state's end from Salt's ``start_time`` (local time of day) and ``duration``
    (ms): today's date, or yesterday's when that lies in the future."""
    try:
        h, m, s = str(start).split(":")
        base = dt.datetime.fromtimestamp(now).replace(
            hour=int(h), minute=int(m), second=0, microsecond=0
        )
        begin = base.timestamp() + float(s)
    except (ValueError, TypeError):
        return None
    if begin > now + 60:
        begin -= 86400
    return begin + float(duration or 0) / 1000.0


def from_orchestration(
    running: Mapping[str, Any],
    *,
    now: float | None = None,
    revision: str | None = None,
    commits: Iterable[Any] | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """The ``run`` record and one ``apply`` record per platform component that changed,
    failed or was skipped, from the returns of a ``palplat.full`` orchestration (the
    orchestrate's running dict: ``{state key: saltmod return}``)."""
    now = time.time() if now is None else now
    stages: dict[str, str] = {}
    comps: dict[str, dict] = {}
    ends: dict[str, float] = {}
    jids: list[str] = []
    first: float | None = None
    for ret in sorted(running.values(), key=lambda r: r.get("__run_num__", 0)):
        sid = str(ret.get("__id__") or "")
        if not sid.startswith("palplat-") or sid == "palplat-dora":
            continue
        stage = sid[len("palplat-") :]
        if stage.startswith("k3s-server-") or stage == "k3s-agents":
            stage = "k3s"  # a wave of the k3s stage (several nodes: full.sls)
        if ret.get("__jid__"):
            jids.append(str(ret["__jid__"]))
        end = _clock(ret.get("start_time"), ret.get("duration"), now) or now
        begin = end - float(ret.get("duration") or 0) / 1000.0
        first = begin if first is None else min(first, begin)
        comment = str(ret.get("comment") or "")
        per_stage: dict[str, dict] = {}
        minions = ((ret.get("changes") or {}).get("ret")) or {}
        if stage == "firewall-confirm":
            if ret.get("result") is False and not comment.startswith(REQUISITE):
                # a runner (palplat_nftables.confirm): its answer is changes.return
                said = minions or (ret.get("changes") or {}).get("return") or {}
                text = comment + " " + json.dumps(said, default=str)
                _merge(per_stage, "firewall", "failed", rb="rolled back" in text, why=text)
        elif stage != "validate" and isinstance(minions, Mapping):
            for rets in minions.values():
                _minion_states(stage, rets, per_stage)
        if ret.get("result") is False:
            outcome = "skipped" if comment.startswith(REQUISITE) else "failed"
            if outcome == "failed" and stage not in ("validate", "firewall-confirm") \
                    and not per_stage:  # fmt: skip
                _merge(per_stage, STAGE_COMPONENT.get(stage, stage), "failed", why=comment)
        else:
            outcome = "changed" if per_stage else "ok"
        stages[stage] = max(stages.get(stage, "ok"), outcome, key=_STAGE_RANK.index)
        for comp, o in per_stage.items():
            _merge(comps, comp, o["o"], rb=o["rb"], act=o["act"], why=o["why"])
            ends[comp] = max(ends.get(comp, 0.0), end)
    rid = run_id or (min(jids) if jids else f"{now:.3f}")
    ok = not any(v == "failed" for v in stages.values())
    records: list[dict[str, Any]] = [
        {
            "id": f"run:{rid}",
            "k": "run",
            "t": round(now, 3),
            "run": rid,
            "start": round(first if first is not None else now, 3),
            "rev": revision or None,
            "commits": commits_of(commits),
            "ok": ok,
            "stages": stages,
        }
    ]
    for comp, o in sorted(comps.items()):
        if o["o"] == "unchanged":
            continue
        rec = {
            "id": f"apply:{rid}:{comp}",
            "k": "apply",
            "t": round(ends.get(comp, now), 3),
            "run": rid,
            "c": comp,
            "o": o["o"],
            "rb": o["rb"],
            "act": o["act"],
            "rev": revision or None,
        }
        if o["why"]:
            rec["why"] = o["why"]
        records.append(rec)
    return records


_STAGE_RANK = ["ok", "changed", "skipped", "failed"]  # a stage in waves: the worst wave


def component_stage(comp: str) -> str:
    """The orchestration stage a platform component belongs to."""
    if comp.startswith(("release/", "objects/")) or comp in ("helm", "platform"):
        return "platform"
    if comp.startswith("onboarding"):
        return "service"
    return comp


# ------------------------------------------------------------------------------ marks


def mark(scope: str, component: str, when: float, why: str = "") -> dict[str, Any]:
    return {
        "id": f"mark:{scope}:{component}:{when:.3f}",
        "k": "mark",
        "t": round(when, 3),
        "scope": scope,
        "c": component,
        "why": _why(why) or "marked failed",
    }


# --------------------------------------------------------------------------- Argo CD

UNHEALTHY = ("Degraded", "Missing")


def argo_observation(app: Mapping[str, Any], now: float, service: str | None = None) -> dict:
    """What one Application shows now, as an ``argo`` record. Its id is the content's
    digest, so an unchanged Healthy status seen again is the same record; while not
    Healthy, one record per minute (how long it stayed Degraded matters)."""
    st = app.get("status") or {}
    op = st.get("operationState") or {}
    sync_rev = ((op.get("syncResult") or {}).get("revision")) or (
        ((op.get("operation") or {}).get("sync") or {}).get("revision")
    )
    health = st.get("health") or {}
    body = {
        "c": service or (app.get("metadata") or {}).get("name"),
        "op": [ts(op.get("startedAt")), ts(op.get("finishedAt")), op.get("phase"), sync_rev]
        if op
        else None,
        "img": sorted((st.get("summary") or {}).get("images") or []),
        "h": health.get("status") or "Unknown",
        "hs": ts(health.get("lastTransitionTime")),
        "hist": [
            [h.get("id"), h.get("revision"), ts(h.get("deployedAt")), ts(h.get("deployStartedAt"))]
            for h in (st.get("history") or [])
        ],
    }
    key = dict(body)
    if body["h"] != "Healthy":
        key["minute"] = int(now // 60)
    return {"id": f"argo:{body['c']}:{digest(key)}", "k": "argo", "t": round(now, 3), **body}


# ------------------------------------------------------------------------ Woodpecker

FINISHED = ("success", "failure", "error", "killed")


def pipeline_record(service: str, p: Mapping[str, Any]) -> dict[str, Any] | None:
    """A finished Woodpecker pipeline as a ``pipe`` record (None while it runs)."""
    status = str(p.get("status") or "")
    if status not in FINISHED or not p.get("finished"):
        return None
    return {
        "id": f"pipe:{service}:{int(p.get('number') or 0)}",
        "k": "pipe",
        "t": float(p["finished"]),
        "c": service,
        "n": int(p.get("number") or 0),
        "sha": str(p.get("commit") or ""),
        "ct": ts(p.get("timestamp")) or ts(p.get("created")),
        "cr": ts(p.get("created")),
        "st": ts(p.get("started")),
        "fi": ts(p.get("finished")),
        "s": status,
        "ev": str(p.get("event") or ""),
        "br": str(p.get("branch") or ""),
    }
