"""palplat.helm.render: the client-side render with the server's capabilities (values
check, the CRDs of the enabled charts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from palplat import config, helm, proc
from palplat.errors import CommandError
from palplat.helm import render
from palplat.kube import KubeError

CHARTS = Path(__file__).resolve().parents[2] / "fixtures" / "charts"

TEMPLATE = """---
# Source: app/charts/op/crds/a.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: as.x.dev}
spec:
  group: x.dev
  names: {kind: A}
  versions: [{name: v1, served: true}, {name: v0, served: false}]
---
# Source: app/templates/pvc.yaml
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
"""


class Kube:
    """Answers discovery like an API server with core/v1 and one group."""

    def __init__(self):
        self.paths = []

    def request(self, method, path, **kw):
        self.paths.append(path)
        if path == "/apis/metrics.k8s.io/v1beta1":
            raise KubeError("read discovery: the API server answered 503", status=503)
        return {
            "/version": {"gitVersion": "v1.36.3"},
            "/api": {"versions": ["v1"]},
            "/apis": {
                "groups": [
                    {"versions": [{"groupVersion": "apps/v1"}]},
                    {"versions": [{"groupVersion": "metrics.k8s.io/v1beta1"}]},
                ]
            },
            "/api/v1": {"resources": [{"name": "pods", "kind": "Pod"}]},
            "/apis/apps/v1": {"resources": [{"name": "deployments/scale", "kind": "Scale"}]},
        }[path]


class Runner:
    def __init__(self, fail=None):
        self.argv = []
        self.fail = fail

    def __call__(self, argv, **kw):
        self.argv.append(list(argv))
        if self.fail:
            raise CommandError(argv, 1, self.fail)
        return proc.Result(list(argv), 0, TEMPLATE, "")


def plan_for(keep_pvcs=True):
    cfg = config.load(
        {
            "palplat": {
                "gpu": {"enabled": False},
                "platform": {
                    "releases": {
                        "r": {
                            "namespace": "ns",
                            "chart": {"path": str(CHARTS / "cm")},
                            "keep_pvcs": keep_pvcs,
                        }
                    }
                },
            }
        }
    )
    rel = config.releases(cfg)["r"]
    return helm.ReleasePlan("r", "r", "ns", rel)


def test_render_client_with_server_capabilities():
    run, kube = Runner(), Kube()
    ctx = helm.Context(helm=helm.Helm("helm", runner=run), kube=kube)
    out = helm.render_client(plan_for(), ctx)
    assert [c["metadata"]["name"] for c in out.crds] == ["as.x.dev"]
    (pvc,) = out.objects  # marked as the post-renderer marks it for the real release
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    argv = run.argv[0]
    assert argv[:2] == ["helm", "template"] and "--include-crds" in argv and "--no-hooks" in argv
    assert "--post-renderer" not in argv  # it would drop the `# Source:` lines
    assert argv[argv.index("--kube-version") + 1] == "v1.36.3"
    apis = argv[argv.index("--api-versions") + 1].split(",")
    # an aggregated API that does not answer is listed without its kinds (as helm does)
    assert apis == ["v1", "v1/Pod", "apps/v1", "apps/v1/Scale", "metrics.k8s.io/v1beta1"]
    assert "--is-upgrade" not in argv
    # discovery once per run; the CRDs' own APIs added when asked
    helm.render_client(plan_for(), ctx, render.crd_apis(out.crds))
    assert kube.paths.count("/version") == 1
    apis = run.argv[1][run.argv[1].index("--api-versions") + 1].split(",")
    assert apis[-2:] == ["x.dev/v1", "x.dev/v1/A"]  # served versions only


def test_values_the_chart_rejects_name_the_pillar_path():
    long_tpl = "x" * 5000
    run = Runner(
        fail=f"Error: template: loki/templates/a.yaml:1: {long_tpl}: nil pointer evaluating "
        "interface {}.chunks\n\nUse --debug flag to render out invalid YAML"
    )
    ctx = helm.Context(helm=helm.Helm("helm", runner=run), kube=Kube())
    with pytest.raises(helm.HelmError) as err:
        helm.render_client(plan_for(), ctx)
    msg = str(err.value)
    assert msg.startswith("palplat:platform:releases:r:values: helm cannot render the chart")
    assert "loki/templates/a.yaml" in msg and msg.endswith("interface {}.chunks")
    assert "--debug" not in msg and len(msg) < 1400


def test_crd_apis():
    crd = {"spec": {"group": "g", "names": {"kind": "K"}, "versions": [{"name": "v1"}]}}
    assert render.crd_apis([crd]) == ("g/v1", "g/v1/K")
