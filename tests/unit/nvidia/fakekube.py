"""A tiny in-memory stand-in for :class:`palplat.kube.Kube` with the few verbs the GPU
stage uses (the functional tests use the real API server)."""

from __future__ import annotations

import copy

from palplat import kube as kubelib


class FakeKube:
    server = "https://fake:6443"

    def __init__(self):
        self.nodes: dict[str, dict] = {}
        self.runtime_classes: dict[str, dict] = {}
        self.pods: list[dict] = []
        self.writes: list[tuple] = []

    # helpers for tests
    def add_node(self, name, labels=None, allocatable=None):
        node = {"metadata": {"name": name, "labels": dict(labels or {})}, "status": {}}
        if allocatable is not None:
            node["status"] = {
                "capacity": {"nvidia.com/gpu": str(allocatable)},
                "allocatable": {"nvidia.com/gpu": str(allocatable)},
            }
        self.nodes[name] = node
        return node

    def add_pod(self, node, ns="nvidia-device-plugin", ready=True, name="ndp-abcde"):
        self.pods.append(
            {
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {"app.kubernetes.io/name": "nvidia-device-plugin"},
                },
                "spec": {"nodeName": node},
                "status": {
                    "phase": "Running" if ready else "Pending",
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                },
            }
        )

    # verbs
    def request(self, method, path, body=None, content_type=None, what="", query=None):
        name = path.rsplit("/", 1)[-1]
        if name not in self.nodes:
            raise kubelib.NotFound(f"read node {name}: 404", status=404)
        if method == "GET":
            return copy.deepcopy(self.nodes[name])
        assert method == "PATCH" and content_type == "application/merge-patch+json"
        self.writes.append(("patch", name, body))
        self.nodes[name]["metadata"]["labels"].update(body["metadata"]["labels"])
        return copy.deepcopy(self.nodes[name])

    def get(self, api_version, kind, name, namespace=None):
        assert (api_version, kind) == ("node.k8s.io/v1", "RuntimeClass")
        return copy.deepcopy(self.runtime_classes.get(name))

    def apply(self, manifest, dry_run=False, force=True):
        self.writes.append(("apply", manifest["metadata"]["name"], dry_run))
        if not dry_run:
            self.runtime_classes[manifest["metadata"]["name"]] = copy.deepcopy(manifest)
        return manifest

    def list(self, api_version, kind, namespace=None, label_selector=None):
        assert (api_version, kind) == ("v1", "Pod")
        key, _, value = (label_selector or "").partition("=")
        return [
            copy.deepcopy(p)
            for p in self.pods
            if p["metadata"]["namespace"] == namespace
            and (not key or p["metadata"]["labels"].get(key) == value)
        ]
