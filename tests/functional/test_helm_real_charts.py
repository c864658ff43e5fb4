"""palplat_helm on the example platform's real charts (../shared/reference/charts).

Each test is a defect seen when the example's releases were converged from their real
charts (issue 10). The releases name their upstream sources, as the example pillar does;
``palplat:platform:mirrors`` sends every helm call to the loopback chart source of
``tests/support/chartrepo.py`` (the air-gapped case), so these tests also cover mirrors.

They run on a control plane of their own with kwok nodes (``tests/support/testenv.py``):
pods report Running and Jobs complete, so the charts' hook Jobs (woodpecker's secret
check, kube-prometheus-stack's admission webhook certificates) finish; the releases run
with ``wait: false``. Their own, not the session's ``kwok_control_plane``: the CRDs of
kube-prometheus-stack are cluster-wide, and these tests check who applies them first.
The module shares its releases: each heavy chart is installed once, the tests run in file
order.
"""

from __future__ import annotations

import json
import os

import pytest

from palplat import config, helm, kube, proc
from tests.support import chartrepo, testenv

pytestmark = [pytest.mark.controlplane, pytest.mark.helm, pytest.mark.slow]

if not chartrepo.CHARTS.is_dir():
    pytest.skip(chartrepo.SKIP_REASON, allow_module_level=True)

# the example pillar's sources (pillar/palplat/init.sls)
KPS = {
    "repo": "https://prometheus-community.github.io/helm-charts",
    "name": "kube-prometheus-stack",
    "version": "65.1.0",
}
LOKI = {"repo": "https://grafana.github.io/helm-charts", "name": "loki", "version": "6.16.0"}
MINIO = {"repo": "https://charts.min.io/", "name": "minio", "version": "5.2.0"}
OLLAMA = {"repo": "https://otwld.github.io/ollama-helm/", "name": "ollama", "version": "0.63.0"}
WOODPECKER = {"oci": "oci://ghcr.io/woodpecker-ci/helm/woodpecker", "version": "1.6.2"}
UPSTREAM_HOSTS = ("github.io", "charts.min.io", "ghcr.io")

CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
PODMONITORS = "podmonitors.monitoring.coreos.com"
# loki renders only with storage and schema settings (the chart's own CI values do this)
LOKI_VALUES = {
    "loki": {
        "useTestSchema": True,
        "storage": {"bucketNames": {"chunks": "chunks", "ruler": "ruler", "admin": "admin"}},
        "limits_config": {"retention_period": "168h"},
    },
    "deploymentMode": "SingleBinary",
    "singleBinary": {"replicas": 1},
    "read": {"replicas": 0},
    "write": {"replicas": 0},
    "backend": {"replicas": 0},
}


def kps_values(retention="15d"):
    return {
        "prometheus": {"prometheusSpec": {"retention": retention}},
        # kwok's pods cannot serve the operator's admission webhook: every PrometheusRule
        # would wait for its timeout (the only change to the example's values)
        "prometheusOperator": {"admissionWebhooks": {"enabled": False}},
        "alertmanager": {
            "config": {
                "route": {"receiver": "telegram"},
                "receivers": [{"name": "telegram", "telegram_configs": [{"chat_id": 123456789}]}],
            }
        },
    }


@pytest.fixture(scope="module")
def cp(tmp_path_factory):
    missing = testenv.missing_bins(testenv.COMPONENTS + testenv.KWOK_COMPONENTS)
    if missing:
        pytest.skip(f"{', '.join(missing)} not built: run tools/build-testbin")
    plane = testenv.ControlPlane(tmp_path_factory.mktemp("real-charts-cp"))
    plane.start(timeout=float(os.environ.get("PALPLAT_CP_TIMEOUT", "90")), kwok=True)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def kubeconfig(cp) -> str:
    return str(cp.kubeconfig)


@pytest.fixture(scope="module")
def kube_api(kubeconfig):
    from kubernetes import config as kconfig

    client = kconfig.new_client_from_config(config_file=kubeconfig)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def ns():
    """The module's namespaces (helm creates them; they go with the control plane)."""
    # woodpecker's agent RBAC is in `woodpecker` (its WOODPECKER_BACKEND_K8S_NAMESPACE)
    return {"mon": "monitoring", "ci": "woodpecker", "plan": "rc-plan"}


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory):
    d = tmp_path_factory.mktemp("helmhome")
    return {
        "HELM_CACHE_HOME": str(d / "cache"),
        "HELM_CONFIG_HOME": str(d / "config"),
        "HELM_DATA_HOME": str(d / "data"),
    }


@pytest.fixture(scope="module")
def argv():
    return []


@pytest.fixture(scope="module")
def run(kubeconfig, helm_bin, helm_env, chart_repo, argv):
    """run(releases, test=False, repo=chart_repo) -> converge result, through mirrors."""

    def recording(cmd, **kw):
        argv.append(list(cmd))
        return proc.run(cmd, **kw)

    def _run(releases: dict, test: bool = False, repo=chart_repo):
        sources = {"kps": {"chart": KPS}, "loki": {"chart": LOKI}, "minio": {"chart": MINIO}}
        sources.update(ollama={"chart": OLLAMA}, woodpecker={"chart": WOODPECKER})
        pillar = {
            "palplat": {
                "gpu": {"enabled": False},
                "k3s": {"kubeconfig": kubeconfig},
                "platform": {"releases": releases, "mirrors": repo.mirrors(sources)},
            }
        }
        cfg = config.load(pillar)
        ctx = helm.context_for(cfg, helm_bin=helm_bin, helm_env=helm_env)
        ctx.helm.runner = recording
        before = proc.STATS["by_program"].get("helm", 0)
        try:
            res = helm.converge(config.releases(cfg), ctx, test=test)
        finally:
            ctx.kube.close()
        res.pop("plans")
        res["helm_calls"] = proc.STATS["by_program"].get("helm", 0) - before
        res["kube"] = ctx.kube.stats
        res["size"] = len(json.dumps(res["changes"], default=str))
        return res

    return _run


def get(kube_api, api, kind, name, ns=None):
    return kube.Kube(api_client=kube_api).get(api, kind, name, ns)


def kps(ns, retention="15d"):
    return {"kps": {"namespace": ns, "chart": KPS, "values": kps_values(retention), "wait": False}}


def test_kube_prometheus_stack_installs_crds_first(run, ns, kube_api):
    # its alertmanagerconfigs CRD holds an unquoted `- =`; its Alertmanager, Prometheus
    # and PrometheusRules need its CRDs, which the server does not know in test mode
    plan = run(kps(ns["mon"]), test=True)
    assert plan["errors"] == {}, plan["errors"]
    change = plan["changes"]["kps"]
    assert change["action"] == "install"
    assert any("rendered client-side" in r and PODMONITORS in r for r in change["reasons"])
    crds = [k for k in change["objects"] if k.startswith("CustomResourceDefinition/")]
    assert len(crds) == 10 and f"CustomResourceDefinition/{PODMONITORS}" in crds
    assert f"Prometheus/{ns['mon']}/kps-kube-prometheus-stack-prometheus" in change["objects"]
    # a CRD to create is summarized, not its schema (kube-prometheus-stack's: 2.1 MB)
    assert all(len(json.dumps(change["objects"][k])) < 1000 for k in crds)
    assert get(kube_api, *CRD, PODMONITORS) is None

    res = run(kps(ns["mon"]))
    assert res["errors"] == {}, res["errors"]
    assert res["changes"]["kps"]["objects"].keys() == change["objects"].keys()
    crd = get(kube_api, *CRD, PODMONITORS)
    assert crd["metadata"]["labels"][kube.OWNER_LABEL] == "helm-crds.kps"
    assert crd["metadata"]["annotations"]["operator.prometheus.io/version"] == "0.77.1"
    prom = get(
        kube_api,
        "monitoring.coreos.com/v1",
        "Prometheus",
        "kps-kube-prometheus-stack-prometheus",
        ns["mon"],
    )
    assert prom["spec"]["retention"] == "15d"
    noop = run(kps(ns["mon"]))
    assert noop["changes"] == {} and noop["errors"] == {}
    assert noop["helm_calls"] == 1 and noop["kube"]["writes"] == 0


def test_kube_prometheus_stack_one_value_change_shows_that_field(run, ns):
    plan = run(kps(ns["mon"], retention="30d"), test=True)
    assert plan["errors"] == {}, plan["errors"]
    change = plan["changes"]["kps"]
    assert change["reasons"] == ["values changed"]
    assert change["objects"] == {
        f"Prometheus/{ns['mon']}/kps-kube-prometheus-stack-prometheus": {
            "spec.retention": {"old": "15d", "new": "30d"}
        }
    }
    assert plan["size"] < 1000, plan["size"]  # was 159 KB with 18 changes, 17 of them false
    res = run(kps(ns["mon"], retention="30d"))
    assert res["errors"] == {}, res["errors"]
    assert res["changes"]["kps"]["objects"] == change["objects"]
    assert res["changes"]["kps"]["revision"] == 2


def test_loki_disabled_subchart_leaves_prometheus_operator_crds(run, ns, kube_api):
    # loki's grafana-agent-operator (off) ships older prometheus-operator CRDs
    before = get(kube_api, *CRD, PODMONITORS)
    rels = {"loki": {"namespace": ns["mon"], "chart": LOKI, "values": LOKI_VALUES, "wait": False}}
    plan = run(rels, test=True)
    assert plan["errors"] == {}, plan["errors"]
    assert not [k for k in plan["changes"]["loki"]["objects"] if "CustomResourceDefinition" in k]
    res = run(rels)
    assert res["errors"] == {}, res["errors"]
    after = get(kube_api, *CRD, PODMONITORS)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["metadata"]["labels"][kube.OWNER_LABEL] == "helm-crds.kps"
    assert get(kube_api, *CRD, "grafanaagents.monitoring.grafana.com") is None
    assert run(rels)["changes"] == {}

    # with the operator on, its copies of kube-prometheus-stack's CRDs are left alone
    on = {"monitoring": {"selfMonitoring": {"grafanaAgent": {"installOperator": True}}}}
    rels["loki"]["values"] = {**LOKI_VALUES, **on}
    plan = run(rels, test=True)
    assert plan["errors"] == {}, plan["errors"]
    change = plan["changes"]["loki"]
    assert (
        f"CustomResourceDefinition/{PODMONITORS}: left alone: owned by release "
        f"{ns['mon']}/kps (palplat owner helm-crds.kps)"
    ) in change["reasons"]
    assert f"CustomResourceDefinition/{PODMONITORS}" not in change["objects"]
    assert "CustomResourceDefinition/grafanaagents.monitoring.grafana.com" in change["objects"]


def test_woodpecker_empty_namespace_then_no_op(run, ns, kube_api):
    # its server chart renders `namespace: ` (empty) on woodpecker-secret
    rels = {"woodpecker": {"namespace": ns["ci"], "chart": WOODPECKER, "wait": False}}
    res = run(rels)
    assert res["errors"] == {}, res["errors"]
    assert f"Secret/{ns['ci']}/woodpecker-secret" in res["changes"]["woodpecker"]["objects"]
    assert get(kube_api, "v1", "Secret", "woodpecker-secret", ns["ci"]) is not None
    assert get(kube_api, "v1", "Secret", helm.store_name("woodpecker"), ns["ci"]) is not None
    noop = run(rels)
    assert noop["changes"] == {} and noop["errors"] == {} and noop["helm_calls"] == 1


def test_values_the_chart_rejects_fail_in_test_mode(run, ns):
    # the example's own values: loki lacks storage/schema settings, ollama 0.63.0 wants
    # `models` as a list; minio is planned all the same (the errors stay per release)
    rels = {
        "minio": {"namespace": ns["plan"], "chart": MINIO, "values": {"mode": "standalone"}},
        "loki": {
            "namespace": ns["plan"],
            "needs": ["minio"],
            "chart": LOKI,
            "values": {"loki": {"limits_config": {"retention_period": "168h"}}},
        },
        "ollama": {
            "namespace": ns["plan"],
            "chart": OLLAMA,
            "values": {"ollama": {"models": {"pull": ["qwen3-embedding:4b"]}}},
        },
    }
    plan = run(rels, test=True)
    errs = plan["errors"]
    assert errs["loki"].startswith("palplat:platform:releases:loki:values: helm cannot render")
    assert "nil pointer evaluating interface {}.chunks" in errs["loki"]
    assert errs["ollama"].startswith("palplat:platform:releases:ollama:values: ")
    assert "Cannot concat type map as list" in errs["ollama"]
    assert plan["changes"]["minio"]["action"] == "install" and "minio" not in errs


def test_switching_mirrors_upgrades_nothing(run, ns, helm_bin, argv):
    everything = {
        **kps(ns["mon"], retention="30d"),
        "loki": {
            "namespace": ns["mon"],
            "chart": LOKI,
            "values": LOKI_VALUES,
            "wait": False,
        },
        "woodpecker": {"namespace": ns["ci"], "chart": WOODPECKER, "wait": False},
    }
    with chartrepo.ChartRepo(helm_bin=helm_bin) as other:
        res = run(everything, repo=other)
        assert res["errors"] == {} and res["changes"] == {} and res["helm_calls"] == 1
        assert ("GET", "/index.yaml") in other.requests  # digests checked on the new mirror
    # every helm call of this module went to a mirror, none upstream
    assert not [a for a in argv if any(h in x for x in a for h in UPSTREAM_HOSTS)]
