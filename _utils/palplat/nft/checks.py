"""Cross checks of ``palplat:firewall`` (run by :func:`palplat.config.cross_check` with
every other check, before anything changes):

- rule names are unique (they key the diff and the rule comments);
- '@set' sources name a set under ``firewall:sets`` (or one palplat fills: ``@cluster``,
  ``@pods``, with the k3s profile), and those built-in names are not redefined;
- etcd (tcp 2379-2380) and flannel's VXLAN (udp 8472) are never open to everyone: etcd
  holds the whole cluster, and anyone who reaches 8472 injects packets into the pod
  network (VXLAN has no authentication). Refused unless ``force: true``.
"""

from __future__ import annotations

import difflib

from palplat import validation
from palplat.errors import PillarProblem
from palplat.nft.build import BUILTIN_SETS, builtin_sets, desired
from palplat.nft.intervals import FULL, covers, split_cidrs
from palplat.nft.policy import reach

P = "palplat:firewall"
# (proto, port, what) that must never be reachable from everyone
NEVER_OPEN = (
    ("tcp", 2379, "etcd (tcp 2379-2380)"),
    ("tcp", 2380, "etcd (tcp 2379-2380)"),
    ("udp", 8472, "flannel VXLAN (udp 8472)"),
)


def check(cfg) -> list:
    fw = cfg.firewall
    out: list[PillarProblem] = []
    builtin = builtin_sets(cfg)
    known = set(fw.sets) | set(builtin)
    for name in fw.sets:
        if name in BUILTIN_SETS and builtin:
            out.append(
                PillarProblem(
                    f"{P}:sets:{name}",
                    f"'{name}' is a set palplat fills itself with the k3s profile "
                    "(@cluster: firewall:cluster_nodes and k3s:server_url; @pods: "
                    "k3s:config:cluster-cidr); rename your set",
                )
            )
    seen: dict[str, int] = {}
    for i, rule in enumerate(fw.allow):
        base = f"{P}:allow:{i}"
        if rule.name in seen:
            out.append(
                PillarProblem(
                    f"{base}:name",
                    f"duplicate rule name: allow:{seen[rule.name]} already uses it; rule names "
                    "must be unique (they name the rules in diffs), rename one of them",
                    validation.found(rule.name),
                )
            )
        seen.setdefault(rule.name, i)
        for j, src in enumerate(rule.from_):
            if src.startswith("@") and src[1:] not in known:
                guess = difflib.get_close_matches(src[1:], sorted(known), n=1)
                hint = f"; did you mean '@{guess[0]}'?" if guess else ""
                extra = (
                    " (@cluster and @pods exist with the k3s profile)"
                    if src[1:] in BUILTIN_SETS
                    else ""
                )
                out.append(
                    PillarProblem(
                        f"{base}:from:{j}",
                        f"names a set that is not defined{hint} Define it under "
                        f"palplat:firewall:sets{extra}",
                        validation.found(src),
                    )
                )
    if not out and fw.enabled:
        out.extend(_open_to_everyone(cfg))
    return out


def _everyone(cfg, rule) -> bool:
    """A rule with no interface that accepts every source of IPv4 or IPv6."""
    if rule.iif is not None:
        return False
    if not rule.from_:
        return True
    cidrs = [s for s in rule.from_ if not s.startswith("@")]
    sets = {**builtin_sets(cfg), **cfg.firewall.sets}
    for s in rule.from_:
        if s.startswith("@"):
            cidrs += sets.get(s[1:], [])
    got = split_cidrs(cidrs)
    return any(covers(got[v], FULL[v]) for v in (4, 6))


def _open_to_everyone(cfg) -> list[PillarProblem]:
    fw = cfg.firewall
    if fw.force:
        return []
    out: list[PillarProblem] = []
    table = desired(cfg)
    reported: set[str] = set()
    for proto, port, what in NEVER_OPEN:
        if what in reported:
            continue
        culprit = None
        for i, rule in enumerate(fw.allow):
            if rule.proto == proto and _covers_port(rule.ports, port) and _everyone(cfg, rule):
                culprit = (f"{P}:allow:{i}", f"rule '{rule.name}' opens")
                break
        if culprit is None and cfg.k3s.mode == "install":
            got = reach(table, proto, port)["*"]
            if any(covers(got[v], FULL[v]) for v in (4, 6)):
                culprit = (
                    (f"{P}:default_policy", "default_policy: accept opens")
                    if fw.default_policy == "accept"
                    else (P, "this ruleset opens")
                )
        if culprit is None:
            continue
        reported.add(what)
        out.append(
            PillarProblem(
                culprit[0],
                f"{culprit[1]} {what} to everyone: "
                + (
                    "etcd holds the whole cluster's state"
                    if "etcd" in what
                    else "VXLAN has no authentication, whoever reaches it injects packets "
                    "into the pod network"
                )
                + "; allow it only from the cluster's nodes (from: ['@cluster'], filled from "
                "palplat:firewall:cluster_nodes) or a trusted interface, or set "
                "palplat:firewall:force: true if you really mean it",
            )
        )
    return out


def _covers_port(ports, port: int) -> bool:
    for p in ports:
        if isinstance(p, int) and p == port:
            return True
        if isinstance(p, str):
            lo, hi = (int(x) for x in p.split("-"))
            if lo <= port <= hi:
                return True
    return False
