"""palplat.helm.crds: a release's CRDs are never taken from another owner or downgraded."""

from __future__ import annotations

from palplat import helm
from palplat import kube as k8s
from palplat.helm import crds


def crd(version=None, owner=None, name="podmonitors.monitoring.coreos.com"):
    meta = {"name": name, "annotations": {}, "labels": {}}
    if version:
        meta["annotations"]["operator.prometheus.io/version"] = version
    if owner:
        meta["labels"] = {k8s.MANAGED_BY_LABEL: k8s.MANAGED_BY_VALUE, k8s.OWNER_LABEL: owner}
    return {"apiVersion": k8s.CRD_API, "kind": "CustomResourceDefinition", "metadata": meta}


def ctx(*installed):
    c = helm.Context(helm=None, kube=None)
    c.listed = {("monitoring", n): {"name": n} for n in installed}
    return c


def test_owned_by_another_installed_release_is_left_alone():
    live = crd("0.77.1", owner=crds.owner_of("kube-prometheus-stack"))
    why = crds.foreign(live, crd("0.77.1"), crds.owner_of("loki"), ctx("kube-prometheus-stack"))
    assert why == (
        "owned by release monitoring/kube-prometheus-stack "
        "(palplat owner helm-crds.kube-prometheus-stack)"
    )
    # its own CRD: applied, even older (the pillar pinned an older chart)
    own = crds.owner_of("kube-prometheus-stack")
    assert crds.foreign(live, crd("0.70.0"), own, ctx("kube-prometheus-stack")) == ""
    # another palplat owner (palplat_kube manifests)
    assert crds.foreign(crd(owner="platform-crds"), crd(), own, ctx()) == (
        "owned by palplat owner platform-crds"
    )


def test_never_downgraded_when_not_owned():
    owner = crds.owner_of("loki")
    gone = crd("0.77.1", owner=crds.owner_of("kube-prometheus-stack"))  # owner uninstalled
    assert "the live copy is newer" in crds.foreign(gone, crd("0.58.0"), owner, ctx())
    assert crds.foreign(gone, crd("0.78.0"), owner, ctx()) == ""  # takes it over
    assert "0.77.1" in crds.foreign(crd("v0.77.1"), crd("0.9.2"), owner, ctx())
    assert crds.foreign(crd(), crd(), owner, ctx()) == ""  # nothing to compare: applied
    assert crds.foreign(None, crd(), owner, ctx()) == ""


def test_one_copy_per_name():
    out = crds.Applied()
    older, newer = crd("0.58.0"), crd("0.77.1")
    assert crds._unique([older, crd("1", name="other"), newer], out) == [
        newer,
        crd("1", name="other"),
    ]
    assert list(out.skipped) == ["CustomResourceDefinition/podmonitors.monitoring.coreos.com"]


def test_summary_of_a_created_crd_is_not_its_schema():
    c = {
        "apiVersion": k8s.CRD_API,
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "as.x.dev"},
        "spec": {
            "group": "x.dev",
            "scope": "Namespaced",
            "names": {"kind": "A", "plural": "as"},
            "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object"}}}],
        },
    }
    assert crds.summary(c)["spec"] == {
        "group": "x.dev",
        "names": {"kind": "A"},
        "scope": "Namespaced",
        "versions": ["v1"],
    }
