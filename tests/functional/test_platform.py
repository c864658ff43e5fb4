"""The example platform (pillar/palplat) on its real charts: the 15 vendor charts of
../shared/reference/charts, served on loopback as a helm repository and an OCI registry
(tests/support/chartrepo.py) through ``palplat:platform:mirrors``, installed by the platform
stage on the kwok control plane (a GPU node, k3s's local-path storage: ``helm --wait``
waits for real rollouts, claims bind).

One install for the module (2 cores): then a no-op run, a one-value change and a hand-made
drift. Skipped when the charts or the test tools are absent.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time

import pytest
import yaml

from palplat import config, helm, kube, proc
from palplat.helm.chart import merged_values
from palplat.platform import converge as platform
from palplat.platform import objects
from tests.support.chartrepo import example_pillar
from tests.support.fakes.forgejo import ForgejoFake
from tests.support.saltenv import CHECKOUT_DIRS

pytestmark = [pytest.mark.controlplane, pytest.mark.helm, pytest.mark.slow]

RELEASES = {
    "cnpg", "minio", "kube-prometheus-stack", "loki", "promtail", "blackbox-exporter",
    "tailscale-operator", "forgejo", "woodpecker", "harbor", "keycloak", "argocd",
    "argocd-image-updater", "ollama", "nvidia-device-plugin",
}  # fmt: skip
EXPOSED = {"minio", "kube-prometheus-stack", "forgejo", "woodpecker", "harbor", "keycloak"}
DATABASES = {"forgejo", "woodpecker", "keycloak"}
BACKED_UP = {"forgejo", "keycloak"}  # database.backup: nightly to MinIO


class Platform:
    """The installed platform and a way to run the platform stage on it."""

    def __init__(self, cp, repo, helm_bin, helm_env):
        self.cp, self.repo, self.helm_bin, self.helm_env = cp, repo, helm_bin, helm_env
        self.kube = kube.Kube(str(cp.kubeconfig))
        # Forgejo's API (no Forgejo runs on kwok): the contract fake, signing in with the
        # admin password palplat generated, read from the Secret the chart reads
        self.forgejo = ForgejoFake(password=self._forgejo_admin).start()
        self.pillar = example_pillar(str(cp.kubeconfig), repo, forge_api=self.forgejo.url)
        self.planned: dict = {}
        self.installed: dict = {}
        self.events: list[str] = []  # progress of the helm calls (in a failure's report)

    def _forgejo_admin(self) -> str:
        import base64

        live = self.kube.get("v1", "Secret", "forgejo-admin", "forgejo") or {}
        raw = (live.get("data") or {}).get("password")
        return base64.b64decode(raw).decode() if raw else ""

    def cfg(self, pillar=None):
        return config.load(pillar or self.pillar)

    def progress(self, phase, message, force=False, **data):
        self.events.append(f"{time.strftime('%H:%M:%S')} {phase}: {message}")

    def run(self, pillar=None, test=False) -> dict:
        cfg = self.cfg(pillar)
        ctx = helm.context_for(
            cfg, helm_bin=self.helm_bin, helm_env=self.helm_env, progress=self.progress
        )
        before = proc.STATS["by_program"].get("helm", 0)
        t0 = time.monotonic()
        try:
            res = platform.converge(cfg, ctx, test=test)
        finally:
            ctx.kube.close()
        res["seconds"] = time.monotonic() - t0
        res["helm_calls"] = proc.STATS["by_program"].get("helm", 0) - before
        res["kube"] = dict(ctx.kube.stats)
        return res

    def helm_list(self) -> dict:
        out = subprocess.run(
            [self.helm_bin, "list", "-A", "-a", "-o", "json",
             "--kubeconfig", str(self.cp.kubeconfig)],
            capture_output=True, text=True, check=True, env=self.helm_env,
        ).stdout  # fmt: skip
        return {r["name"]: r for r in json.loads(out)}


@pytest.fixture(scope="module")
def installed(kwok_control_plane, chart_repo, helm_bin, tmp_path_factory):
    home = tmp_path_factory.mktemp("platform-helm")
    env = {
        k: str(home / k.lower()) for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
    }
    p = Platform(kwok_control_plane, chart_repo, helm_bin, env)
    p.planned = p.run(test=True)  # the plan of the empty cluster, then the install
    p.installed = p.run()
    try:
        yield p
    finally:
        p.forgejo.stop()
        p.kube.close()
    assert p.forgejo.violations == []


def no_secret(*things):
    text = json.dumps(things, default=str)
    assert "CHANGE-ME" not in text


# --------------------------------------------------------------------------- render


def test_every_release_renders_with_the_example_values(chart_repo, helm_bin, tmp_path):
    """`helm template` of each release, its values merged as palplat merges them, against
    its real chart fetched from the loopback repository or registry."""
    pillar = example_pillar("/nonexistent", chart_repo)
    cfg = config.load(pillar)
    rels = config.releases(cfg)
    assert set(rels) == RELEASES
    env = {k: str(tmp_path / k) for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")}
    subprocess.run(
        [helm_bin, "repo", "add", "local", chart_repo.url], env=env, check=True, capture_output=True
    )
    failures = {}
    for key, rel in rels.items():
        c = rel.chart
        ref = chart_repo.oci(c.oci) if c.oci else f"local/{c.name}"
        values = tmp_path / f"{key}.json"
        values.write_text(json.dumps(merged_values(rel)))
        out = subprocess.run(
            [helm_bin, "template", rel.release_name or key, ref, "--version", c.version,
             "-n", rel.namespace, "--kube-version", "1.36.3", "-f", str(values)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        docs = [d for d in yaml.safe_load_all(out.stdout) if d] if out.returncode == 0 else []
        if out.returncode or not docs:
            failures[key] = out.stderr.strip()[-600:]
    assert not failures, failures


# --------------------------------------------------------------------------- install


def test_plan_of_the_empty_cluster(installed):
    """test=True before anything is installed: every release an install, every object a
    create (the Cluster and Probe kinds and most namespaces come with the releases), no
    write."""
    res = installed.planned
    assert res["errors"] == {}, res["errors"]
    assert {k: v["action"] for k, v in res["changes"].items() if k in RELEASES} == dict.fromkeys(
        RELEASES, "install"
    )
    dbs, access = res["changes"]["objects:databases"], res["changes"]["objects:access"]
    backups = [f"Secret/{k}/palplat-backup-store" for k in BACKED_UP]
    backups += [f"ScheduledBackup/{k}/{k}-db" for k in BACKED_UP]
    # forgejo's namespace comes first with its generated admin Secret (objects:secrets)
    assert sorted(dbs) == sorted(
        [f"Namespace/{k}" for k in DATABASES - {"forgejo"}]
        + [f"Cluster/{k}/{k}-db" for k in DATABASES] + backups
    )  # fmt: skip
    # what palplat would make in Forgejo (the plan never calls Forgejo)
    assert sorted(res["changes"]["objects:forge"]) == [
        "Forgejo OAuth2 application woodpecker",
        "Forgejo access token palplat-argocd",
        "Secret/forgejo/palplat-forgejo-argocd",
        "Secret/woodpecker/palplat-forgejo-oauth",
    ]
    assert len([k for k in access if k.startswith("Ingress/")]) == len(EXPOSED)
    assert len([k for k in access if k.startswith("Probe/monitoring/")]) == len(EXPOSED)
    # MinIO's backup user's key, Alertmanager's bot token and the admin passwords palplat
    # generates: Secrets made before the releases, their values masked
    assert sorted(res["changes"]["objects:secrets"]) == [
        "Namespace/forgejo",
        "Namespace/harbor",
        "Namespace/minio",
        "Namespace/monitoring",
        "Secret/forgejo/forgejo-admin",
        "Secret/harbor/harbor-admin",
        "Secret/harbor/harbor-secret-key",
        "Secret/minio/minio-backup-user",
        "Secret/monitoring/alertmanager-telegram",
        "Secret/monitoring/grafana-admin",
    ]
    assert "CHANGE-ME" not in json.dumps(res["changes"]["objects:secrets"])
    # DORA's recording rules, alerts and dashboard beside kube-prometheus-stack (docs/dora.md)
    assert sorted(res["changes"]["objects:dora"]) == [
        "ConfigMap/monitoring/palplat-dora-dashboard",
        "PrometheusRule/monitoring/palplat-dora",
    ]
    assert res["kube"]["writes"] == 0
    no_secret(res)


def test_whole_platform_installs_from_the_real_charts(installed):
    res = installed.installed
    if res["errors"]:
        errors = [f"{k}: {v}" for k, v in res["errors"].items()]
        pytest.fail("\n".join(errors + ["progress:"] + installed.events[-60:]), pytrace=False)
    objects = {
        "objects:secrets",
        "objects:databases",
        "objects:access",
        "objects:forge",
        "objects:dora",
    }
    assert set(res["changes"]) == RELEASES | objects
    assert {v["action"] for k, v in res["changes"].items() if k in RELEASES} == {"install"}
    listed = installed.helm_list()
    # the kwok control plane is shared with other tests: look at this platform's releases
    mine = {n: r["status"] for n, r in listed.items() if n in RELEASES}
    assert mine == dict.fromkeys(RELEASES, "deployed")
    no_secret(res)


def test_rollouts_and_claims_are_real(installed):
    """`wait` meant something: every workload rolled out on the kwok nodes, every claim
    bound to a local-path volume."""
    k = installed.kube
    namespaces = {r.namespace for r in config.releases(installed.cfg()).values()}
    for d in k.list("apps/v1", "Deployment"):
        if d["metadata"]["namespace"] in namespaces:
            st, want = d.get("status") or {}, d["spec"].get("replicas", 1)
            assert st.get("availableReplicas", 0) == want, d["metadata"]
    for s in k.list("apps/v1", "StatefulSet"):
        if s["metadata"]["namespace"] in namespaces:
            st, want = s.get("status") or {}, s["spec"].get("replicas", 1)
            assert st.get("readyReplicas", 0) == want, s["metadata"]
    claims = [c for c in k.list("v1", "PersistentVolumeClaim")]
    assert len(claims) >= 5  # minio, loki, harbor (several), woodpecker, ...
    assert {c["status"]["phase"] for c in claims} == {"Bound"}
    assert {c["spec"]["storageClassName"] for c in claims} == {"local-path"}
    minio = k.get("v1", "PersistentVolumeClaim", "minio", "minio")
    assert minio["status"]["capacity"]["storage"] == "200Gi"


def test_wiring(installed):
    """What the example wires together, as installed."""
    k = installed.kube
    # CloudNativePG clusters palplat made; the charts read the Secret CNPG makes
    for key in DATABASES:
        c = k.get("postgresql.cnpg.io/v1", "Cluster", f"{key}-db", key)
        assert c["spec"]["bootstrap"]["initdb"] == {"database": "app", "owner": "app"}
        assert c["metadata"]["labels"]["palplat.io/owner"] == "palplat-platform-databases"
    forgejo = k.get("apps/v1", "Deployment", "forgejo", "forgejo")
    pod = forgejo["spec"]["template"]["spec"]
    env = {
        e["name"]: e for c in pod["initContainers"] + pod["containers"] for e in c.get("env", [])
    }
    assert env["FORGEJO__DATABASE__PASSWD"]["valueFrom"] == {
        "secretKeyRef": {"name": "forgejo-db-app", "key": "password"}
    }
    wp = k.get("apps/v1", "StatefulSet", "woodpecker-server", "woodpecker")
    vols = wp["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "database",
        "secret": {"secretName": "woodpecker-db-app", "defaultMode": 420},
    } in vols
    kc = k.get("apps/v1", "StatefulSet", "keycloak-keycloakx", "keycloak")
    assert "keycloak-db-app" in json.dumps(kc["spec"]["template"]["spec"]["containers"][0]["env"])
    # Loki writes to buckets the MinIO release creates
    script = k.get("v1", "ConfigMap", "minio", "minio")["data"]["initialize"]
    assert "loki-chunks" in script and "loki-ruler" in script
    # Tailscale Funnel ingresses and blackbox probes of the same URLs
    ingresses = k.list("networking.k8s.io/v1", "Ingress", label_selector="palplat.io/owner")
    assert {i["metadata"]["namespace"] for i in ingresses} == {
        config.releases(installed.cfg())[r].namespace for r in EXPOSED
    }
    for i in ingresses:
        assert i["spec"]["ingressClassName"] == "tailscale"
        # every UI on Funnel but MinIO's admin console (tailnet only)
        funnel = (i["metadata"].get("annotations") or {}).get("tailscale.com/funnel")
        assert funnel == (None if i["metadata"]["namespace"] == "minio" else "true"), i["metadata"]
    probes = k.list("monitoring.coreos.com/v1", "Probe", "monitoring")
    _, prober = objects.prober(config.releases(installed.cfg()))
    assert {p["spec"]["prober"]["url"] for p in probes} == {prober}
    urls = {u for p in probes for u in p["spec"]["targets"]["staticConfig"]["static"]}
    hosts = ("minio", "grafana", "forgejo", "woodpecker", "harbor", "keycloak")
    assert urls == {f"https://{h}.tail0000.ts.net" for h in hosts}
    assert k.get("v1", "Service", prober.split(".")[0], "monitoring") is not None
    # Ollama on the GPU node with the nvidia runtime class
    pod = k.list("v1", "Pod", "ollama")[0]
    assert pod["spec"]["runtimeClassName"] == "nvidia"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1" and pod["status"]["phase"] == "Running"
    # Argo CD's credential for the deployments repository is one Secret the services stage
    # makes (test_services); the chart makes none (no second copy of the token)
    assert k.list("v1", "Secret", "argocd", "argocd.argoproj.io/secret-type=repository") == []
    # what palplat made for the first run: admin passwords the charts read (generated),
    # Woodpecker's OAuth client in Forgejo (read by the server's envFrom), Argo CD's token
    for ns, name in (("forgejo", "forgejo-admin"), ("harbor", "harbor-admin"),
                     ("monitoring", "grafana-admin")):  # fmt: skip
        secret = k.get("v1", "Secret", name, ns)
        assert secret["metadata"]["labels"]["palplat.io/owner"] == "palplat-platform-secrets"
    assert json.dumps(forgejo["spec"]["template"]["spec"]).count('"forgejo-admin"') >= 2
    env_from = [
        e["secretRef"]["name"]
        for c in wp["spec"]["template"]["spec"]["containers"]
        for e in c.get("envFrom", [])
    ]
    assert "palplat-forgejo-oauth" in env_from, env_from
    oauth = k.get("v1", "Secret", "palplat-forgejo-oauth", "woodpecker")
    app = installed.forgejo.app_named("woodpecker")
    assert app["redirect_uris"] == ["https://woodpecker.tail0000.ts.net/authorize"]
    assert set(oauth["data"]) == {"WOODPECKER_FORGEJO_CLIENT", "WOODPECKER_FORGEJO_SECRET"}
    assert k.get("v1", "Secret", "palplat-forgejo-argocd", "forgejo") is not None
    assert list(installed.forgejo.tokens) == ["palplat-argocd"]
    # the image updater's registry entry for Harbor
    conf = k.get("v1", "ConfigMap", "argocd-image-updater-config", "argocd")["data"]
    registries = yaml.safe_load(conf["registries.conf"])["registries"]
    assert [(r["prefix"], r["api_url"]) for r in registries] == [
        ("harbor.tail0000.ts.net", "https://harbor.tail0000.ts.net")
    ]


# --------------------------------------------------------------------------- later runs


def test_noop_run_touches_nothing(installed):
    res = installed.run()
    assert res["changes"] == {} and res["errors"] == {}, res
    assert res["helm_calls"] == 1  # helm list; no upgrade, no template
    assert res["kube"]["writes"] == 0
    assert set(res["unchanged"]) == RELEASES


def test_one_value_change_plans_that_field_only(installed):
    pillar = copy.deepcopy(installed.pillar)
    spec = pillar["palplat"]["platform"]["releases"]["kube-prometheus-stack"]["values"]
    spec["prometheus"]["prometheusSpec"]["retention"] = "30d"
    res = installed.run(pillar, test=True)
    assert res["errors"] == {}, res["errors"]
    assert list(res["changes"]) == ["kube-prometheus-stack"]
    change = res["changes"]["kube-prometheus-stack"]
    assert change["action"] == "upgrade" and change["reasons"] == ["values changed"]
    assert change["objects"] == {
        "Prometheus/monitoring/kube-prometheus-stack-prometheus": {
            "spec.retention": {"old": "15d", "new": "30d"}
        }
    }
    assert res["kube"]["writes"] == 0


def test_drift_is_detected_and_corrected(installed):
    k = installed.kube
    k.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "argocd-server", "namespace": "argocd"},
            "spec": {"replicas": 3},
        }
    )
    plan = installed.run(test=True)
    assert list(plan["changes"]) == ["argocd"], plan["changes"]
    change = plan["changes"]["argocd"]
    assert change["action"] == "drift"
    assert change["objects"] == {
        "Deployment/argocd/argocd-server": {"spec.replicas": {"old": 3, "new": 1}}
    }
    fixed = installed.run()
    assert fixed["errors"] == {} and list(fixed["changes"]) == ["argocd"], fixed
    assert k.get("apps/v1", "Deployment", "argocd-server", "argocd")["spec"]["replicas"] == 1
    again = installed.run()
    assert again["changes"] == {} and again["kube"]["writes"] == 0


def test_state_plans_nothing_after_the_run(installed, tmp_path, monkeypatch):
    """The platform stage's state (palplat_platform.converged) through Salt's loader."""
    import salt.config
    import salt.loader

    for key, value in installed.helm_env.items():
        monkeypatch.setenv(key, value)
    opts = salt.config.minion_config(None)
    opts["palplat_plaintext_secrets"] = True  # test pillars hold plain text
    opts.update(
        {
            "file_client": "local",
            "cachedir": str(tmp_path / "cache"),
            **CHECKOUT_DIRS,
            "palplat.helm_bin": installed.helm_bin,
            "test": True,
            "pillar": installed.pillar,
        }
    )
    utils = salt.loader.utils(opts)
    funcs = salt.loader.minion_mods(opts, utils=utils, whitelist=["config", "event", "test"])
    funcs["event.fire"] = lambda *a, **k: True
    states = salt.loader.states(opts, funcs, utils, {})
    ret = states["palplat_platform.converged"]("palplat-platform-releases")
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert "15 release(s) already converged" in ret["comment"]
    no_secret(ret)
