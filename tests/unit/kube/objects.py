"""Manifests and live objects the palplat.kube unit tests compare."""

from __future__ import annotations

from palplat import kube


def cm(data=None, **meta):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns", **meta},
        "data": data if data is not None else {"a": "1"},
    }


def secret(data=None, string_data=None):
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}}
    if data is not None:
        obj["data"] = data
    if string_data is not None:
        obj["stringData"] = string_data
    return obj


def live_of(obj):
    """``obj`` as the server returns it: owned by ``o``, with the server's bookkeeping."""
    out = kube.owned(obj, "o")
    out["metadata"].update(
        resourceVersion="42",
        uid="u-1",
        generation=3,
        creationTimestamp="2026-01-01T00:00:00Z",
        managedFields=[{"manager": "palplat", "operation": "Apply"}],
    )
    out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    out["status"] = {"phase": "whatever"}
    return out
