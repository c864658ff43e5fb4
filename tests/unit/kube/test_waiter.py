"""palplat.kube.waiter: the readiness predicate per kind."""

from __future__ import annotations

import pytest

from palplat import kube


def test_ready_predicates():
    crd = {"kind": "CustomResourceDefinition", "status": {"conditions": []}}
    assert kube.ready(crd) == (False, "no Established condition yet")
    crd["status"]["conditions"] = [{"type": "Established", "status": "True"}]
    assert kube.ready(crd)[0]
    assert kube.ready({"kind": "Namespace", "status": {"phase": "Terminating"}}) == (
        False,
        "phase Terminating",
    )
    dep = {
        "kind": "Deployment",
        "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}
            ],
        },
    }
    ok, why = kube.ready(dep)
    assert not ok and "MinimumReplicasUnavailable" in why and "0/2 replicas" in why
    dep["status"]["conditions"][0]["status"] = "True"
    assert kube.ready(dep) == (True, "Available")
    dep["metadata"]["generation"] = 3  # a new spec the controller has not seen yet
    assert not kube.ready(dep)[0]
    done = {"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert kube.ready(done) == (True, "Complete")
    job = {
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "n"},
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
        },
    }
    with pytest.raises(kube.WaitFailed, match="Job/n/j failed: BackoffLimitExceeded"):
        kube.ready(job)
    assert kube.ready({"kind": "ConfigMap"}) == (True, "exists")
    assert kube.ready(None) == (False, "does not exist")
