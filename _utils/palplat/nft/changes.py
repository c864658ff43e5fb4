"""The rule-level diff between the live and the desired table, keyed by rule name (the
comment), and its one-line summary."""

from __future__ import annotations

from typing import Any

from palplat.nft.intervals import addr_elements
from palplat.nft.ruleset import FAMILY, Table

SHOW = 50


def diff(live: Table | None, want: Table) -> dict[str, Any]:
    """Rule-level diff keyed by rule name (the comment), plus sets and chain policy."""
    if live is not None and live.key() == want.key():
        return {}
    changes: dict[str, Any] = {}
    if live is None:
        changes["table"] = {"old": None, "new": f"{FAMILY} {want.name}"}
    old_g = live.groups() if live else {}
    new_g = want.groups()
    rules: dict[str, Any] = {}
    for name in list(new_g) + [n for n in old_g if n not in new_g]:
        if old_g.get(name) != new_g.get(name):
            rules[name] = {
                "old": [r.text() for r in old_g[name]] if name in old_g else None,
                "new": [r.text() for r in new_g[name]] if name in new_g else None,
            }
    if rules:
        changes["rules"] = rules
    old_sets = live.sets if live else {}
    sets: dict[str, Any] = {}
    for name in sorted(set(old_sets) | set(want.sets)):
        o, n = old_sets.get(name), want.sets.get(name)
        if o is not None and n is not None and (o.version, o.elements) == (n.version, n.elements):
            continue
        oe = set(addr_elements(o.version, o.elements)) if o else set()
        ne = set(addr_elements(n.version, n.elements)) if n else set()
        entry: dict[str, Any] = {
            "old": None if o is None else f"{len(oe)} elements",
            "new": None if n is None else f"{len(ne)} elements",
        }
        if ne - oe:
            entry["added"] = sorted(ne - oe)[:SHOW]
        if oe - ne:
            entry["removed"] = sorted(oe - ne)[:SHOW]
        sets[name] = entry
    if sets:
        changes["sets"] = sets
    if live is not None and (live.chain, live.policy) != (want.chain, want.policy):
        changes["chain"] = {
            "old": f"{'/'.join(map(str, live.chain))} policy {live.policy}",
            "new": f"{'/'.join(map(str, want.chain))} policy {want.policy}",
        }
    if live is not None and live.foreign:
        changes["foreign"] = {"old": list(live.foreign), "new": None}
    if not changes:  # same rules, other order
        changes["order"] = {
            "old": [r.name for r in live.rules] if live else None,
            "new": [r.name for r in want.rules],
        }
    return changes


def summary(changes: dict[str, Any]) -> str:
    rules = changes.get("rules", {})
    added = [n for n, c in rules.items() if c["old"] is None]
    removed = [n for n, c in rules.items() if c["new"] is None]
    changed = [n for n, c in rules.items() if c["old"] is not None and c["new"] is not None]
    out = []
    for word, names in (("add", added), ("remove", removed), ("change", changed)):
        if names:
            shown = ", ".join(names[:10]) + (
                f" and {len(names) - 10} more" if len(names) > 10 else ""
            )
            out.append(f"{word} rules {shown}")
    if changes.get("sets"):
        out.append("update sets " + ", ".join(changes["sets"]))
    if changes.get("chain"):
        out.append(f"set {changes['chain']['new']}")
    if changes.get("foreign"):
        out.append("drop objects palplat does not write")
    if changes.get("order"):
        out.append("restore rule order")
    return "; ".join(out)
