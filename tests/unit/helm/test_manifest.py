"""palplat.helm.manifest: rendered manifests, shapes and baselines."""

from __future__ import annotations

from palplat import helm


def test_parse_manifest_and_baseline():
    text = """
---
# Source: x
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {k: v}
---
apiVersion: v1
kind: ConfigMapList
items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {x: "1"}}
"""
    objs = helm.parse_manifest(text, "ns")
    assert [o["kind"] for o in objs] == ["Secret", "ConfigMap"]
    assert all(o["metadata"]["namespace"] == "ns" for o in objs)
    assert helm.shape_of(objs[0])["data"] == {"k": "dg=="}
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "9", "labels": {"x": "y"}},
        "data": {"x": "1", "extra": "2"},
    }
    assert helm.baseline(live, objs[1]) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "ns"},
        "data": {"x": "1"},
    }
