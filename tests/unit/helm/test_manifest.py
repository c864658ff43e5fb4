"""palplat.helm.manifest: rendered manifests, shapes, baselines, like-with-like diffs."""

from __future__ import annotations

import pytest

from palplat import helm
from palplat import kube as k8s
from palplat.errors import InputError


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


def test_parse_manifest_reads_an_unquoted_equals_sign():
    # kube-prometheus-stack's alertmanagerconfigs CRD: `- =` in an enum (YAML 1.1's
    # `value` tag, a ConstructorError for PyYAML's safe loader)
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  op: =\n  ops:\n    - =\n"
    (obj,) = helm.parse_manifest(text, "ns")
    assert obj["data"] == {"op": "=", "ops": ["="]}
    with pytest.raises(InputError, match="rendered manifest is not valid YAML"):
        helm.parse_manifest("a: [", "ns")


@pytest.mark.parametrize("meta", ["namespace:", 'namespace: ""', "namespace: null", ""])
def test_an_empty_namespace_is_the_release_namespace(meta):
    # woodpecker's server chart renders `namespace: ` on its Secret: helm installs it in the
    # release namespace, so that is where palplat must look for it after the upgrade
    text = f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  {meta}\n"
    (obj,) = helm.parse_manifest(text, "woodpecker")
    assert obj["metadata"]["namespace"] == "woodpecker"
    (obj,) = helm.parse_manifest("apiVersion: v1\nkind: ConfigMap\nmetadata:\n", "ns")
    assert obj["metadata"] == {"namespace": "ns"}


HELM_TEMPLATE = """---
# Source: app/charts/crds/crds/a.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: as.x.dev}
spec: {group: x.dev, names: {kind: A}, versions: [{name: v1}], enum: [=]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: bs.x.dev}
spec: {group: x.dev, names: {kind: B}, versions: [{name: v1}]}
---
# Source: app/crds/c.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: cs.x.dev}
---
# Source: app/templates/crd.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: templated.x.dev}
---
# Source: app/charts/sub/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm
  namespace:
"""


def test_split_crds_takes_the_crds_directories_only():
    crds, rest = helm.split_crds(HELM_TEMPLATE, "ns")
    # the second document of a crds/ file has no `# Source:` line of its own
    assert [c["metadata"]["name"] for c in crds] == ["as.x.dev", "bs.x.dev", "cs.x.dev"]
    assert all("namespace" not in c["metadata"] for c in crds)
    assert crds[0]["spec"]["enum"] == ["="]
    # a CRD a chart renders from templates/ is part of the release (helm installs it)
    assert [(o["kind"], o["metadata"]["name"]) for o in rest] == [
        ("CustomResourceDefinition", "templated.x.dev"),
        ("ConfigMap", "cm"),
    ]
    assert rest[1]["metadata"]["namespace"] == "ns"


def deployment(**pod):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i:1"}], **pod}}},
    }


def test_compare_is_like_with_like():
    # the API server omits zero values (omitempty) and adds defaults the chart does not set
    live = deployment(dnsPolicy="ClusterFirst", restartPolicy="Always")
    live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/x"
    live["metadata"]["resourceVersion"] = "7"
    desired = deployment(hostNetwork=False, hostIPC=False)
    c = desired["spec"]["template"]["spec"]["containers"][0]
    c["readinessProbe"] = {"initialDelaySeconds": 0, "tcpSocket": {"port": 80}}
    live["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": 80},
        "periodSeconds": 10,
    }
    c["securityContext"] = {"privileged": False}
    assert helm.compare(live, desired) == {}
    # a real change is shown, exactly
    c["image"] = "i:2"
    assert helm.compare(live, desired) == {
        "spec.template.spec.containers[c].image": {"old": "i:1", "new": "i:2"}
    }
    # a change to a zero value that the live object holds is shown too
    live["spec"]["template"]["spec"]["hostNetwork"] = True
    c["image"] = "i:1"
    assert helm.compare(live, desired) == {
        "spec.template.spec.hostNetwork": {"old": True, "new": False}
    }


def test_like_stored_keeps_what_live_holds():
    assert k8s.like_stored({"a": 0}, {"a": 0, "b": 0, "c": "", "d": False, "e": 1}) == {
        "a": 0,
        "e": 1,
    }
    assert k8s.like_stored(None, {"x": {"y": False}, "z": [0]}) == {"z": [0]}
    assert k8s.like_stored([{"a": 1}], [{"a": 1, "b": False}]) == [{"a": 1}]


def test_cluster_scoped_objects_carry_no_namespace():
    (cr,) = helm.parse_manifest("apiVersion: v1\nkind: ClusterRole\nmetadata: {name: r}\n", "ns")
    assert cr["metadata"]["namespace"] == "ns"  # scope is unknown before discovery
    assert helm.scoped(cr, namespaced=False)["metadata"] == {"name": "r"}
    live = {"apiVersion": "v1", "kind": "ClusterRole", "metadata": {"name": "r", "uid": "u"}}
    assert helm.compare(live, cr) == {}
