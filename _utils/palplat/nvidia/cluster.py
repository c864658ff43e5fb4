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


def plugin_pod(kube: kubelib.Kube, namespace: str, node: str) -> tuple[dict | None, str]:
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
        return pod, f"device plugin pod {namespace}/{name} on {node} is {phase}, not Ready"
    return pod, f"device plugin pod {namespace}/{name} is Ready"
