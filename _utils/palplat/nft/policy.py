"""Reachability of the management ports: which sources a table lets reach a port
(:func:`reach`), whether a change takes some of that away (:func:`narrows`: the change is
then applied commit-confirmed), and the lock-out guard (:func:`lockout_problems`)."""

from __future__ import annotations

from collections.abc import Iterable

from palplat.errors import PillarProblem
from palplat.nft.intervals import FULL, Interval, Intervals, covers, merge, split_cidrs
from palplat.nft.ruleset import Table


def management_ports(fw, ssh_ports: Iterable[int] | None = None) -> list[int]:
    """SSH (the ports sshd listens on when known, else the pillar's) and the Salt ports."""
    ssh = set(ssh_ports) if ssh_ports else {fw.management.ssh_port}
    return sorted(ssh | set(fw.management.salt_ports))


def reach(t: Table | None, proto: str, port: int) -> dict[str, dict[int, Intervals]]:
    """Sources accepted for a new connection to ``proto``/``port``: interface -> version ->
    intervals (``*``: any interface). No table, or policy accept: everything."""
    if t is None or t.policy == "accept":
        return {"*": dict(FULL)}
    acc: dict[str, dict[int, list[Interval]]] = {}
    for r in t.rules:
        if r.raw is not None:
            continue  # unknown rules are not trusted to open anything
        if r.verdict != "accept" or r.ct is not None or r.l4proto is not None:
            continue
        if r.proto is not None and (r.proto != proto or not covers(r.ports, ((port, port),))):
            continue
        slot = acc.setdefault(r.iif or "*", {4: [], 6: []})
        if r.family is None:
            slot[4].append(FULL[4][0])
            slot[6].append(FULL[6][0])
        elif r.saddr_set is not None:
            s = t.sets.get(r.saddr_set)
            if s is not None and s.version == r.family:
                slot[r.family] += s.elements
        else:
            slot[r.family] += r.saddr or ()
    out = {k: {v: merge(ivs) for v, ivs in d.items()} for k, d in acc.items()}
    out.setdefault("*", {4: (), 6: ()})
    return out


def narrows(old: Table | None, new: Table, ports: Iterable[int]) -> list[int]:
    """Management ports some source could reach before ``new`` and cannot after it."""
    lost = []
    for port in ports:
        a, b = reach(old, "tcp", port), reach(new, "tcp", port)
        for iif in set(a) | {"*"}:
            for ver in (4, 6):
                before = a.get(iif, {}).get(ver, ()) + a["*"][ver]
                after = b.get(iif, {}).get(ver, ()) + b["*"][ver]
                if not covers(after, merge(before)):
                    lost.append(port)
    return sorted(set(lost))


def lockout_problems(fw, t: Table, ssh_ports=None) -> list[PillarProblem]:
    """The management ports must stay open from ``management.allow_from`` (from
    everywhere when it is empty) on any interface, unless ``force``. ``ssh_ports``: the
    :class:`palplat.nft.sshd.SshPorts` sshd really listens on (default: the pillar's)."""
    if fw.force:
        return []
    sources = split_cidrs(fw.management.allow_from) if fw.management.allow_from else dict(FULL)
    where = (
        "from " + ", ".join(fw.management.allow_from)
        if fw.management.allow_from
        else "from everywhere (management:allow_from is empty)"
    )
    ssh = set(ssh_ports.ports) if ssh_ports else {fw.management.ssh_port}
    problems = []
    for port in management_ports(fw, ssh):
        got = reach(t, "tcp", port)["*"]
        if all(covers(got[v], sources[v]) for v in (4, 6) if sources[v]):
            continue
        what = "SSH" if port in ssh else "Salt"
        if port in ssh and port != fw.management.ssh_port:
            problems.append(
                PillarProblem(
                    "palplat:firewall:management:ssh_port",
                    f"is {fw.management.ssh_port}, but sshd listens on {port} "
                    f"({ssh_ports.source}): this ruleset blocks SSH (tcp {port}) {where}, "
                    "which would lock you out of the host; set "
                    f"palplat:firewall:management:ssh_port to {port} (or let the host stage "
                    "manage sshd: palplat:host:ssh), or palplat:firewall:force: true if you "
                    "really mean it",
                    str(fw.management.ssh_port),
                )
            )
            continue
        problems.append(
            PillarProblem(
                "palplat:firewall",
                f"this ruleset blocks {what} (tcp {port}) {where}, which can lock you out "
                "of the host; list the networks you manage it from in "
                "palplat:firewall:management:allow_from (or allow the port with a rule), "
                "or set palplat:firewall:force: true if you really mean it",
            )
        )
    return problems
