"""A release whose wait times out says why: the pods that were not ready and the last event
of each, read while helm waited (an atomic upgrade deletes them when it rolls back).

On the kwok control plane (kube-scheduler, one kwok GPU node with 1 nvidia.com/gpu): a
Deployment asking for more GPUs than the node has is never scheduled, so the real
kube-scheduler writes a FailedScheduling event "Insufficient nvidia.com/gpu", as on a
k3s node without (enough) GPUs: the example's ollama on a host without a GPU.
"""

from __future__ import annotations

import textwrap

import pytest

from palplat import config, helm, kube, loaderkit

pytestmark = [pytest.mark.controlplane, pytest.mark.helm, pytest.mark.slow]


def gpu_chart(root):
    chart = root / "gpu-hungry"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: gpu-hungry\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("gpus: 64\n")  # the kwok GPU node has 4
    (chart / "templates" / "deploy.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: {{ .Release.Name }}
              labels: {app.kubernetes.io/instance: "{{ .Release.Name }}"}
            spec:
              replicas: 1
              selector: {matchLabels: {app.kubernetes.io/instance: "{{ .Release.Name }}"}}
              template:
                metadata: {labels: {app.kubernetes.io/instance: "{{ .Release.Name }}"}}
                spec:
                  containers:
                    - name: model
                      image: ollama/ollama:0.6.0
                      resources:
                        limits: {nvidia.com/gpu: {{ .Values.gpus }}}
            """
        )
    )
    return chart


def test_timed_out_wait_names_the_unschedulable_pod(kwok_control_plane, helm_bin, tmp_path):
    cp = kwok_control_plane
    chart = gpu_chart(tmp_path / "charts")
    pillar = {
        "palplat": {
            "gpu": {"enabled": False},
            "k3s": {"kubeconfig": str(cp.kubeconfig)},
            "platform": {
                "releases": {
                    "llm": {
                        "namespace": "llm-wait",
                        "chart": {"path": str(chart)},
                        "timeout": 25,
                    }
                }
            },
        }
    }
    cfg = config.load(pillar)
    events = []
    progress = loaderkit.Progress(lambda d, t: events.append((t, d)), "helm", every=0)
    env = {k: str(tmp_path / "helm" / k) for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME")}
    env["HELM_DATA_HOME"] = str(tmp_path / "helm" / "data")
    ctx = helm.context_for(cfg, helm_bin=helm_bin, helm_env=env, progress=progress)
    try:
        res = helm.converge(config.releases(cfg), ctx, test=False)
        err = res["errors"]["llm"]
        print(f"\n[the error an operator reads] {err}")
        assert "failed and was rolled back" in err and "not installed" in err, err
        # the cause, not only "context deadline exceeded"
        assert "pods not ready: llm-wait/llm-" in err, err
        assert "Insufficient nvidia.com/gpu" in err, err
        assert "palplat:platform:releases:llm:timeout" in err
        # the progress events said it while waiting
        waiting = [d["message"] for t, d in events if t == "palplat/helm/waiting"]
        assert any("Insufficient nvidia.com/gpu" in m for m in waiting), waiting
        # the atomic rollback removed the release (and with it the pods described above)
        assert ctx.helm.status("llm", "llm-wait") is None
    finally:
        k = kube.Kube(str(cp.kubeconfig))
        try:  # the kwok control plane is shared: leave nothing behind
            k.delete("v1", "Namespace", "llm-wait")
        finally:
            k.close()
