"""The pull-request plan as data: what the full orchestration would change, per stage,
item and minion, built from ``state.sls palplat test=True`` returns.

A palplat state may say what its change is made of with an extra return key
``palplat: {"add": [...], "change": [...], "remove": [...], "orphaned": [...]}`` (see
:func:`palplat.loaderkit.state_ret`); for any other state (Salt's own ``pkg.installed``,
...) the kinds are read off the ``changes`` dict: ``{"old": None, ...}`` is an add,
``{"new": None, ...}`` a remove, a Helm ``action`` maps to its kind, anything else (or a
pending state with no changes) is a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from palplat import redact

KINDS = ("add", "change", "remove", "orphaned")
STAGES = ("validate", "host", "firewall", "k3s-upgrade", "k3s", "gpu", "platform", "service")
_ACTIONS = {
    "install": "add",
    "create": "add",
    "upgrade": "change",
    "drift": "change",
    "patch": "change",
    "uninstall": "remove",
    "delete": "remove",
}

# exit codes of `salt-run palplat.plan` (and palplat.status)
OK, ERRORS, CHANGES = 0, 1, 2


@dataclass
class Item:
    minion: str
    stage: str
    item: str  # the state ID
    result: bool | None
    comment: str
    changes: dict = field(default_factory=dict)
    kinds: dict[str, list[str]] = field(default_factory=dict)  # add/change/... -> names

    @property
    def counts(self) -> dict[str, int]:
        return {k: len(self.kinds.get(k, ())) for k in KINDS}

    @property
    def changed(self) -> bool:
        return any(self.kinds.get(k) for k in ("add", "change", "remove"))


@dataclass
class Report:
    minions: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    graph: dict[str, dict] = field(default_factory=dict)  # release -> {needs, enabled}
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def changed_items(self) -> list[Item]:
        return [i for i in self.items if i.changed or i.kinds.get("orphaned")]

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for i in self.items:
            for k, n in i.counts.items():
                out[k] += n
        return out

    @property
    def exit_code(self) -> int:
        if self.errors:
            return ERRORS
        return CHANGES if any(i.changed for i in self.items) else OK

    def changed_releases(self) -> set[str]:
        out: set[str] = set()
        for i in self.items:
            if i.stage == "platform" and i.changed:
                out.update(n for k in ("add", "change", "remove") for n in i.kinds.get(k, ()))
        return out

    def as_dict(self) -> dict[str, Any]:
        return redact.mask(
            {
                "exit_code": self.exit_code,
                "summary": self.totals(),
                "errors": list(self.errors),
                "minions": list(self.minions),
                "items": [
                    {**asdict(i), "counts": i.counts} for i in self.items if i.kinds or i.changes
                ],
                "releases": self.graph,
                "timings": self.timings,
            }
        )


def stage_of(sls: str | None) -> str:
    """``palplat.firewall`` -> ``firewall``."""
    if not sls:
        return "?"
    return sls.split(".", 1)[1] if sls.startswith("palplat.") else sls


def _leaf(v: Any) -> bool:
    return isinstance(v, Mapping) and ("old" in v or "new" in v)


def kinds_of(changes: Mapping[str, Any], result: bool | None, name: str) -> dict[str, list]:
    """What a change is made of, from a state's ``changes`` (see module doc)."""
    out: dict[str, list] = {}

    def put(kind: str, what: str) -> None:
        out.setdefault(kind, []).append(what)

    for key, v in (changes or {}).items():
        if isinstance(v, Mapping) and isinstance(v.get("action"), str):
            put(_ACTIONS.get(v["action"], "change"), str(key))
        elif _leaf(v):
            put(
                "add" if v.get("old") is None else "remove" if v.get("new") is None else "change",
                str(key),
            )
        elif isinstance(v, Mapping) and v and all(_leaf(x) for x in v.values()):
            for sub, x in v.items():
                kind = (
                    "add"
                    if x.get("old") is None
                    else "remove"
                    if x.get("new") is None
                    else "change"
                )
                put(kind, f"{key}:{sub}")
        else:
            put("change", str(key))
    if result is None and not out:
        put("change", name)
    return out


def item_from(minion: str, key: str, ret: Mapping[str, Any]) -> Item:
    sid = ret.get("__id__") or (key.split("_|-")[1] if "_|-" in key else key)
    declared = ret.get("palplat")
    result = ret.get("result")
    changes = dict(ret.get("changes") or {})
    if isinstance(declared, Mapping):
        kinds = {k: [str(x) for x in declared.get(k, ())] for k in KINDS if declared.get(k)}
    else:
        kinds = kinds_of(changes, result, str(ret.get("name") or sid))
    return Item(
        minion=minion,
        stage=stage_of(ret.get("__sls__")),
        item=str(sid),
        result=result,
        comment=str(ret.get("comment") or ""),
        changes=changes,
        kinds=kinds,
    )


def add_state_returns(report: Report, minion: str, rets: Any) -> None:
    """Add one minion's ``state.sls`` return: its items, and its failures as errors."""
    if not isinstance(rets, Mapping):
        # a render error comes back as a list of strings
        msgs = rets if isinstance(rets, list) else [rets]
        report.errors.extend(f"{minion}: {redact.mask_text(str(m))}" for m in msgs)
        return
    ordered = sorted(rets.items(), key=lambda kv: kv[1].get("__run_num__", 0))
    for key, ret in ordered:
        item = item_from(minion, key, ret)
        report.items.append(item)
        if item.result is False:
            first = item.comment.strip().splitlines()[0] if item.comment.strip() else "failed"
            report.errors.append(f"{minion}: {item.stage}/{item.item}: {first}")
