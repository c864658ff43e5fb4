"""Quorum-safe k3s upgrades across minions: each minion's status, the plan, its execution,
cordon and drain.

:func:`status` is what each minion answers (``palplat_k3s.status``). :func:`plan` orders
the nodes that need a new version: servers one at a time (the cluster-init server first),
then agents. :func:`execute` runs the plan through a ``call`` function (the runner passes
one built on Salt's LocalClient; tests pass a recorder):

- server: apply ``palplat.k3s`` on it (its ``running`` state waits for /readyz and the node
  Ready), then confirm from another server that the node is Ready at the new version
  before the next server starts;
- agent: cordon and drain it (through a server), apply ``palplat.k3s`` on it, wait until
  it is Ready at the new version, uncordon.

The first failure stops everything: later nodes keep their version, a failed agent stays
cordoned, and the result says which step failed.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from palplat import redact
from palplat.errors import InputError, PalplatError, WaitTimeout
from palplat.k3s.install import installed_version, parse_version
from palplat.k3s.layout import holds_the_cluster, node_name, paths, service_manager, unit_name
from palplat.kube import KubeError, NotFound
from palplat.model import PalplatPillar

UPGRADE_PILLAR = "palplat_k3s_upgrade"


# ---------------------------------------------------------------------- minion side


def status(cfg: PalplatPillar) -> dict:
    """What the upgrade runner needs from a minion (no secrets): its :func:`plan` input."""
    k, p = cfg.k3s, paths(cfg)
    sm = service_manager(cfg)
    return {
        "mode": k.mode,
        "role": k.role,
        "cluster_init": bool(k.role == "server" and k.cluster_init and not k.server_url),
        "node": node_name(k),
        "installed": installed_version(p.binary) if k.mode == "install" else None,
        "desired": k.version,
        "active": sm.is_active(unit_name(k)) if k.mode == "install" else None,
        "kubeconfig": str(p.kubeconfig) if k.role == "server" else None,
        "holds_cluster": holds_the_cluster(cfg),
        # what draining this node may delete (palplat:k3s:drain), as kubectl drain's flags
        "drain": {
            "force": k.drain.force,
            "delete_emptydir_data": k.drain.delete_emptydir_data,
        },
    }


# ------------------------------------------------------------------------- the plan


class UpgradeError(PalplatError):
    def __init__(self, message: str, done: list[dict]):
        self.done = done
        super().__init__(message)


def plan(statuses: Mapping[str, Any], node_list: list[Mapping[str, Any]] | None = None) -> dict:
    """``statuses``: ``{minion: palplat_k3s.status() result}``; ``node_list``: the cluster's
    Nodes (``palplat.k3s.cluster.node_view`` rows) where a server could be asked. Returns
    the ordered steps: each node whose binary is not the pinned version, and each node
    whose binary is but whose kubelet reports another version (an upgrade that stopped
    there)."""
    problems = [f"{m}: {s!r}" for m, s in statuses.items() if not isinstance(s, Mapping)]
    if problems:
        raise InputError(
            "every k3s minion must answer before an upgrade (a partial view can break "
            "quorum): " + "; ".join(redact.mask_text(p) for p in problems)
        )
    nodes = {m: s for m, s in statuses.items() if s.get("mode") == "install"}
    servers = [m for m, s in nodes.items() if s.get("role") == "server"]
    if nodes and not servers:
        raise InputError("no k3s server among the targeted minions: cordon/drain needs one")
    for s in nodes.values():
        if s.get("desired"):
            parse_version(s["desired"])

    seen = {n.get("name"): n for n in node_list or []}

    def unfinished(s: Mapping[str, Any]) -> bool:
        # installed, but its kubelet still reports another version: k3s did not come
        # back at the new one (an upgrade that stopped there)
        n = seen.get(s.get("node"))
        return n is not None and bool(n.get("version")) and n.get("version") != s["desired"]

    def needs(m: str) -> bool:
        # a node without k3s yet is a fresh install (palplat.full), not an upgrade
        s = nodes[m]
        if not (s.get("desired") and s.get("installed")):
            return False
        return s["installed"] != s["desired"] or unfinished(s)

    def step(m: str) -> dict:
        s = nodes[m]
        n = seen.get(s.get("node")) or {}
        out = {
            "minion": m,
            "node": s.get("node"),
            "role": s.get("role"),
            "from": n.get("version") or s.get("installed"),
            "to": s.get("desired"),
            **({"drain": dict(s["drain"])} if s.get("drain") else {}),
        }
        if s["installed"] == s["desired"]:
            ready = "" if n.get("ready") else ", not Ready"
            out["why"] = (
                f"{s['desired']} is installed but node {s.get('node')} runs "
                f"{n.get('version')}{ready}: k3s did not come back at the new version"
            )
        return out

    order_servers = sorted(
        (m for m in servers if needs(m)), key=lambda m: (not nodes[m].get("cluster_init"), m)
    )
    order_agents = sorted(m for m, s in nodes.items() if s.get("role") != "server" and needs(m))
    newest_server = max(
        (parse_version(nodes[m]["desired"]) for m in servers if nodes[m].get("desired")),
        default=None,
    )
    for m in order_agents:
        if newest_server and parse_version(nodes[m]["desired"]) > newest_server:
            raise InputError(
                f"{m}: agent version {nodes[m]['desired']} is newer than every server's; "
                "upgrade the servers' palplat:k3s:version first"
            )
    return {
        "steps": [step(m) for m in order_servers + order_agents],
        "unchanged": sorted(m for m in nodes if not needs(m)),
        "servers": sorted(servers),
    }


Call = Callable[..., Any]


def execute(
    the_plan: Mapping[str, Any],
    call: Call,
    *,
    sls: str = "palplat.k3s",
    progress: Callable[..., Any] | None = None,
    timeout: float = 600,
) -> list[dict]:
    """Run ``the_plan``; ``call(minion, fun, *args, **kwargs)`` raises on failure.

    Returns the steps done, each ``{"minion", "action", "ok"}``.
    """
    done: list[dict] = []
    servers = list(the_plan.get("servers") or [])

    def helper(exclude: str) -> str:
        others = [s for s in servers if s != exclude]
        return others[0] if others else exclude

    def do(minion: str, action: str, fun: str, *args, **kwargs) -> Any:
        if progress:
            progress("step", f"{minion}: {action}", minion=minion, action=action)
        try:
            out = call(minion, fun, *args, **kwargs)
        except Exception as exc:
            done.append({"minion": minion, "action": action, "ok": False})
            raise UpgradeError(
                f"upgrade stopped at {minion}: {action} failed: {redact.mask_text(str(exc))}; "
                "nodes after it were not touched",
                done,
            ) from None
        done.append({"minion": minion, "action": action, "ok": True})
        return out

    pillar = {UPGRADE_PILLAR: True}
    for st in the_plan.get("steps") or []:
        m, node, to = st["minion"], st["node"], st["to"]
        if st["role"] == "server":
            h = helper(m)
            if h != m:  # etcd keeps quorum while this server restarts
                do(h, f"check quorum without {node}", "palplat_k3s.quorum", node, "restart")
            do(m, f"apply {sls} ({st['from']} -> {to})", "state.sls", sls, pillar=pillar)
            do(h, f"check node {node} Ready at {to}", "palplat_k3s.node_ready", node, to, timeout)
        else:
            h = helper(m)
            do(h, f"cordon {node}", "palplat_k3s.cordon", node)
            do(h, f"drain {node}", "palplat_k3s.drain", node, timeout, **(st.get("drain") or {}))
            do(m, f"apply {sls} ({st['from']} -> {to})", "state.sls", sls, pillar=pillar)
            do(h, f"check node {node} Ready at {to}", "palplat_k3s.node_ready", node, to, timeout)
            do(h, f"uncordon {node}", "palplat_k3s.uncordon", node)
    return done


# ------------------------------------------------------------------ node operations


def _node_path(node: str) -> str:
    return f"/api/v1/nodes/{urllib.parse.quote(node, safe='')}"


def cordon(kube, node: str, on: bool = True) -> bool:
    """Mark ``node`` (un)schedulable; True when it changed."""
    obj = kube.request("GET", _node_path(node), what=f"node {node}")
    if bool((obj.get("spec") or {}).get("unschedulable")) == on:
        return False
    kube.request(
        "PATCH",
        _node_path(node),
        body={"spec": {"unschedulable": on or None}},
        content_type="application/merge-patch+json",
        what=f"node {node}",
    )
    return True


def _evictable(pod: Mapping[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return False
    if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _unreplicated(pod: Mapping[str, Any]) -> bool:
    """No controller recreates it elsewhere (kubectl drain refuses it without --force)."""
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    return not any(o.get("controller") for o in refs)


def _local_storage(pod: Mapping[str, Any]) -> bool:
    """It keeps data in an emptyDir (kubectl drain: --delete-emptydir-data)."""
    return any("emptyDir" in v for v in (pod.get("spec") or {}).get("volumes") or [])


def drain_refusals(
    pods: list[Mapping[str, Any]], *, force: bool, delete_emptydir_data: bool
) -> list[str]:
    """Why draining these pods would lose something the pillar did not agree to lose, as
    ``kubectl drain`` refuses without ``--force`` / ``--delete-emptydir-data``."""
    bare, local = [], []
    for p in pods:
        key = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        if _unreplicated(p) and not force:
            bare.append(key)
        elif _local_storage(p) and not delete_emptydir_data:
            local.append(key)
    out = []
    if bare:
        out.append(
            f"pods no controller recreates (evicting deletes them for good): {', '.join(bare)}; "
            "allow it with palplat:k3s:drain:force: true (kubectl drain --force)"
        )
    if local:
        out.append(
            f"pods with emptyDir data (lost on eviction): {', '.join(local)}; allow it with "
            "palplat:k3s:drain:delete_emptydir_data: true (kubectl drain --delete-emptydir-data)"
        )
    return out


def drain(
    kube,
    node: str,
    timeout: float = 300,
    progress=None,
    *,
    force: bool = False,
    delete_emptydir_data: bool = False,
) -> list[str]:
    """Cordon ``node`` and evict its pods (not DaemonSet or mirror pods); wait until gone.

    Like ``kubectl drain``: pods no controller recreates (``force``) and pods with emptyDir
    data (``delete_emptydir_data``) are refused unless allowed, before anything is
    evicted (the node is then left as it was). Evictions refused by a PodDisruptionBudget
    (429) are retried until ``timeout``. Returns the evicted pods (``namespace/name``).
    """
    q = [("fieldSelector", f"spec.nodeName={node}")]
    pods = kube.request("GET", "/api/v1/pods", query=q, what=f"pods on {node}") or {}
    targets = [p for p in pods.get("items") or [] if _evictable(p)]
    refused = drain_refusals(targets, force=force, delete_emptydir_data=delete_emptydir_data)
    if refused:
        raise PalplatError(f"drain {node} refused, nothing evicted: " + "; ".join(refused))
    cordon(kube, node, True)
    names = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in targets]
    deadline = time.monotonic() + timeout
    pending = dict.fromkeys(names)
    evicted: set[str] = set()
    while pending:
        for key in list(pending):
            ns, name = key.split("/", 1)
            path = f"/api/v1/namespaces/{ns}/pods/{name}"
            if key not in evicted:
                try:
                    kube.request(
                        "POST",
                        path + "/eviction",
                        body={
                            "apiVersion": "policy/v1",
                            "kind": "Eviction",
                            "metadata": {"name": name, "namespace": ns},
                        },
                        what=f"evict {key}",
                    )
                    evicted.add(key)
                except NotFound:
                    pending.pop(key)
                    continue
                except KubeError as exc:
                    if exc.status == 403 and "being terminated" in str(exc):
                        # its namespace is being deleted, which removes the pod: no
                        # eviction can succeed there, wait for it (as kubectl drain does)
                        evicted.add(key)
                    elif exc.status != 429:
                        raise
                    else:
                        continue
            try:
                kube.request("GET", path, what=key)
            except NotFound:
                pending.pop(key)
        if not pending:
            break
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"drain {node}: still on the node after {timeout:g}s: {', '.join(pending)} "
                "(a PodDisruptionBudget may block eviction); the node stays cordoned",
                {"pending": list(pending)},
            )
        if progress:
            progress("waiting", f"drain {node}: waiting for {', '.join(pending)}")
        time.sleep(0.5)
    return names


def node_ready(kube, node: str, version: str | None = None, timeout: float = 0) -> dict:
    """Wait until ``node`` is Ready (and its kubelet reports ``version``)."""
    deadline = time.monotonic() + timeout
    why = ""
    while True:
        try:
            obj = kube.request("GET", _node_path(node), what=f"node {node}")
            conds = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
            ready = (conds.get("Ready") or {}).get("status") == "True"
            have = ((obj.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
            if ready and (version is None or have == version):
                return {"node": node, "ready": True, "version": have}
            why = f"Ready={(conds.get('Ready') or {}).get('status', 'unknown')}, version {have}"
        except KubeError as exc:
            why = str(exc)
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"node {node} not Ready at {version or 'any version'} after {timeout:g}s ({why})",
                {"node": node, "why": why},
            )
        time.sleep(1)
