"""The objects one entry produces, by part (pure: no cluster)."""

from __future__ import annotations

import base64
import json

from palplat import kube, redact
from palplat.secret import Secret
from palplat.services import bundle, resolve
from palplat.services.bundle import Robot


def _plan(example, load):
    return resolve.resolve(load(example))


def _by_kind(parts):
    return {(o["kind"], o["metadata"]["name"]): o for objs in parts.values() for o in objs}


def test_a_full_entry(example, load):
    plan = _plan(example, load)
    spec = plan.specs["pal-e-docs"]
    parts = bundle.bundle(plan, spec)
    assert set(parts) == {"namespace", "database", "delivery", "ingress", "monitoring"}
    objs = _by_kind(parts)
    for part, items in parts.items():
        for o in items:
            labels = o["metadata"]["labels"]
            assert labels[resolve.SERVICE_LABEL] == "pal-e-docs"
            assert labels[resolve.PART_LABEL] == part
    assert sorted(n for k, n in objs if k == "NetworkPolicy") == [
        "palplat-allow-database",
        "palplat-allow-dns",
        "palplat-allow-monitoring",
        "palplat-allow-tailscale",
        "palplat-database",
        "palplat-default-deny",
    ]
    ts = objs[("NetworkPolicy", "palplat-allow-tailscale")]["spec"]["ingress"][0]
    assert ts["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "tailscale"
    }
    assert ts["ports"] == [{"protocol": "TCP", "port": 8000}]
    db = objs[("NetworkPolicy", "palplat-database")]["spec"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "minio"}}} in [
        p for r in db["egress"] for p in r["to"]
    ]
    app = objs[("Application", "pal-e-docs")]
    assert app["metadata"]["namespace"] == "argocd"
    assert app["spec"]["source"] == {
        "repoURL": "https://forgejo.tail0000.ts.net/pal-e/pal-e-deployments.git",
        "targetRevision": "HEAD",
        "path": "overlays/pal-e-docs",
    }
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    ann = app["metadata"]["annotations"]
    assert ann["argocd-image-updater.argoproj.io/image-list"] == (
        "app=harbor.tail0000.ts.net/pal-e-docs/pal-e-docs"
    )
    assert ann["argocd-image-updater.argoproj.io/app.pull-secret"] == (
        "pullsecret:pal-e-docs/palplat-registry-pull"
    )
    ing = objs[("Ingress", "pal-e-docs")]
    assert ing["spec"]["ingressClassName"] == "tailscale"
    assert ing["metadata"]["annotations"] == {"tailscale.com/funnel": "true"}
    assert ing["spec"]["tls"] == [{"hosts": ["pal-e-docs"]}]
    cluster = objs[("Cluster", "pal-e-docs-db")]["spec"]
    assert cluster["instances"] == 1 and cluster["storage"] == {"size": "5Gi"}
    assert cluster["backup"]["retentionPolicy"] == "14d"
    assert (
        cluster["backup"]["barmanObjectStore"]["destinationPath"] == "s3://cnpg-backups/pal-e-docs"
    )
    assert objs[("ScheduledBackup", "pal-e-docs-db")]["spec"]["schedule"] == "0 0 3 * * *"
    probe = objs[("Probe", "pal-e-docs")]["spec"]
    assert probe["targets"]["staticConfig"]["static"] == ["https://pal-e-docs.tail0000.ts.net"]
    rules = objs[("PrometheusRule", "pal-e-docs")]["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["ServiceTargetDown", "ServiceRestartLoop"]
    assert objs[("ServiceMonitor", "pal-e-docs")]["spec"]["endpoints"] == [
        {"targetPort": 8000, "path": "/metrics", "interval": "30s"}
    ]
    assert objs[("ResourceQuota", "palplat-quota")]["spec"]["hard"]["pods"] == "30"


def test_a_minimal_entry_gets_only_what_it_asks_for(example, load):
    plan = _plan(example, load)
    parts = bundle.bundle(plan, plan.specs["platform-validation"])
    assert set(parts) == {"namespace", "delivery", "monitoring"}
    objs = _by_kind(parts)
    assert ("Ingress", "platform-validation") not in objs
    assert ("Probe", "platform-validation") not in objs
    rules = objs[("PrometheusRule", "platform-validation")]["spec"]["groups"][0]["rules"]
    assert rules[-1]["alert"] == "ValidationProbeFailing"
    assert rules[-1]["labels"]["severity"] == "critical"
    assert sorted(n for k, n in objs if k == "NetworkPolicy") == [
        "palplat-allow-dns",
        "palplat-allow-monitoring",
        "palplat-default-deny",
    ]


def test_extra_network_peers(example, load):
    example["services"]["pal-e-app"]["network"] = {
        "egress": [{"cidr": "192.168.1.0/24", "ports": [443]}],
        "ingress": [{"namespace": "keycloak", "pods": {"app": "kc"}}],
    }
    plan = _plan(example, load)
    objs = _by_kind(bundle.bundle(plan, plan.specs["pal-e-app"]))
    eg = objs[("NetworkPolicy", "palplat-extra-egress")]["spec"]
    assert eg["egress"] == [
        {
            "to": [{"ipBlock": {"cidr": "192.168.1.0/24"}}],
            "ports": [{"protocol": "TCP", "port": 443}],
        }
    ]
    ing = objs[("NetworkPolicy", "palplat-extra-ingress")]["spec"]["ingress"][0]
    assert ing["from"][0]["podSelector"] == {"matchLabels": {"app": "kc"}}


def test_secrets_stay_hidden_until_sent(example, load):
    plan = _plan(example, load)
    spec = plan.specs["westsidekingsandqueens"]
    robot = Robot("robot$westsidekingsandqueens+palplat-pull", Secret("robot-pw-abcdef1234"), 7)
    parts = bundle.bundle(plan, spec, {"palplat-pull": robot})
    objs = _by_kind(parts)
    workload = objs[("Secret", "westsidekingsandqueens-secrets")]
    assert isinstance(workload["stringData"]["AUTH_SECRET"], Secret)
    pull = objs[("Secret", "palplat-registry-pull")]
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    assert pull["metadata"]["annotations"] == {bundle.ROBOT_ID_ANNOTATION: "7"}
    text = json.dumps(kube.masked(parts), default=str) + repr(parts)
    assert "robot-pw-abcdef1234" not in text and "CHANGE-ME-auth-secret" not in text
    sent = kube.reveal(pull)["stringData"][".dockerconfigjson"]
    auth = json.loads(sent)["auths"]["harbor.tail0000.ts.net"]
    assert auth["password"] == "robot-pw-abcdef1234"
    assert base64.b64decode(auth["auth"]).decode() == f"{robot.name}:robot-pw-abcdef1234"
    assert redact.mask(sent) == "<hidden>"


def test_shared_repository_secret(example, load):
    example["services"]["defaults"]["deployments_credentials"] = {
        "username": "argocd",
        "password": "forge-token-value",
    }
    plan = _plan(example, load)
    (repo,) = bundle.shared(plan)
    assert repo["metadata"]["namespace"] == "argocd"
    assert repo["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repository"
    assert repo["stringData"]["url"].endswith("pal-e-deployments.git")
    assert isinstance(repo["stringData"]["password"], Secret)
    # the token palplat made in Forgejo (services.credentials) when the pillar has none
    (made,) = bundle.shared(plan, ("forgejo-admin", Secret("made-token")))
    assert made["stringData"]["username"] == "forgejo-admin"
    del example["services"]["defaults"]["deployments_credentials"]
    assert bundle.shared(_plan(example, load)) == []
