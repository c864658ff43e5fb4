"""Service onboarding against the real kube-apiserver (with the vendor CRDs installed, so
the API server validates every Application, ServiceMonitor, PrometheusRule, Probe, CNPG
Cluster and ScheduledBackup) and the Harbor and Woodpecker contract fakes (every request
and response checked against the vendor documents; any mismatch fails the test)."""

from __future__ import annotations

import base64
import copy
import json
import logging
import uuid

import pytest

from palplat import config, kube, redact
from palplat.services import api, inventory
from palplat.services.resolve import PULL_SECRET, PUSH_SECRET
from tests.support.fakes import platform

why = platform.missing()
pytestmark = [
    pytest.mark.controlplane,
    pytest.mark.skipif(why is not None, reason=f"{why} (../shared/reference is needed)"),
]


@pytest.fixture(scope="module")
def k(kubeconfig):
    client = kube.Kube(kubeconfig)
    platform.install_crds(client)
    # the platform stage makes the argocd namespace (its release); here there is none
    kube.converge(
        client,
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}}],
        owner="test-platform",
        dry_run=False,
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def fakes():
    harbor, wp = platform.start_fakes()
    yield harbor, wp
    harbor.stop()
    wp.stop()


@pytest.fixture(autouse=True)
def contract_kept(request):
    """Every request and response of the test matched the vendor documents."""
    if "fakes" not in request.fixturenames:
        yield
        return
    harbor, wp = request.getfixturevalue("fakes")
    yield
    violations = harbor.violations + wp.violations
    harbor.violations.clear()
    wp.violations.clear()
    harbor.clear_faults()
    wp.clear_faults()
    assert violations == []


def cfg_with(fakes, services: dict):
    p = platform.example()
    defaults = p["services"]["defaults"]
    p["services"] = platform.point_at({"defaults": defaults, **services}, *fakes)
    return config.load({"palplat": p})


def converge(cfg, k, *, dry_run=False, only=None):
    out, problems = api.run(cfg, k, dry_run=dry_run, only=only)
    assert problems == []
    return out


def reset(k, fakes):
    k.stats.update(requests=0, writes=0)
    k.stats["verbs"].clear()
    for f in fakes:
        f.reset_log()


def harbor_writes(fake):
    return [(m, p) for m, p, _ in fake.log if m != "GET"]


def robots_of(fake, project):
    return sorted(r["name"] for r in fake.robots.values() if f"${project}+" in r["name"])


def secret_data(k, ns, name):
    obj = k.get("v1", "Secret", name, ns)
    return {key: base64.b64decode(v).decode() for key, v in (obj or {}).get("data", {}).items()}


# ------------------------------------------------------------- the six example services


def test_example_services_onboard_then_noop_then_one_change(k, fakes, kube_api):
    harbor, wp = fakes
    services = {n: s for n, s in platform.example()["services"].items() if n != "defaults"}
    cfg = cfg_with(fakes, services)
    names = sorted(services)

    # the plan: everything that would be made, and not one write anywhere
    reset(k, fakes)
    plan = converge(cfg, k, dry_run=True)
    assert plan.ok, plan.left()
    assert sorted(plan.changes()) == ["(shared)", *names]
    assert k.stats["writes"] == 0
    assert harbor_writes(harbor) == [] and harbor_writes(wp) == []
    planned = shape(plan.changes())

    # apply: the same changes as the plan
    out = converge(cfg, k)
    assert out.ok, out.left()
    assert shape(out.changes()) == planned

    # what it made
    from kubernetes import client

    ns = client.CoreV1Api(kube_api).read_namespace("pal-e-docs")
    assert ns.metadata.labels["palplat.io/owner"] == "service.pal-e-docs"
    assert ns.metadata.labels["app.kubernetes.io/managed-by"] == "palplat"
    app = k.get("argoproj.io/v1alpha1", "Application", "pal-e-docs", "argocd")
    assert app["spec"]["source"]["path"] == "overlays/pal-e-docs"
    assert k.get("postgresql.cnpg.io/v1", "ScheduledBackup", "pal-e-docs-db", "pal-e-docs")
    assert k.get("monitoring.coreos.com/v1", "Probe", "pal-e-docs", "pal-e-docs")
    assert k.get("v1", "Secret", "basketball-api-secrets", "basketball-api")
    assert sorted(harbor.projects) == names
    for name in names:
        assert robots_of(harbor, name) == [
            f"robot${name}+palplat-pull",
            f"robot${name}+palplat-push",
        ]
        push = harbor.robot_named(f"robot${name}+palplat-push")
        pull = harbor.robot_named(f"robot${name}+palplat-pull")
        stored = secret_data(k, name, PUSH_SECRET)
        assert stored["password"] == harbor.robot_secrets[push["id"]]
        docker = json.loads(secret_data(k, name, PULL_SECRET)[".dockerconfigjson"])
        auth = docker["auths"]["harbor.tail0000.ts.net"]
        assert auth["password"] == harbor.robot_secrets[pull["id"]]
        repo = wp.repo_named(services[name]["repo"])
        assert repo["active"] is True
        ci = {n: s["value"] for n, s in wp.secrets[repo["id"]].items()}
        assert ci == {
            "registry": "harbor.tail0000.ts.net",
            "registry_username": push["name"],
            "registry_password": harbor.robot_secrets[push["id"]],
        }

    # no-op: no write anywhere, one LIST per kind, constant Harbor requests
    reset(k, fakes)
    out = converge(cfg, k)
    assert out.ok and out.changes() == {}
    assert k.stats["writes"] == 0
    assert k.stats["requests"] == len(inventory.KINDS), dict(k.stats["verbs"])
    assert harbor_writes(harbor) == [] and harbor_writes(wp) == []
    assert len(harbor.log) == 2  # projects, robots
    assert len(wp.log) == 1 + len(names)  # repositories, then each one's secrets
    assert converge(cfg, k, dry_run=True).changes() == {}

    # one entry changes: only that service's objects are written
    services["pal-e-app"]["port"] = 3001
    cfg = cfg_with(fakes, services)
    writes = []
    request = k.request

    def recording(method, path, **kw):
        if method in ("PATCH", "POST", "PUT", "DELETE") and not any(
            q == "dryRun" for q, _ in kw.get("query") or []
        ):
            writes.append(path)
        return request(method, path, **kw)

    k.request = recording
    try:
        out = converge(cfg, k)
    finally:
        del k.request
    assert list(out.changes()) == ["pal-e-app"]
    assert set(out.changes()["pal-e-app"]) == {
        "Ingress/pal-e-app/pal-e-app",
        "NetworkPolicy/pal-e-app/palplat-allow-tailscale",
    }
    assert writes and all("/namespaces/pal-e-app/" in p for p in writes), writes


# ------------------------------------------------------- partial failure and recovery


def test_partial_failure_then_rerun_finishes_without_duplicates(k, fakes):
    harbor, wp = fakes
    services = {
        "pf-a": {
            "repo": "pf/a",
            "port": 8080,
            "funnel": True,
            "database": {"size": "1Gi", "backup": {"schedule": "0 30 2 * * *"}},
        },
        "pf-b": {"repo": "pf/b", "port": 9090, "secrets": {"TOKEN": "pf-b-" + uuid.uuid4().hex}},
    }
    cfg = cfg_with(fakes, services)

    # Harbor down, Woodpecker refusing the token: everything else converges
    wp.fail("*", r".*", 401)
    with harbor.down():
        out = converge(cfg, k, only=["pf-a", "pf-b"])
    assert not out.ok
    left = "\n".join(out.left())
    for name in ("pf-a", "pf-b"):
        where = f"palplat:services:{name}"
        assert f"{where} registry: Harbor: GET /projects: cannot reach Harbor" in left
        assert f"{where} ci: Woodpecker: GET /user/repos: Woodpecker answered 401" in left
    assert k.get("argoproj.io/v1alpha1", "Application", "pf-a", "argocd")
    assert k.get("postgresql.cnpg.io/v1", "Cluster", "pf-a-db", "pf-a")
    assert k.get("v1", "Secret", "pf-b-secrets", "pf-b")
    assert "pf-a" not in harbor.projects and not robots_of(harbor, "pf-a")
    wp.clear_faults()

    # Harbor answers 500 to robot creation, Woodpecker 409 to activation
    harbor.fail("POST", r"/robots$", 500)
    wp.fail("POST", r"/repos$", 409)
    out = converge(cfg, k, only=["pf-a", "pf-b"])
    left = "\n".join(out.left())
    assert "palplat:services:pf-a registry: Harbor: POST /robots: Harbor answered 500" in left
    assert "palplat:services:pf-a ci: Woodpecker: POST /repos: Woodpecker answered 409" in left
    assert set(out.results["pf-a"].failed) == {"registry", "ci"}
    assert "pf-a" in harbor.projects  # the project was made
    harbor.clear_faults()
    wp.clear_faults()

    # the re-run finishes: one project, two robots, three CI secrets each
    out = converge(cfg, k, only=["pf-a", "pf-b"])
    assert out.ok, out.left()
    for name, repo in (("pf-a", "pf/a"), ("pf-b", "pf/b")):
        assert list(harbor.projects).count(name) == 1
        assert len(robots_of(harbor, name)) == 2
        assert len(wp.secrets[wp.repo_named(repo)["id"]]) == 3
    assert converge(cfg, k, only=["pf-a", "pf-b"]).changes() == {}

    # a lost robot Secret: the robot's secret is refreshed, no second robot
    pull = harbor.robot_named("robot$pf-a+palplat-pull")
    old = harbor.robot_secrets[pull["id"]]
    k.delete("v1", "Secret", PULL_SECRET, "pf-a")
    out = converge(cfg, k, only=["pf-a", "pf-b"])
    assert out.ok
    assert out.changes()["pf-a"]["Harbor robot robot$pf-a+palplat-pull"]["new"] == (
        "secret refreshed into it"
    )
    assert robots_of(harbor, "pf-a") == ["robot$pf-a+palplat-pull", "robot$pf-a+palplat-push"]
    new = harbor.robot_secrets[pull["id"]]
    assert new != old
    docker = json.loads(secret_data(k, "pf-a", PULL_SECRET)[".dockerconfigjson"])
    assert docker["auths"]["harbor.tail0000.ts.net"]["password"] == new

    # a pipeline secret deleted in Woodpecker is set again
    rid = wp.repo_named("pf/b")["id"]
    del wp.secrets[rid]["registry_password"]
    out = converge(cfg, k, only=["pf-a", "pf-b"])
    assert set(out.changes()["pf-b"]) == {"Woodpecker secret pf/b:registry_password"}
    assert "registry_password" in wp.secrets[rid]


# ------------------------------------------------------------------ orphans, offboarding


def test_orphans_are_reported_and_offboarding_keeps_data(k, fakes):
    harbor, wp = fakes
    services = {
        "ob-keep": {"repo": "ob/keep", "port": 80, "funnel": True, "database": {"size": "1Gi"}},
        "ob-data": {"repo": "ob/data", "port": 80, "database": {"size": "1Gi"}},
        "ob-gone": {"repo": "ob/gone", "port": 80, "metrics": {}},
    }
    cfg = cfg_with(fakes, services)
    assert converge(cfg, k).ok
    harbor.add_repository("ob-keep", "web")
    harbor.add_repository("ob-data", "web")

    # an entry removed from the pillar: reported as orphaned, left alone
    gone = services.pop("ob-gone")
    cfg = cfg_with(fakes, services)
    reset(k, fakes)
    plan = converge(cfg, k, dry_run=True)
    assert "Namespace/ob-gone" in plan.orphans["ob-gone"]
    assert "Harbor robot robot$ob-gone+palplat-push" in plan.orphans["ob-gone"]
    assert "ob-gone" not in plan.changes()
    out = converge(cfg, k)
    assert "ob-gone" in out.orphans
    assert any("orphaned: 'ob-gone'" in line for line in out.comment(False))
    assert k.stats["writes"] == 0 and harbor_writes(harbor) == [] and harbor_writes(wp) == []
    assert k.get("v1", "Namespace", "ob-gone")
    assert k.get("monitoring.coreos.com/v1", "ServiceMonitor", "ob-gone", "ob-gone")
    assert len(robots_of(harbor, "ob-gone")) == 2

    # absent: delivery, ingress, monitoring, CI and robots go; the data stays
    services["ob-keep"]["absent"] = True
    cfg = cfg_with(fakes, services)
    plan = converge(cfg, k, dry_run=True, only=["ob-keep"])
    assert k.get("argoproj.io/v1alpha1", "Application", "ob-keep", "argocd")  # dry run
    out = converge(cfg, k, only=["ob-keep"])
    assert out.ok, out.left()
    assert set(out.changes()["ob-keep"]) == set(plan.changes()["ob-keep"])
    assert k.get("argoproj.io/v1alpha1", "Application", "ob-keep", "argocd") is None
    assert k.get("networking.k8s.io/v1", "Ingress", "ob-keep", "ob-keep") is None
    assert k.get("monitoring.coreos.com/v1", "PrometheusRule", "ob-keep", "ob-keep") is None
    assert k.get("v1", "Secret", PUSH_SECRET, "ob-keep") is None
    assert robots_of(harbor, "ob-keep") == []
    repo = wp.repo_named("ob/keep")
    assert repo["active"] is False and not wp.secrets.get(repo["id"])
    assert k.get("v1", "Namespace", "ob-keep")
    assert k.get("postgresql.cnpg.io/v1", "Cluster", "ob-keep-db", "ob-keep")
    assert "ob-keep" in harbor.projects and harbor.repositories["ob-keep"]
    kept = "\n".join(out.results["ob-keep"].kept)
    assert "Cluster/ob-keep/ob-keep-db" in kept
    assert "Harbor project ob-keep with 1 repository" in kept
    assert converge(cfg, k, only=["ob-keep"]).changes() == {}

    # absent with delete_data: the namespace and the Harbor project go too
    services["ob-data"].update(absent=True, delete_data=True)
    cfg = cfg_with(fakes, services)
    out = converge(cfg, k, only=["ob-data"])
    assert out.ok, out.left()
    assert "Namespace/ob-data" in out.changes()["ob-data"]
    assert "Harbor project ob-data" in out.changes()["ob-data"]
    live_ns = k.get("v1", "Namespace", "ob-data")
    assert live_ns is None or live_ns["metadata"].get("deletionTimestamp")
    assert "ob-data" not in harbor.projects
    assert converge(cfg, k, only=["ob-data"]).changes() == {}
    services["ob-gone"] = gone  # back in the pillar: adopted, not duplicated
    out = converge(cfg_with(fakes, services), k, only=["ob-gone"])
    assert out.ok and len(robots_of(harbor, "ob-gone")) == 2


# ------------------------------------------------------------- through Salt, secrets


@pytest.fixture(scope="module")
def loaders(kubeconfig, tmp_path_factory):
    import salt.config
    from saltfactories.utils.functional import Loaders

    from tests.support.saltenv import CHECKOUT_DIRS

    root = tmp_path_factory.mktemp("service-minion")
    for d in ("srv", "pillar"):
        (root / d).mkdir()
    opts = salt.config.minion_config(None)
    opts["palplat_plaintext_secrets"] = True  # test pillars hold plain text
    opts.update(
        id="service-functional",
        root_dir=str(root),
        cachedir=str(root / "cache"),
        pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"),
        extension_modules=str(root / "extmods"),
        log_file=str(root / "minion.log"),
        file_client="local",
        file_roots={"base": [str(root / "srv")]},
        pillar_roots={"base": [str(root / "pillar")]},
        **CHECKOUT_DIRS,
    )
    return Loaders(opts)


def shape(changes):
    """Changed objects and fields, without the values."""
    return {
        svc: {key: sorted(fields) for key, fields in objs.items()} for svc, objs in changes.items()
    }


@pytest.mark.salt
def test_secrets_never_shown_through_salt(loaders, k, fakes, kubeconfig, caplog, monkeypatch):
    from palplat import loaderkit
    from tests.support.saltenv import ArgvWatcher, find_secrets

    harbor, wp = fakes
    caplog.set_level(logging.DEBUG)
    events = []
    monkeypatch.setattr(
        loaderkit, "salt_fire", lambda *a: lambda data, tag: events.append((tag, data))
    )
    svc_secret = "svc-secret-" + uuid.uuid4().hex
    p = platform.example()
    p["k3s"] = {"mode": "external", "kubeconfig": kubeconfig}
    p["services"] = platform.point_at(
        {
            "defaults": p["services"]["defaults"],
            "leak-a": {"repo": "leak/a", "port": 80, "secrets": {"API_KEY": svc_secret}},
        },
        harbor,
        wp,
    )
    p["services"]["defaults"]["deployments_credentials"]["password"] = "repo-pw-" + uuid.uuid4().hex
    loaders.opts["pillar"] = {"palplat": copy.deepcopy(p)}
    state = loaders.states.palplat_service
    mod = loaders.modules.palplat_service
    with ArgvWatcher() as argv:
        planned = state.onboarded("palplat-services", services=["leak-a"], test=True)
        applied = state.onboarded("palplat-services", services=["leak-a"])
        again = state.onboarded("palplat-services", services=["leak-a"])
        outputs = [
            planned,
            applied,
            again,
            mod.plan(services=["leak-a"]),
            mod.render("leak-a"),
            mod.objects("leak-a"),
            mod.status(),
            kube.masked(k.get("v1", "Secret", PULL_SECRET, "leak-a")),
        ]
    assert planned.result is None and applied.result is True, applied.comment
    # the plan shows what the run did, field by field (values Harbor assigns aside)
    assert shape(planned.changes) == shape(applied.changes)
    assert again.result is True and again.changes == {}
    assert planned.raw[next(iter(planned.raw))]["palplat"]["add"] == ["leak-a"]
    (row,) = [r for r in outputs[6] if r["service"] == "leak-a"]
    # converged; not healthy: no Argo CD controller here fills in the Application's status
    assert row["state"] == "converged" and row["app"] == "Unknown/Unknown", row
    assert row["healthy"] is False and "Application Unknown/Unknown" in row["problems"]
    assert outputs[4]["secrets"][0]["stringData"]["API_KEY"] == "<hidden>"
    assert "registry" in outputs[5]
    robots = [
        s for rid, s in harbor.robot_secrets.items() if "leak-a" in harbor.robots[rid]["name"]
    ]
    assert len(robots) == 2
    d = p["services"]["defaults"]
    secrets = [
        svc_secret,
        *robots,
        d["harbor"]["password"],
        d["woodpecker"]["token"],
        d["deployments_credentials"]["password"],
        d["object_store"]["access_key"],
        d["object_store"]["secret_key"],
    ]
    secrets += [base64.b64encode(s.encode()).decode() for s in (svc_secret, *robots)]
    leaks = find_secrets(
        secrets,
        returns=[o.__dict__ if hasattr(o, "__dict__") else o for o in outputs],
        logs=caplog.text,
        events=events,
        argv=sorted(argv.seen),
    )
    assert "PATCH" in caplog.text or events  # there was something to leak
    assert not leaks, leaks
    redact.clear()


# ------------------------------------------------------- what palplat cannot make itself


def test_without_woodpecker_token_ci_waits_for_the_operator_and_the_rest_converges(k, fakes):
    """Woodpecker's API token needs a browser login: without it the CI part waits, says
    the exact next step and URL, and every other part converges; the run is not a
    failure, and once the token is there a re-run finishes CI."""
    harbor, wp = fakes
    name = f"wait-{uuid.uuid4().hex[:6]}"
    p = platform.example()
    defaults = p["services"]["defaults"]
    services = platform.point_at(
        {"defaults": defaults, name: {"repo": f"w/{name}", "port": 80}}, *fakes
    )
    token = services["defaults"]["woodpecker"].pop("token")
    p["services"] = services
    cfg = config.load({"palplat": p})
    reset(k, fakes)
    plan = converge(cfg, k, dry_run=True)
    assert plan.ok and plan.results[name].waiting.keys() == {"ci"}
    out = converge(cfg, k)
    try:
        res = out.results[name]
        assert out.ok and res.failed == {} and set(res.waiting) == {"ci"}
        why = res.waiting["ci"]
        assert why.startswith("waiting for the operator: sign in to Woodpecker at ")
        assert f"{wp.url}/user/cli-and-api" in why
        assert "palplat:services:defaults:woodpecker:token" in why
        assert "kubectl -n forgejo get secret forgejo-admin" in why
        assert wp.log == []  # Woodpecker was not asked anything
        # the rest converged: namespace, registry (Harbor robots), delivery
        assert k.get("v1", "Namespace", name) is not None
        assert secret_data(k, name, PULL_SECRET)
        assert any("waiting for the operator" in line for line in out.comment(False))
        (row,) = [r for r in out.status() if r["service"] == name]
        assert row["state"] == "waiting for the operator: ci" and row["healthy"] is False
        assert "waiting for the operator (ci)" in row["problems"]
        # the operator made the token: CI converges, nothing else changes
        services["defaults"]["woodpecker"]["token"] = token
        cfg = config.load({"palplat": p})
        again = converge(cfg, k, only=[name])
        assert again.ok and again.results[name].waiting == {}
        assert set(again.results[name].changes) <= {
            f"Woodpecker repo w/{name}",
            *(
                f"Woodpecker secret w/{name}:{s}"
                for s in ("registry", "registry_username", "registry_password")
            ),
            f"Secret/{name}/{PUSH_SECRET}",
        }, sorted(again.results[name].changes)
        assert wp.repo_named(f"w/{name}")["active"] is True
    finally:
        p["services"][name]["absent"] = True
        p["services"][name]["delete_data"] = True
        converge(config.load({"palplat": p}), k, only=[name])
