"""A service's DORA keys from what palplat observes on a real API server: its Argo CD
Application (the vendor CRD), its status written as Argo CD writes it (operationState,
history, health, images) through a re-sync replayed by a restarted controller, a failed
sync, a Degraded rollout and a rollback; its pipelines from the Woodpecker contract fake
(validated against the vendor's document). The keys are the ones computed by hand in
tests/unit/dora/service_scenario.py."""

from __future__ import annotations

import uuid

import kubernetes
import pytest

from palplat import config, kube
from palplat.dora import api, ledger
from palplat.services.woodpecker import Woodpecker
from tests.support.fakes import platform as fakes_platform
from tests.unit.dora import service_scenario as sc

why = fakes_platform.missing()
pytestmark = [
    pytest.mark.controlplane,
    pytest.mark.skipif(why is not None, reason=f"{why} (../shared/reference)"),
]
SVC = "shop-" + uuid.uuid4().hex[:6]


@pytest.fixture
def fakes(kubeconfig):
    k = kube.Kube(kubeconfig)
    fakes_platform.install_crds(k)
    harbor, wp = fakes_platform.start_fakes()
    try:
        yield harbor, wp
    finally:
        harbor.stop()
        wp.stop()
        k.close()
    assert harbor.violations + wp.violations == []


def pillar(namespace, kubeconfig, textfiles, fakes) -> dict:
    defaults = dict(fakes_platform.example()["services"]["defaults"])
    defaults.pop("forge", None)  # this platform has no Forgejo release
    defaults["releases"] = dict.fromkeys(("argocd", "monitoring", "tailscale", "cnpg"), "greeter")
    services = fakes_platform.point_at(
        {"defaults": defaults, SVC: {"repo": f"dev/{SVC}", "port": 8080}}, *fakes
    )
    return {
        "k3s": {"mode": "external", "kubeconfig": kubeconfig},
        "platform": {"releases": {"greeter": {"namespace": namespace, "chart": {"path": "/x"}}}},
        "services": services,
        "dora": {"namespace": namespace, "textfile_dir": str(textfiles)},
    }


def test_service_keys_from_argo_cd_and_woodpecker(kubeconfig, kube_api, namespace, fakes,
                                                  tmp_path):  # fmt: skip
    harbor, wp = fakes
    cfg = config.load(pillar(namespace, kubeconfig, tmp_path / "tf", fakes), key=None)
    client = Woodpecker.from_settings(cfg.services.defaults.woodpecker)
    remote = next(r["forge_remote_id"] for r in wp.forge_repos.values()
                  if r["full_name"] == f"dev/{SVC}")  # fmt: skip
    client.activate(remote)
    client.close()
    co = kubernetes.client.CustomObjectsApi(kube_api)
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": SVC, "namespace": namespace,
                     "labels": {kube.MANAGED_BY_LABEL: "palplat"}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://forge.example/ops/deployments", "path": SVC,
                       "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": SVC},
        },
    }  # fmt: skip
    co.create_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "applications", app)
    spool = ledger.Spool(str(tmp_path / "spool.jsonl"))

    def woodpecker():
        return Woodpecker.from_settings(cfg.services.defaults.woodpecker)

    pipelines = {p[0]: sc.pipeline(*p) for p in sc.PIPELINES}
    for i, (seen, *_rest) in enumerate(sc.OBSERVED):
        # CI ran the pipelines that finished by now
        for n in [n for n, p in pipelines.items() if p["finished"] <= seen]:
            wp.add_pipeline(f"dev/{SVC}", pipelines.pop(n))
        live = co.get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "applications", SVC
        )
        if i == 2:
            # the application controller restarted: it rewrites the whole status and,
            # as argocd-notifications sees it, replays the same sync
            live.pop("status", None)
            co.replace_namespaced_custom_object(
                "argoproj.io", "v1alpha1", namespace, "applications", SVC, live
            )
            live = co.get_namespaced_custom_object(
                "argoproj.io", "v1alpha1", namespace, "applications", SVC
            )
        live["status"] = sc.application_status(i)
        co.replace_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "applications", SVC, live
        )
        out = api.observe(cfg, lambda: kube.Kube(kubeconfig), spool, woodpecker, now=seen)
        assert "notes" not in out, out
        assert out["observed"] >= 1 and out["spooled"] == 0
    # observing again changes nothing: every fact is in the ledger once
    again = api.observe(cfg, lambda: kube.Kube(kubeconfig), spool, woodpecker,
                        now=sc.OBSERVED[-1][0] + 30)  # fmt: skip
    assert again["added"] == 0
    rep = api.build_report(cfg, kube.Kube(kubeconfig), days=1, service=SVC, now=sc.T0 + 6000)
    assert rep["platform"] == []
    _, row = rep["services"]
    want = sc.SERVICE_KEYS
    assert (row["deployments"], row["attempts"], row["failures"], row["reworks"],
            row["changes"]) == (want["deployments"], want["attempts"], want["failures"],
                                want["reworks"], want["changes"])  # fmt: skip
    assert row["runs"] == want["runs"]
    assert row["keys"]["lead_time"]["value"] == sorted(want["lead_times"])[1]  # lower median
    assert row["keys"]["recovery_time"]["value"] == want["recoveries"][0]
    assert row["keys"]["change_fail_rate"]["value"] == pytest.approx(2 / 5)
    text = (tmp_path / "tf" / "palplat_dora.prom").read_text()
    assert f'palplat_dora_deployments_total{{component="{SVC}",scope="service"}} 4.0' in text
