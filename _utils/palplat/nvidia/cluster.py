"""The Kubernetes side of a GPU node: its label, the ``nvidia`` RuntimeClass, the device
plugin's pod on it and its ``nvidia.com/gpu`` allocatable.

- The node label ``nvidia.com/gpu.present=true`` is set with a JSON merge patch of that one
  label (never a server-side apply of a Node: that would claim fields the kubelet owns).
- The RuntimeClass ``nvidia`` (handler ``nvidia``): k3s releases since late 2023 create it
  themselves; where it is missing palplat creates it by server-side apply, with palplat's
  ownership labels. An existing one with another handler is an error, not overwritten.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from palplat import kube as kubelib
from palplat.config import GPU_NODE_LABEL, RUNTIME_CLASS
from palplat.errors import PalplatError
from palplat.nvidia.hardware import rooted

RESOURCE = "nvidia.com/gpu"
RUNTIME_CLASS_API = "node.k8s.io/v1"
OWNER = "gpu"
PLUGIN_SELECTOR = "app.kubernetes.io/name=nvidia-device-plugin"


def _node_path(name: str) -> str:
    return f"/api/v1/nodes/{urllib.parse.quote(name)}"


def get_node(kube: kubelib.Kube, name: str) -> dict | None:
    try:
        return kube.request("GET", _node_path(name), what=f"node {name}")
    except kubelib.NotFound:
        return None


def _need_node(kube: kubelib.Kube, name: str) -> dict:
    node = get_node(kube, name)
    if node is None:
        raise PalplatError(
            f"node {name} is not registered in the cluster at {kube.server}: is k3s running "
            "on it, and is palplat:k3s:config:node-name right?"
        )
    return node


def label_changes(kube: kubelib.Kube, name: str) -> dict[str, Any]:
    node = _need_node(kube, name)
    have = ((node.get("metadata") or {}).get("labels") or {}).get(GPU_NODE_LABEL)
    if have == "true":
        return {}
    return {f"label {GPU_NODE_LABEL}": {"old": have, "new": "true", "node": name}}


def label(kube: kubelib.Kube, name: str, dry_run: bool = False) -> dict[str, Any]:
    """Label the node ``nvidia.com/gpu.present=true``; the changes (empty: already so)."""
    changes = label_changes(kube, name)
    if not changes or dry_run:
        return changes
    kube.request(
        "PATCH",
        _node_path(name),
        body={"metadata": {"labels": {GPU_NODE_LABEL: "true"}}},
        content_type="application/merge-patch+json",
        what=f"node {name}",
    )
    if label_changes(kube, name):
        raise PalplatError(f"verify failed: node {name} does not carry {GPU_NODE_LABEL}=true")
    return changes


def runtime_class_manifest() -> dict[str, Any]:
    return {
        "apiVersion": RUNTIME_CLASS_API,
        "kind": "RuntimeClass",
        "metadata": {"name": RUNTIME_CLASS},
        "handler": RUNTIME_CLASS,
    }


def runtime_class(kube: kubelib.Kube) -> dict | None:
    return kube.get(RUNTIME_CLASS_API, "RuntimeClass", RUNTIME_CLASS)


def runtime_class_problem(rc: dict | None) -> str | None:
    if rc is None:
        return f"RuntimeClass {RUNTIME_CLASS} does not exist"
    if rc.get("handler") != RUNTIME_CLASS:
        return (
            f"RuntimeClass {RUNTIME_CLASS} has handler {rc.get('handler')!r}, not "
            f"{RUNTIME_CLASS!r}: pods with runtimeClassName {RUNTIME_CLASS} would not get "
            "the NVIDIA runtime; fix or delete it"
        )
    return None


def ensure_runtime_class(kube: kubelib.Kube, dry_run: bool = False) -> dict[str, Any]:
    """Create the RuntimeClass where k3s did not; the changes (empty: it exists)."""
    rc = runtime_class(kube)
    if rc is not None:
        problem = runtime_class_problem(rc)
        if problem:
            raise PalplatError(problem)
        return {}
    manifest = kubelib.owned(runtime_class_manifest(), OWNER)
    kube.apply(manifest, dry_run=dry_run)
    changes = {f"RuntimeClass/{RUNTIME_CLASS}": {"old": None, "new": f"handler {RUNTIME_CLASS}"}}
    if not dry_run and runtime_class_problem(runtime_class(kube)):
        raise PalplatError(f"verify failed: RuntimeClass {RUNTIME_CLASS} not readable after apply")
    return changes


def allocatable(node: dict | None) -> tuple[int | None, int | None]:
    """(capacity, allocatable) of ``nvidia.com/gpu`` on a node."""
    status = (node or {}).get("status") or {}

    def num(section: str) -> int | None:
        v = (status.get(section) or {}).get(RESOURCE)
        try:
            return int(str(v)) if v is not None else None
        except ValueError:
            return None

    return num("capacity"), num("allocatable")


def _ready(pod: dict) -> bool:
    st = pod.get("status") or {}
    if st.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []
    )


def _last(msg: str, keep: int = 200) -> str:
    """The end of a long error: runtimes wrap the cause last ("... failed to initialize
    NVML: ERROR_LIBRARY_NOT_FOUND")."""
    return msg if len(msg) <= keep else "..." + msg[-keep:]


def container_problems(pod: dict, limit: int = 400) -> str:
    """What holds a pod's containers back, from their status: ``name: Reason: message``
    of each waiting or failed container (the runtime's error lands there, e.g. NVML not
    found), else its last exit."""
    st = pod.get("status") or {}
    out = []
    for c in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        state, last = c.get("state") or {}, c.get("lastState") or {}
        for s_ in (state.get("waiting"), state.get("terminated"), last.get("terminated")):
            if not s_ or (s_.get("reason") in (None, "Completed") and not s_.get("message")):
                continue
            msg = _last(" ".join(str(s_.get("message") or "").split()))
            if s_.get("reason") == "CrashLoopBackOff":  # the back-off says nothing: the exit
                ended = last.get("terminated") or {}
                said = _last(" ".join(str(ended.get("message") or "").split()))
                msg = f"last exit code {ended.get('exitCode')} ({ended.get('reason')})" + (
                    f": {said}" if said else ""
                )
            out.append(f"{c.get('name')}: {s_.get('reason')}" + (f": {msg}" if msg else ""))
            break
    text = "; ".join(out)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def last_warning(kube: kubelib.Kube, pod: dict, limit: int = 400) -> str:
    """The pod's latest Warning event (``reason: message``), e.g. the runtime's error when
    the pod's sandbox cannot be created; '' when there is none or events cannot be read."""
    md = pod.get("metadata") or {}
    try:
        doc = kube.request(
            "GET",
            f"/api/v1/namespaces/{urllib.parse.quote(md.get('namespace') or '')}/events",
            query=[("fieldSelector", f"involvedObject.name={md.get('name')}")],
            what="events",
        )
    except PalplatError:
        return ""
    warnings = [e for e in (doc or {}).get("items") or [] if e.get("type") == "Warning"]
    if not warnings:
        return ""
    e = max(warnings, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    text = f"last event {e.get('reason')}: {' '.join(str(e.get('message') or '').split())}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def log_tail(root: str, pod: dict, lines: int = 3, limit: int = 400) -> str:
    """The last lines the pod's not-ready containers logged, read from the kubelet's log
    files on this node (``/var/log/pods``, under ``palplat:gpu:root``): the device plugin
    says there why it stopped (e.g. NVML not found). '' when there are none."""
    md, st = pod.get("metadata") or {}, pod.get("status") or {}
    base = rooted(root, "var/log/pods") / f"{md.get('namespace')}_{md.get('name')}_{md.get('uid')}"
    out = []
    for c in st.get("containerStatuses") or []:
        if c.get("ready"):
            continue
        files = sorted((base / str(c.get("name"))).glob("*.log"), key=lambda f: f.stat().st_mtime)
        if not files:
            continue
        try:
            text = files[-1].read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        # CRI log lines: <time> <stream> <P|F> <text>
        msgs = [ln.split(" ", 3)[3] if len(ln.split(" ", 3)) == 4 else ln for ln in text]
        said = " | ".join(m.strip() for m in msgs if m.strip())
        if said:
            out.append(f"{c.get('name')} logged: {said}")
    text = "; ".join(out)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plugin_pod(
    kube: kubelib.Kube, namespace: str, node: str, root: str = "/"
) -> tuple[dict | None, str]:
    """The device plugin's pod on ``node`` and a word on its state."""
    try:
        pods = kube.list("v1", "Pod", namespace, label_selector=PLUGIN_SELECTOR)
    except kubelib.NotFound:
        pods = []
    mine = [p for p in pods if (p.get("spec") or {}).get("nodeName") == node]
    if not mine:
        return None, (
            f"no device plugin pod ({PLUGIN_SELECTOR}) in namespace {namespace} on node {node}"
        )
    ready = [p for p in mine if _ready(p)]
    pod = (ready or mine)[0]
    name = (pod.get("metadata") or {}).get("name")
    if not ready:
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        found = (container_problems(pod), log_tail(root, pod), last_warning(kube, pod))
        why = "; ".join(x for x in found if x)
        return pod, (
            f"device plugin pod {namespace}/{name} on {node} is {phase}, not Ready"
            + (f" ({why})" if why else "")
        )
    return pod, f"device plugin pod {namespace}/{name} is Ready"
