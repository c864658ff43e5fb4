"""Platform status from what the minions report: nodes, firewall, GPUs, releases,
services; healthy, degraded or error.

Two multi-function jobs per run: :data:`NODE_CALLS` on every minion (what only the node
knows: its k3s, its firewall, its GPUs), then :data:`CLUSTER_CALLS` only on the minions
that hold a cluster (``holds_cluster`` in the first answers): the Node list, the Helm
releases and their no-op plan, the services. No other minion asks the API or plans a
release; a GPU node's ``nvidia.com/gpu`` allocatable is read off the holder's Node list.

Input: ``{minion: {function: return}}``. A function a minion does not have (an older
palplat, a stage not used) is left out of the report; a minion that did not answer is an
error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from palplat import redact
from palplat.report.markdown import table, text_table
from palplat.report.plan import CHANGES, ERRORS, OK

# (function, args) the status runner calls on every targeted minion in one job
NODE_CALLS: list[tuple[str, list]] = [
    ("palplat_k3s.status", []),
    ("palplat_nftables.pending", []),
    ("palplat_nftables.plan", []),
    ("palplat_nvidia.status", [{"cluster": False, "__kwarg__": True}]),
]
# ... and then on the minions that hold a cluster only
CLUSTER_CALLS: list[tuple[str, list]] = [
    ("palplat_kube.list", ["v1", "Node"]),
    ("palplat_helm.releases", []),
    ("palplat_helm.plan", []),
    ("palplat_service.status", []),
]
CALLS = NODE_CALLS + CLUSTER_CALLS
GPU_RESOURCE = "nvidia.com/gpu"


def holders(answers: Mapping[str, Any]) -> list[str]:
    """The minions whose first answers say they hold a cluster."""
    out = []
    for mid, got in sorted(answers.items()):
        k3s = got.get("palplat_k3s.status") if isinstance(got, Mapping) else None
        if isinstance(k3s, Mapping) and k3s.get("holds_cluster") is not False:
            out.append(mid)
    return out


def _failed(ret: Any) -> str | None:
    """The error text of a function that failed or does not exist, else None."""
    if isinstance(ret, str) and (
        "is not available" in ret
        or ret.startswith(("ERROR", "Passed invalid", "Traceback"))
        or "Exception occurred" in ret
    ):
        return ret.strip().splitlines()[0]
    return None


def _missing(ret: Any) -> bool:
    return isinstance(ret, str) and "is not available" in ret


def _ready(node: Mapping[str, Any]) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


class Status:
    def __init__(self) -> None:
        self.sections: dict[str, list[dict]] = {
            "nodes": [],
            "firewall": [],
            "gpu": [],
            "releases": [],
            "services": [],
        }
        self.errors: list[str] = []
        self.degraded: list[str] = []

    @property
    def exit_code(self) -> int:
        if self.errors:
            return ERRORS
        return CHANGES if self.degraded else OK

    def as_dict(self) -> dict[str, Any]:
        state = {OK: "healthy", CHANGES: "degraded", ERRORS: "error"}[self.exit_code]
        return redact.mask(
            {
                "state": state,
                "exit_code": self.exit_code,
                "errors": self.errors,
                "degraded": self.degraded,
                **self.sections,
            }
        )


def _gpu_allocatable(answers: Mapping[str, Any]) -> dict[str, int | None]:
    """``{node: nvidia.com/gpu allocatable}`` from the holders' Node lists."""
    out: dict[str, int | None] = {}
    for got in answers.values():
        nodes = got.get("palplat_kube.list") if isinstance(got, Mapping) else None
        for n in nodes if isinstance(nodes, list) else []:
            v = ((n.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE)
            try:
                out[(n.get("metadata") or {}).get("name")] = int(str(v)) if v else None
            except ValueError:
                out[(n.get("metadata") or {}).get("name")] = None
    return out


def build(answers: Mapping[str, Any], expected: list[str]) -> Status:
    st = Status()
    seen_nodes: set[str] = set()
    gpu_alloc = _gpu_allocatable(answers)
    for minion in sorted(set(expected) | set(answers)):
        got = answers.get(minion)
        if not isinstance(got, Mapping):
            st.errors.append(f"{minion}: did not answer")
            continue
        _k3s(st, minion, got, seen_nodes)
        _firewall(st, minion, got)
        _gpu(st, minion, got, gpu_alloc)
        k3s = got.get("palplat_k3s.status")
        if isinstance(k3s, Mapping) and k3s.get("holds_cluster") is False:
            continue  # an agent or a further server: the cluster-wide rows come from the first
        _releases(st, minion, got)
        _optional(st, minion, got, "palplat_service.status", "services")
    return st


def _k3s(st: Status, minion: str, got: Mapping, seen: set[str]) -> None:
    s = got.get("palplat_k3s.status")
    err = _failed(s)
    if err or not isinstance(s, Mapping):
        st.errors.append(f"{minion}: palplat_k3s.status: {err or s}")
        return
    nodes = got.get("palplat_kube.list")
    if isinstance(nodes, list):
        for n in nodes:
            name = (n.get("metadata") or {}).get("name")
            if name in seen:
                continue
            seen.add(name)
            info = (n.get("status") or {}).get("nodeInfo") or {}
            labels = (n.get("metadata") or {}).get("labels") or {}
            role = "server" if "node-role.kubernetes.io/control-plane" in labels else "agent"
            ready = _ready(n)
            st.sections["nodes"].append(
                {"node": name, "role": role, "version": info.get("kubeletVersion"), "ready": ready}
            )
            if not ready:
                st.degraded.append(f"node {name} is not Ready")
    if s.get("mode") == "install" and s.get("installed") != s.get("desired"):
        st.degraded.append(
            f"{minion}: k3s {s.get('installed')} installed, pillar wants {s.get('desired')}"
        )
    if s.get("mode") == "install" and s.get("active") is False:
        st.degraded.append(f"{minion}: the k3s unit is not active")


def _firewall(st: Status, minion: str, got: Mapping) -> None:
    plan, pending = got.get("palplat_nftables.plan"), got.get("palplat_nftables.pending")
    if _missing(plan):
        return
    err = _failed(plan) or _failed(pending)
    if err:
        st.errors.append(f"{minion}: firewall: {err}")
        return
    drift = bool((plan or {}).get("changes"))
    row = {"minion": minion, "applied": not drift, "pending confirmation": bool(pending)}
    st.sections["firewall"].append(row)
    if drift:
        st.degraded.append(f"{minion}: the firewall differs from the pillar")
    if pending:
        st.degraded.append(f"{minion}: a firewall change waits for palplat_nftables.confirm")


def _releases(st: Status, minion: str, got: Mapping) -> None:
    listed, plan = got.get("palplat_helm.releases"), got.get("palplat_helm.plan")
    if _missing(listed) or (isinstance(listed, str) and "kubeconfig" in listed):
        return
    err = _failed(listed) or _failed(plan)
    if err:
        st.errors.append(f"{minion}: releases: {err}")
        return
    changes = (plan or {}).get("changes") or {}
    errors = (plan or {}).get("errors") or {}
    by_name = {r.get("name"): r for r in listed or []}
    for key in sorted(set(changes) | set(errors) | set((plan or {}).get("unchanged") or ())):
        r = by_name.get(key, {})
        drift = changes.get(key, {}).get("action", "none") if key in changes else "none"
        row = {
            "release": key,
            "chart": r.get("chart"),
            "revision": r.get("revision"),
            "status": r.get("status", "not installed"),
            "drift": errors.get(key) or drift,
        }
        st.sections["releases"].append(row)
        if key in errors or drift != "none" or row["status"] not in ("deployed",):
            st.degraded.append(f"release {key}: {row['status']}, {row['drift']}")


def _split(alloc: int | None, n: int) -> int | None:
    """A node's allocatable per GPU (time-slicing: replicas each) when it divides."""
    if alloc is None or not n:
        return alloc
    return alloc // n if alloc % n == 0 else alloc


def _gpu(st: Status, minion: str, got: Mapping, alloc: Mapping[str, int | None]) -> None:
    """One row per NVIDIA device the node has (none on a node without one); degraded when
    the node has devices and the cluster sees no ``nvidia.com/gpu`` allocatable. The
    allocatable comes from the holder's Node list where the node did not ask the API."""
    ret = got.get("palplat_nvidia.status")
    if ret is None or _missing(ret):
        return
    err = _failed(ret)
    if err or not isinstance(ret, Mapping):
        st.errors.append(f"{minion}: palplat_nvidia.status: {err or ret}")
        return
    gpus = ret.get("gpus") or []
    if gpus and ret.get("node_allocatable") is None and ret.get("node") in alloc:
        ret = {**ret, "node_allocatable": alloc[ret.get("node")]}
        per = _split(ret["node_allocatable"], len(gpus))
        gpus = [{**g, "allocatable": per} for g in gpus]
    elif gpus and ret.get("node_allocatable") is None and alloc == {} and not ret.get("cluster"):
        ret = {**ret, "cluster": "no Node list from a minion that holds the cluster"}
    for g in gpus:
        st.sections["gpu"].append(
            {
                "node": ret.get("node"),
                "bus id": g.get("bus_id"),
                "model": g.get("model"),
                "memory": g.get("memory"),
                "driver": g.get("driver"),
                "allocatable": g.get("allocatable"),
            }
        )
    if gpus and not ret.get("node_allocatable"):
        why = ret.get("cluster") or "nvidia.com/gpu allocatable is 0"
        st.degraded.append(f"gpu: node {ret.get('node')}: {len(gpus)} device(s), {why}")


def _optional(st: Status, minion: str, got: Mapping, fun: str, section: str) -> None:
    ret = got.get(fun)
    if ret is None or _missing(ret):
        return
    err = _failed(ret)
    if err:
        st.errors.append(f"{minion}: {fun}: {err}")
        return
    rows = (
        ret
        if isinstance(ret, list)
        else (
            ret.get("items")
            if isinstance(ret, Mapping) and isinstance(ret.get("items"), list)
            else [ret]
        )
    )
    for row in rows:
        row = dict(row) if isinstance(row, Mapping) else {"value": row}
        row.setdefault("minion", minion)
        st.sections[section].append(row)
        if row.get("healthy") is False or row.get("ok") is False:
            why = row.get("problems") or row.get("state")
            who = row.get("name") or row.get("service") or minion
            st.degraded.append(f"{section}: {who}" + (f": {why}" if why else ""))


def _rows(rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    headers: list[str] = []
    for r in rows:
        headers += [k for k in r if k not in headers and not isinstance(r[k], (dict, list))]
    return headers, [[r.get(h, "") for h in headers] for r in rows]


def render(st: Status, markdown: bool = False) -> str:
    d = st.as_dict()
    out = [f"palplat status: {d['state']}"]
    for section in ("nodes", "firewall", "gpu", "releases", "services"):
        rows = d[section]
        if not rows:
            continue
        headers, body = _rows(rows)
        out += ["", f"{'### ' if markdown else ''}{section}", ""]
        out += table(headers, body) if markdown else [text_table(headers, body)]
    for title, lines in (("errors", d["errors"]), ("degraded", d["degraded"])):
        if lines:
            out += ["", f"{'### ' if markdown else ''}{title}", ""] + [f"- {x}" for x in lines]
    return "\n".join(out) + "\n"
