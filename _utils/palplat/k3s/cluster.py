"""Several minions, one cluster: the order nodes join in, the etcd members and their
quorum, and removing a node.

- :func:`waves`: which minions run the k3s stage together: the one that holds the
  cluster first, then each further server alone (etcd adds one member at a time), then
  every agent at once (``salt/palplat/full.sls``).
- :func:`node_view`: the few facts of a Node object the runners need (Ready, kubelet
  version, roles, etcd member).
- :func:`members` / :func:`check_removal` / :func:`check_down`: the embedded-etcd
  members (servers labelled ``node-role.kubernetes.io/etcd``, as k3s labels them) and the
  arithmetic of quorum: a cluster of ``n`` members needs ``n // 2 + 1`` healthy ones.
  A member is healthy when its Node is Ready and, where its minion answered, its k3s
  unit is active; a member whose minion did not answer cannot be proven healthy.
- :func:`removal_plan` / :func:`remove`: drain, uninstall k3s on the node, delete its
  Node (k3s removes a deleted server's etcd member), through a ``call`` function like the
  upgrade's (:func:`palplat.k3s.upgrade.execute`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from palplat import redact
from palplat.errors import InputError, PalplatError
from palplat.kube import NotFound

ETCD_LABEL = "node-role.kubernetes.io/etcd"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"


def quorum(n: int) -> int:
    """Healthy members an etcd cluster of ``n`` needs to commit anything."""
    return n // 2 + 1


# ------------------------------------------------------------------------- join order


def waves(statuses: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """``{first, servers, agents}`` from ``{minion: palplat_k3s.status}``; None when a
    minion did not answer (the caller then runs the stage as one, and the upgrade
    plan reports the missing minion)."""
    if any(not isinstance(s, Mapping) for s in statuses.values()):
        return None
    first, servers, agents = [], [], []
    for m, s in sorted(statuses.items()):
        if s.get("mode") != "install" or s.get("holds_cluster"):
            first.append(m)
        elif s.get("role") == "server":
            servers.append(m)
        else:
            agents.append(m)
    return {"first": first, "servers": servers, "agents": agents}


# --------------------------------------------------------------------- nodes, members


def _ready(obj: Mapping[str, Any]) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def node_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the runners need of one Node object (a few hundred bytes per node)."""
    md = obj.get("metadata") or {}
    labels = md.get("labels") or {}
    status = obj.get("status") or {}
    return {
        "name": md.get("name"),
        "ready": _ready(obj),
        "version": (status.get("nodeInfo") or {}).get("kubeletVersion"),
        "server": CONTROL_PLANE_LABEL in labels,
        "etcd": labels.get(ETCD_LABEL) == "true",
        "unschedulable": bool((obj.get("spec") or {}).get("unschedulable")),
        "allocatable": dict(status.get("allocatable") or {}),
    }


@dataclass(frozen=True)
class Member:
    node: str
    healthy: bool
    why: str = ""  # why it is not healthy


def members(nodes: list[Mapping[str, Any]], statuses: Mapping[str, Any] | None = None):
    """The etcd members among ``nodes`` (:func:`node_view` rows), with their health."""
    by_node: dict[str, Any] = {}
    unanswered = set()
    for mid, s in (statuses or {}).items():
        if isinstance(s, Mapping) and s.get("node"):
            by_node[s["node"]] = (mid, s)
        elif not isinstance(s, Mapping):
            unanswered.add(mid)  # its node is not known: k3s names it after the host
    out = []
    for n in nodes:
        if not n.get("etcd"):
            continue
        why = "" if n.get("ready") else "its Node is not Ready"
        mid, s = by_node.get(n["name"], (None, None))
        if not why and s is not None and s.get("active") is False:
            why = f"k3s is not running on {mid}"
        if not why and n["name"] in unanswered:
            why = f"its minion {n['name']} did not answer"
        out.append(Member(n["name"], not why, why))
    return sorted(out, key=lambda m: m.node)


def _names(ms) -> str:
    return ", ".join(m.node for m in ms) or "none"


def check_removal(ms: list[Member], node: str) -> str:
    """Whether etcd keeps quorum when ``node`` leaves for good: the arithmetic, or
    :class:`InputError` with it. Removing a member is itself a change etcd commits: the
    members now need quorum, and those left after it need the quorum of the smaller
    cluster."""
    if node not in {m.node for m in ms}:
        return f"{node} is not an etcd member: quorum is not affected"
    n = len(ms)
    healthy = [m for m in ms if m.healthy]
    after = [m for m in ms if m.node != node]
    after_healthy = [m for m in after if m.healthy]
    down = [m for m in ms if not m.healthy]
    if not after:
        raise InputError(
            f"{node} is the cluster's only etcd member: removing it ends the cluster; refused"
        )
    now_ok = len(healthy) >= quorum(n)
    after_ok = len(after_healthy) >= quorum(len(after))
    sums = (
        f"{n} etcd members now ({len(healthy)} healthy: {_names(healthy)}; quorum "
        f"{n}//2+1 = {quorum(n)}), {len(after)} after removing {node} ({len(after_healthy)} "
        f"healthy: {_names(after_healthy)}; quorum {len(after)}//2+1 = {quorum(len(after))})"
    )
    if now_ok and after_ok:
        return f"quorum holds: {sums}"
    why = "; ".join(f"{m.node}: {m.why}" for m in down)
    raise InputError(
        f"removing server {node} would break etcd quorum: {sums}. Refused; nothing was "
        f"changed. Down: {why or 'none'}. Bring the members that are down back first, or "
        "remove a member that is down instead"
    )


def check_down(ms: list[Member], node: str) -> str:
    """Whether etcd keeps quorum while ``node`` restarts (an upgrade step)."""
    if node not in {m.node for m in ms}:
        return f"{node} is not an etcd member"
    n = len(ms)
    others = [m for m in ms if m.healthy and m.node != node]
    sums = (
        f"{n} etcd members, {len(others)} healthy besides {node} ({_names(others)}); "
        f"quorum {n}//2+1 = {quorum(n)}"
    )
    if len(others) >= quorum(n) or n == 1:
        return f"quorum holds while {node} restarts: {sums}"
    down = "; ".join(f"{m.node}: {m.why}" for m in ms if not m.healthy)
    raise InputError(
        f"restarting {node} now would break etcd quorum: {sums}. Down: {down or 'none'}. "
        "Bring them back first"
    )


# -------------------------------------------------------------------------- removal


class RemovalError(PalplatError):
    def __init__(self, message: str, done: list[dict]):
        self.done = done
        super().__init__(message)


def removal_plan(
    minion: str,
    statuses: Mapping[str, Any],
    nodes: list[Mapping[str, Any]],
    *,
    purge: bool = True,
) -> dict:
    """The steps that take ``minion``'s node out of the cluster, or :class:`InputError`
    saying why not (quorum, the holder, a minion that did not answer)."""
    s = statuses.get(minion)
    if not isinstance(s, Mapping):
        raise InputError(
            f"{minion} did not answer ({redact.mask_text(str(s))}): palplat uninstalls k3s "
            "on the node it removes; bring the minion back (or remove its Node by hand: "
            "kubectl delete node)"
        )
    if s.get("mode") != "install":
        raise InputError(f"{minion}: palplat:k3s:mode is {s.get('mode')}: not palplat's node")
    if s.get("holds_cluster"):
        raise InputError(
            f"{minion} holds the cluster (the first server: the cluster-wide stages run "
            "there, and the others join it); palplat does not remove it"
        )
    helpers = sorted(
        m
        for m, st in statuses.items()
        if isinstance(st, Mapping)
        and m != minion
        and st.get("mode") == "install"
        and st.get("role") == "server"
        and st.get("active") is not False
    )
    holder = [m for m in helpers if statuses[m].get("holds_cluster")]
    if not helpers:
        raise InputError(f"no other k3s server answers: cannot drain {minion}'s node")
    helper = (holder or helpers)[0]
    node = s.get("node")
    known = {n.get("name"): n for n in nodes}
    if node not in known and not s.get("installed"):
        raise InputError(
            f"{minion} is not part of the cluster: k3s is not installed there and no Node "
            f"{node} is registered; nothing to remove"
        )
    quorum_note = None
    if s.get("role") == "server":
        quorum_note = check_removal(members(nodes, statuses), node)
    steps = []
    if node in known:
        steps += [
            {"minion": helper, "action": f"cordon {node}"},
            {"minion": helper, "action": f"drain {node}"},
        ]
    steps.append({"minion": minion, "action": "uninstall k3s" + (" (purge)" if purge else "")})
    if node in known:
        steps.append({"minion": helper, "action": f"delete node {node}"})
    return {
        "minion": minion,
        "node": node,
        "role": s.get("role"),
        "helper": helper,
        "registered": node in known,
        "quorum": quorum_note,
        "purge": purge,
        "drain": dict(s.get("drain") or {}),
        "steps": steps,
    }


def remove(
    the_plan: Mapping[str, Any],
    call: Callable[..., Any],
    *,
    timeout: float = 600,
    progress: Callable[..., Any] | None = None,
) -> list[dict]:
    """Run :func:`removal_plan`'s steps; stops at the first failure (a drain refused
    leaves the node cordoned and k3s on it running)."""
    done: list[dict] = []
    m, h, node = the_plan["minion"], the_plan["helper"], the_plan["node"]

    def do(who: str, action: str, fun: str, *args, **kwargs) -> Any:
        if progress:
            progress("step", f"{who}: {action}", minion=who, action=action)
        try:
            out = call(who, fun, *args, **kwargs)
        except Exception as exc:
            done.append({"minion": who, "action": action, "ok": False})
            raise RemovalError(
                f"removal of {m} stopped: {action} failed: {redact.mask_text(str(exc))}",
                done,
            ) from None
        done.append({"minion": who, "action": action, "ok": True})
        return out

    if the_plan.get("role") == "server":
        do(h, f"check quorum without {node}", "palplat_k3s.quorum", node, "remove")
    if the_plan.get("registered"):
        do(h, f"cordon {node}", "palplat_k3s.cordon", node)
        do(h, f"drain {node}", "palplat_k3s.drain", node, timeout, **(the_plan.get("drain") or {}))
    purge = bool(the_plan.get("purge"))
    do(m, "uninstall k3s", "state.single", "palplat_k3s.absent", "k3s", purge=purge)
    if the_plan.get("registered"):
        do(h, f"delete node {node}", "palplat_k3s.delete_node", node)
    return done


# ------------------------------------------------------------------ API (one server)


def list_nodes(kube) -> list[dict]:
    """Every Node as :func:`node_view` rows (one LIST)."""
    doc = kube.request("GET", "/api/v1/nodes", what="nodes") or {}
    return [node_view(n) for n in doc.get("items") or []]


def delete_node(kube, node: str) -> bool:
    """Delete the Node ``node`` and check it is gone; False when it did not exist."""
    path = f"/api/v1/nodes/{urllib.parse.quote(node, safe='')}"
    try:
        kube.request("DELETE", path, what=f"node {node}")
    except NotFound:
        return False
    try:
        kube.request("GET", path, what=f"node {node}")
    except NotFound:
        return True
    raise PalplatError(
        f"node {node} is still registered after its deletion: is k3s still running there?"
    )
