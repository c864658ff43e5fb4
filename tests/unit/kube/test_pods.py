"""palplat.kube.pods: why a release's pods are not ready, from pod status and events as
the API server returns them (scheduling, image pull, crash loop, readiness)."""

from __future__ import annotations

from palplat.kube import pods


def pod(name, phase="Pending", conditions=(), containers=(), init=(), ns="ollama", labels=None):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "status": {
            "phase": phase,
            "conditions": list(conditions),
            "containerStatuses": list(containers),
            "initContainerStatuses": list(init),
        },
    }


UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 "
    "nodes are available: 1 No preemption victims found for incoming pod.",
}


def event(pod_name, reason, message, type_="Warning", when="2026-01-01T00:00:00Z"):
    return {
        "kind": "Event",
        "involvedObject": {"kind": "Pod", "name": pod_name},
        "reason": reason,
        "message": message,
        "type": type_,
        "lastTimestamp": when,
    }


class FakeKube:
    def __init__(self, items, events=()):
        self.items = items
        self.events = list(events)
        self.calls = []

    def list(self, api, kind, namespace=None, label_selector=None):
        self.calls.append((kind, label_selector))
        if kind == "Event":
            return self.events
        out = [p for p in self.items if p["metadata"]["namespace"] == namespace]
        if label_selector:
            k, v = label_selector.split("=")
            out = [p for p in out if p["metadata"]["labels"].get(k) == v]
        return out


def test_unschedulable_pod_names_the_missing_resource_once():
    p = pod("ollama-0", conditions=[UNSCHEDULABLE], labels={"app.kubernetes.io/instance": "ollama"})
    ev = event("ollama-0", "FailedScheduling", UNSCHEDULABLE["message"])
    k = FakeKube([p], [ev])
    lines = pods.not_ready(k, "ollama", "ollama")
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("ollama/ollama-0 (Pending; not scheduled: Unschedulable: 0/1 nodes")
    assert "Insufficient nvidia.com/gpu" in line
    # the event says the same as the condition: named, not repeated
    assert line.count("Insufficient nvidia.com/gpu") == 1 and "last event FailedScheduling" in line
    assert k.calls[0] == ("Pod", "app.kubernetes.io/instance=ollama")


def test_image_pull_and_crash_loop_and_readiness():
    pull = pod(
        "web-1",
        containers=[
            {
                "name": "web",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": 'Back-off pulling image "harbor.example/web:1"',
                    }
                },
            }
        ],
        ns="web",
    )
    crash = pod(
        "web-2",
        phase="Running",
        containers=[
            {
                "name": "web",
                "ready": False,
                "restartCount": 7,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }
        ],
        ns="web",
    )
    probe = pod(
        "web-3",
        phase="Running",
        conditions=[{"type": "Ready", "status": "False"}],
        containers=[{"name": "web", "ready": False, "state": {"running": {}}}],
        ns="web",
    )
    fine = pod(
        "web-4",
        phase="Running",
        conditions=[{"type": "Ready", "status": "True"}],
        containers=[{"name": "web", "ready": True, "state": {"running": {}}}],
        ns="web",
    )
    events = [
        event(
            "web-3", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"
        ),
        event(
            "web-3", "Started", "Started container web", type_="Normal", when="2026-01-01T00:01:00Z"
        ),
    ]
    lines = pods.not_ready(FakeKube([pull, crash, probe, fine], events), "web", "web")
    assert len(lines) == 3, lines  # no release label: the namespace's pods, the ready one left out
    assert "container web: ImagePullBackOff: Back-off pulling image" in lines[0]
    assert (
        "container web: CrashLoopBackOff: back-off 5m0s (last exit 1, Error; 7 restarts)"
        in lines[1]
    )
    # the last Warning wins over a later Normal event
    assert (
        "running, not ready" in lines[2] and "last event: Warning Unhealthy: Readiness" in lines[2]
    )
    text = pods.describe(lines)
    assert text.startswith("pods not ready: web/web-1 (")


def test_finished_and_deleted_pods_are_not_waited_for():
    done = pod("job-1", phase="Succeeded", ns="x")
    going = pod("old-1", ns="x")
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pods.not_ready(FakeKube([done, going]), "x") == []
    assert pods.describe([]) == ""


def test_many_pods_are_counted_not_listed():
    items = [pod(f"p-{i}", ns="x") for i in range(8)]
    lines = pods.not_ready(FakeKube(items), "x")
    assert len(lines) == pods.MAX_PODS + 1 and lines[-1] == "and 3 more"


def test_watch_keeps_the_last_picture_when_the_pods_are_gone():
    p = pod("ollama-0", conditions=[UNSCHEDULABLE], labels={"app.kubernetes.io/instance": "ollama"})
    k = FakeKube([p])
    w = pods.Watch(k, "ollama", "ollama", every=0, after=0)
    w.tick()
    assert w.last and "Insufficient" in w.last[0]
    k.items = []  # an atomic upgrade rolled back: the pods are deleted
    assert w.final() and "Insufficient" in w.final()[0]


def test_watch_reads_nothing_before_after_seconds():
    k = FakeKube([])
    w = pods.Watch(k, "ns", "r", every=10, after=60)
    w.tick()
    assert k.calls == []
