"""The plugin pod link says why the pod is not Ready in the words of what failed: the
runtime's error (its cause, at the end of the wrapped message), the container's last log
lines from the kubelet's files on this node, the pod's last Warning event. Shapes as the
GPU proof's rehearsal saw them (tools/gpu-proof run --simulate-gpu)."""

from __future__ import annotations

from palplat.nvidia import cluster

RUNTIME_ERROR = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
    "could not apply required modification to OCI specification: error modifying OCI spec: "
    "failed to create the automatic CDI modifier: failed to generate CDI spec for mode "
    '"auto": failed to construct device spec generators: failed to initialize NVML: '
    "ERROR_LIBRARY_NOT_FOUND"
)


def pod(uid="u1"):
    return {
        "metadata": {"namespace": "nvidia-device-plugin", "name": "ndp-x", "uid": uid},
        "spec": {"nodeName": "gpu1"},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "nvidia-device-plugin-ctr",
                    "ready": False,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 128,
                            "reason": "StartError",
                            "message": RUNTIME_ERROR,
                        }
                    },
                }
            ],
        },
    }


def test_the_runtime_error_keeps_its_cause():
    text = cluster.container_problems(pod())
    assert text.startswith("nvidia-device-plugin-ctr: CrashLoopBackOff: last exit code 128")
    assert text.endswith("failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND")


def test_the_containers_last_words_from_var_log_pods(tmp_path):
    d = tmp_path / "var/log/pods/nvidia-device-plugin_ndp-x_u1/nvidia-device-plugin-ctr"
    d.mkdir(parents=True)
    (d / "0.log").write_text(
        "2026-12-04T19:00:00Z stderr F I1204 starting\n"
        "2026-12-04T19:00:01Z stderr F E1204 Failed to initialize NVML: "
        "ERROR_LIBRARY_NOT_FOUND\n"
    )
    text = cluster.log_tail(str(tmp_path), pod())
    assert text == (
        "nvidia-device-plugin-ctr logged: I1204 starting | E1204 Failed to initialize NVML: "
        "ERROR_LIBRARY_NOT_FOUND"
    )
    assert cluster.log_tail(str(tmp_path), pod(uid="other")) == ""


class Events:
    def __init__(self, items):
        self.items = items
        self.asked = []

    def request(self, method, path, query=None, what=""):
        self.asked.append((method, path, query))
        return {"items": self.items}


def test_the_last_warning_event():
    kube = Events(
        [
            {"type": "Normal", "reason": "Pulled", "message": "ok", "lastTimestamp": "3"},
            {
                "type": "Warning",
                "reason": "FailedCreatePodSandBox",
                "message": "old",
                "lastTimestamp": "1",
            },
            {
                "type": "Warning",
                "reason": "BackOff",
                "message": "Back-off  restarting",
                "lastTimestamp": "2",
            },
        ]
    )
    assert cluster.last_warning(kube, pod()) == "last event BackOff: Back-off restarting"
    assert kube.asked == [
        (
            "GET",
            "/api/v1/namespaces/nvidia-device-plugin/events",
            [("fieldSelector", "involvedObject.name=ndp-x")],
        )
    ]
    assert cluster.last_warning(Events([]), pod()) == ""
