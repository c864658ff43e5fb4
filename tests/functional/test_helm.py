"""palplat_helm against real helm (v3.22) and the real kube-apiserver of tests/support.

No kubelet runs, so the test charts hold only ConfigMaps, Secrets, Services and custom
resources; that is enough for helm's --atomic --wait to succeed.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from palplat import config, helm, kube, loaderkit, proc, redact
from tests.support.saltenv import CHECKOUT_DIRS

pytestmark = [pytest.mark.controlplane, pytest.mark.helm]

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "tests" / "fixtures" / "charts"
SECRET = "pw-Zq81-never-shown"  # a secret_values leaf every test searches for


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory):
    d = tmp_path_factory.mktemp("helmhome")
    return {
        "HELM_CACHE_HOME": str(d / "cache"),
        "HELM_CONFIG_HOME": str(d / "config"),
        "HELM_DATA_HOME": str(d / "data"),
    }


class Recorder:
    """Records every argv and event (to search them for secrets)."""

    def __init__(self):
        self.argv: list[list[str]] = []
        self.events: list[tuple[dict, str]] = []

    def runner(self, argv, **kw):
        self.argv.append(list(argv))
        return proc.run(argv, **kw)

    def fire(self, data, tag):
        self.events.append((data, tag))
        return True


@pytest.fixture
def rec():
    return Recorder()


@pytest.fixture
def run(kubeconfig, helm_bin, helm_env, rec):
    """run(releases, test=False, **platform) -> converge result (a fresh context per run)."""

    def _run(releases: dict, test: bool = False, only=None, **platform):
        pillar = {
            "palplat": {
                "gpu": {"enabled": False},
                "k3s": {"kubeconfig": kubeconfig},
                "platform": {"releases": releases, **platform},
            }
        }
        cfg = config.load(pillar)
        progress = loaderkit.Progress(rec.fire, "helm")
        ctx = helm.context_for(cfg, helm_bin=helm_bin, helm_env=helm_env, progress=progress)
        ctx.helm.runner = rec.runner
        before = dict(proc.STATS["by_program"])
        try:
            res = helm.converge(config.releases(cfg), ctx, test=test, only=only)
        finally:
            ctx.kube.close()
        res["helm_calls"] = proc.STATS["by_program"].get("helm", 0) - before.get("helm", 0)
        res["kube"] = ctx.kube.stats
        return res

    return _run


def cm_release(ns, **values):
    return {
        "namespace": ns,
        "chart": {"path": str(CHARTS / "cm")},
        "values": {"greeting": "hello", **values},
        "secret_values": {"password": SECRET},
        "wait": False,
    }


def get(kube_api, api, kind, name, ns=None):
    k = kube.Kube(api_client=kube_api)
    return k.get(api, kind, name, ns)


def helm_list(helm_bin, kubeconfig, helm_env, ns):
    out = subprocess.run(
        [helm_bin, "list", "-n", ns, "-a", "-o", "json", "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        env={**helm_env, "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    return {r["name"]: r for r in json.loads(out)}


def no_secret(*things):
    text = json.dumps(things, default=str)
    assert SECRET not in text


# ----------------------------------------------------------------------------- tests


def test_install_noop_values_change_drift(run, namespace, kube_api, rec):
    rels = {"app": cm_release(namespace)}
    plan = run(rels, test=True)
    assert plan["errors"] == {}
    assert plan["changes"]["app"]["action"] == "install"
    objs = plan["changes"]["app"]["objects"]
    assert set(objs) == {
        f"ConfigMap/{namespace}/app-config",
        f"Secret/{namespace}/app-secret",
        f"Service/{namespace}/app-svc",
    }
    assert get(kube_api, "v1", "ConfigMap", "app-config", namespace) is None  # test changed nothing

    res = run(rels)
    assert res["errors"] == {}
    assert res["changes"]["app"]["objects"] == objs  # same changes as test mode
    assert res["changes"]["app"]["revision"] == 1
    live = get(kube_api, "v1", "Secret", "app-secret", namespace)
    import base64

    assert base64.b64decode(live["data"]["password"]).decode() == SECRET

    # no-op: one helm call (the listing), no write
    noop = run(rels)
    assert noop["changes"] == {} and noop["unchanged"] == ["app"]
    assert noop["helm_calls"] == 1
    assert noop["kube"]["writes"] == 0

    # values change: the diff shows only that field
    rels2 = {"app": cm_release(namespace, greeting="bye")}
    plan = run(rels2, test=True)
    assert plan["changes"]["app"]["action"] == "upgrade"
    assert plan["changes"]["app"]["reasons"] == ["values changed"]
    assert plan["changes"]["app"]["objects"] == {
        f"ConfigMap/{namespace}/app-config": {"data.greeting": {"old": "hello", "new": "bye"}}
    }
    res = run(rels2)
    assert res["changes"]["app"]["objects"] == plan["changes"]["app"]["objects"]
    assert res["changes"]["app"]["revision"] == 2
    assert get(kube_api, "v1", "ConfigMap", "app-config", namespace)["data"]["greeting"] == "bye"

    # drift: a hand edit is reported in test mode and corrected on apply
    k = kube.Kube(api_client=kube_api)
    k.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/app-config",
        body={"data": {"greeting": "HAND-EDIT"}},
        content_type="application/merge-patch+json",
    )
    k.delete("v1", "Service", "app-svc", namespace)
    plan = run(rels2, test=True)
    assert plan["changes"]["app"]["action"] == "drift"
    assert plan["helm_calls"] == 1
    objs = plan["changes"]["app"]["objects"]
    assert objs[f"ConfigMap/{namespace}/app-config"] == {
        "data.greeting": {"old": "HAND-EDIT", "new": "bye"}
    }
    assert f"Service/{namespace}/app-svc" in objs
    res = run(rels2)
    assert res["errors"] == {} and res["changes"]["app"]["action"] == "drift"
    assert get(kube_api, "v1", "ConfigMap", "app-config", namespace)["data"]["greeting"] == "bye"
    assert get(kube_api, "v1", "Service", "app-svc", namespace) is not None
    assert run(rels2)["changes"] == {}

    # a hand-edited Secret: reported, masked, corrected
    k.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/secrets/app-secret",
        body={"stringData": {"password": "tampered"}},
        content_type="application/merge-patch+json",
    )
    plan = run(rels2, test=True)
    assert plan["changes"]["app"]["objects"] == {
        f"Secret/{namespace}/app-secret": {"data.password": {"old": "<hidden>", "new": "<hidden>"}}
    }
    run(rels2)
    live = get(kube_api, "v1", "Secret", "app-secret", namespace)
    assert base64.b64decode(live["data"]["password"]).decode() == SECRET
    no_secret(plan, res, rec.events, rec.argv)


def test_failed_upgrade_rolls_back(run, namespace, kube_api, helm_bin, kubeconfig, helm_env):
    rels = {"fail": {**cm_release(namespace), "wait": True, "timeout": 60}}
    assert run(rels)["errors"] == {}
    bad = {
        "fail": {**cm_release(namespace, greeting="new", broken=True), "wait": True, "timeout": 60}
    }
    res = run(bad)
    err = res["errors"]["fail"]
    assert "rolled back" in err and "Not_A_Valid_Name" in err  # helm's own error
    assert "revision 3" in err  # 1 installed, 2 failed, 3 = the rollback
    listed = helm_list(helm_bin, kubeconfig, helm_env, namespace)
    assert listed["fail"]["status"] == "deployed" and listed["fail"]["revision"] == "3"
    assert get(kube_api, "v1", "ConfigMap", "fail-config", namespace)["data"]["greeting"] == "hello"
    # the next run still sees the change (the fingerprint was not stored)
    assert run(bad, test=True)["changes"]["fail"]["action"] == "upgrade"
    # wait: false releases have no --atomic (it implies --wait): rolled back by palplat
    nowait = {"fail": cm_release(namespace, greeting="new", broken=True)}
    res = run(nowait)
    assert "rolled back" in res["errors"]["fail"]
    assert helm_list(helm_bin, kubeconfig, helm_env, namespace)["fail"]["status"] == "deployed"
    assert get(kube_api, "v1", "ConfigMap", "fail-config", namespace)["data"]["greeting"] == "hello"


def test_crd_chart_then_cr_chart(run, namespace, kube_api):
    rels = {
        "widget": {
            "namespace": namespace,
            "chart": {"path": str(CHARTS / "widget")},
            "values": {"size": 4},
            "needs": ["crds"],
            "wait": False,
        },
        "crds": {"namespace": namespace, "chart": {"path": str(CHARTS / "crd")}, "wait": False},
    }
    plan = run(rels, test=True)
    assert plan["errors"] == {}
    assert "CustomResourceDefinition/widgets.test.palplat.dev" in plan["changes"]["crds"]["objects"]
    assert f"Widget/{namespace}/widget" in plan["changes"]["widget"]["objects"]
    res = run(rels)
    assert res["errors"] == {}, res["errors"]
    crd = get(
        kube_api, "apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.test.palplat.dev"
    )
    managers = {m["manager"] for m in crd["metadata"]["managedFields"]}
    assert "palplat" in managers  # server-side apply, not helm's crds/ install
    assert get(kube_api, "test.palplat.dev/v1", "Widget", "widget", namespace)["spec"]["size"] == 4
    assert run(rels)["changes"] == {}
    # uninstalling the CRD chart never deletes the CRD (or the custom resources)
    rels["crds"]["enabled"] = False
    rels["widget"]["needs"] = []
    assert run(rels)["errors"] == {}
    assert get(
        kube_api, "apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.test.palplat.dev"
    )


CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
GADGETS = "gadgets.test.palplat.dev"


def gadgets(ns, **values):
    return {
        "namespace": ns,
        "chart": {"path": str(CHARTS / "gadgets")},
        "values": values,
        "wait": False,
    }


def test_crds_of_enabled_subcharts_first_then_quiet_plans(run, namespace, kube_api):
    """The real charts' defects in one small chart (tests/fixtures/charts/gadgets)."""
    rels = {"gad": gadgets(namespace)}
    plan = run(rels, test=True)
    assert plan["errors"] == {}, plan["errors"]
    change = plan["changes"]["gad"]
    objs = change["objects"]
    # only the enabled subchart's CRDs (`helm show crds` also lists the disabled one's)
    assert [k for k in objs if k.startswith("CustomResourceDefinition/")] == [
        f"CustomResourceDefinition/{GADGETS}"
    ]
    assert objs[f"CustomResourceDefinition/{GADGETS}"]["."]["new"]["spec"]["versions"] == ["v1"]
    # its custom resource is planned before its CRD exists: rendered client-side, said so
    assert objs[f"Gadget/{namespace}/gad"]["."]["new"]["spec"]["op"] == "="
    assert any("rendered client-side" in r and GADGETS in r for r in change["reasons"])
    assert f"ClusterRole/{namespace}-gad-reader" in objs  # cluster-scoped: no namespace
    assert f"ConfigMap/{namespace}/gad-config" in objs  # `namespace: ` (empty) -> release's
    assert get(kube_api, *CRD, GADGETS) is None  # test mode changed nothing

    res = run(rels)
    assert res["errors"] == {}, res["errors"]
    crd = get(kube_api, *CRD, GADGETS)
    assert crd["metadata"]["labels"][kube.OWNER_LABEL] == "helm-crds.gad"
    assert get(kube_api, *CRD, "gizmos.test.palplat.dev") is None  # disabled subchart
    assert get(kube_api, "test.palplat.dev/v1", "Gadget", "gad", namespace)["spec"]["op"] == "="
    assert get(kube_api, "v1", "ConfigMap", "gad-config", namespace)["data"]["operator"] == "="
    # the fingerprint was stored (the verification found the empty-namespace ConfigMap)
    assert get(kube_api, "v1", "Secret", helm.store_name("gad"), namespace) is not None
    noop = run(rels)
    assert noop["changes"] == {} and noop["helm_calls"] == 1 and noop["kube"]["writes"] == 0

    # one value changes: the plan shows that field and nothing else (no namespace on the
    # ClusterRole, no `publishNotReadyAddresses: false` the server omits, no CRD)
    rels = {"gad": gadgets(namespace, greeting="bye")}
    plan = run(rels, test=True)
    assert plan["changes"]["gad"]["reasons"] == ["values changed"]
    assert plan["changes"]["gad"]["objects"] == {
        f"ConfigMap/{namespace}/gad-config": {"data.greeting": {"old": "hello", "new": "bye"}}
    }
    res = run(rels)
    assert (
        res["errors"] == {}
        and res["changes"]["gad"]["objects"] == plan["changes"]["gad"]["objects"]
    )

    # another release whose enabled subchart ships an older copy of the CRD: left alone
    old = {
        "old": gadgets(
            namespace, **{"gadget-crds": {"enabled": False}, "legacy": {"enabled": True}}
        )
    }
    plan = run(old, test=True)
    assert plan["errors"] == {}, plan["errors"]
    assert (
        f"CustomResourceDefinition/{GADGETS}: left alone: owned by release {namespace}/gad "
        "(palplat owner helm-crds.gad)"
    ) in plan["changes"]["old"]["reasons"]
    assert f"CustomResourceDefinition/{GADGETS}" not in plan["changes"]["old"]["objects"]
    res = run(old)
    assert res["errors"] == {}, res["errors"]
    crd = get(kube_api, *CRD, GADGETS)
    assert crd["metadata"]["labels"][kube.OWNER_LABEL] == "helm-crds.gad"
    assert crd["metadata"]["annotations"][f"{GADGETS}/version"] == "2.0.0"  # not downgraded
    gizmos = get(kube_api, *CRD, "gizmos.test.palplat.dev")
    assert gizmos["metadata"]["labels"][kube.OWNER_LABEL] == "helm-crds.old"
    assert run({**rels, **old})["changes"] == {}


def test_uninstall(run, namespace, kube_api, helm_bin, kubeconfig, helm_env):
    rels = {"gone": cm_release(namespace)}
    run(rels)
    rels["gone"]["enabled"] = False
    plan = run(rels, test=True)
    assert plan["changes"]["gone"]["action"] == "uninstall"
    assert f"ConfigMap/{namespace}/gone-config" in plan["changes"]["gone"]["objects"]
    assert "gone" in helm_list(helm_bin, kubeconfig, helm_env, namespace)
    res = run(rels)
    assert res["errors"] == {}
    assert "gone" not in helm_list(helm_bin, kubeconfig, helm_env, namespace)
    assert get(kube_api, "v1", "Secret", helm.store_name("gone"), namespace) is None
    again = run(rels)
    assert again["changes"] == {} and again["helm_calls"] == 1


def test_schema_rejects_values(run, namespace, helm_bin, kubeconfig, helm_env):
    rels = {
        "sch": {
            "namespace": namespace,
            "chart": {"path": str(CHARTS / "schema")},
            "values": {"replicas": 9},
            "wait": False,
        }
    }
    for test in (True, False):
        res = run(rels, test=test)
        assert "maximum" in res["errors"]["sch"], res["errors"]
        # in test mode already, and before anything changes: helm's message, the values' path
        assert "palplat:platform:releases:sch:values: " in res["errors"]["sch"]
    assert "sch" not in helm_list(helm_bin, kubeconfig, helm_env, namespace)


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory, helm_bin):
    """The `cm` chart packaged and indexed (helm package + helm repo index)."""
    d = tmp_path_factory.mktemp("repo")
    subprocess.run(
        [helm_bin, "package", str(CHARTS / "cm"), "-d", str(d)], check=True, capture_output=True
    )
    subprocess.run([helm_bin, "repo", "index", str(d)], check=True, capture_output=True)
    return d


class Served:
    """``directory`` served over http://127.0.0.1; ``paths``: the paths asked for."""

    def __init__(self, directory):
        served = self
        self.paths: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(directory), **kw)

            def log_message(self, *args):
                served.paths.append(self.path)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture(scope="module")
def chart_repo(repo_dir):
    """A helm repository served over http://127.0.0.1."""
    srv = Served(repo_dir)
    yield srv.url
    srv.stop()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_repository_chart_versions_and_unreachable(run, namespace, chart_repo, kube_api):
    ok = {
        "namespace": namespace,
        "chart": {"repo": chart_repo, "name": "cm", "version": "0.1.0"},
        "wait": False,
    }
    res = run({"repo": ok})
    assert res["errors"] == {}
    assert get(kube_api, "v1", "ConfigMap", "repo-config", namespace) is not None
    noop = run({"repo": ok})
    assert noop["changes"] == {} and noop["helm_calls"] == 1

    unknown = {**ok, "chart": {**ok["chart"], "version": "9.9.9"}}
    res = run({"repo": unknown})
    err = res["errors"]["repo"]
    assert "palplat:platform:releases:repo:chart" in err and "no version 9.9.9" in err
    assert "0.1.0" in err  # names what exists
    assert res["helm_calls"] == 1  # rejected before any helm change

    down = {**ok, "chart": {**ok["chart"], "repo": f"http://127.0.0.1:{_closed_port()}"}}
    res = run({"other": {**down}})
    assert "unreachable" in res["errors"]["other"]
    assert get(kube_api, "v1", "ConfigMap", "other-config", namespace) is None


def test_mirror_serves_the_chart_and_is_not_in_the_fingerprint(
    run, namespace, repo_dir, chart_repo, kube_api, rec
):
    # an air-gapped host: the pinned repository is unreachable, a mirror serves its charts
    upstream = "https://charts.upstream.invalid/stable"
    chart = {"repo": upstream, "name": "cm", "version": "0.1.0"}
    rels = {"mir": {**cm_release(namespace), "chart": chart}}
    res = run(rels, mirrors={upstream: chart_repo})
    assert res["errors"] == {}, res["errors"]
    assert get(kube_api, "v1", "ConfigMap", "mir-config", namespace)["data"]["greeting"] == "hello"
    assert res["changes"]["mir"]["chart"] == f"{upstream}#cm 0.1.0"  # the release's own source
    # another mirror of the same repository: nothing to upgrade (digest checked against it)
    other = Served(repo_dir)
    try:
        noop = run(rels, mirrors={upstream + "/": other.url + "/"})
    finally:
        other.stop()
    assert noop["errors"] == {} and noop["changes"] == {} and noop["helm_calls"] == 1
    assert "/index.yaml" in other.paths
    assert not [a for a in rec.argv if any("upstream.invalid" in x for x in a)]  # mirror only


def test_parallel_wave_and_needs(run, namespace, kube_api):
    rels = {f"p{i}": cm_release(namespace, greeting=f"g{i}") for i in range(4)}
    rels["last"] = {**cm_release(namespace), "needs": [f"p{i}" for i in range(4)]}
    res = run(rels, parallel=4)
    assert res["errors"] == {} and len(res["changes"]) == 5
    assert run(rels, parallel=4)["helm_calls"] == 1


# ----------------------------------------------------------------- through Salt's loader


@pytest.fixture
def salt_states(kubeconfig, helm_bin, helm_env, tmp_path, rec, monkeypatch):
    import salt.config
    import salt.loader

    for k, v in helm_env.items():
        monkeypatch.setenv(k, v)
    real = subprocess.run

    def recording(argv, *a, **kw):
        rec.argv.append([str(x) for x in argv] if isinstance(argv, (list, tuple)) else [argv])
        return real(argv, *a, **kw)

    monkeypatch.setattr(proc.subprocess, "run", recording)
    opts = salt.config.minion_config(None)
    opts["palplat_plaintext_secrets"] = True  # test pillars hold plain text
    opts.update(
        {
            "file_client": "local",
            "cachedir": str(tmp_path / "cache"),
            **CHECKOUT_DIRS,
            "palplat.helm_bin": helm_bin,
        }
    )

    def make(pillar: dict, test: bool):
        o = dict(opts, test=test, pillar=pillar)
        utils = salt.loader.utils(o)
        funcs = salt.loader.minion_mods(
            o, utils=utils, whitelist=["config", "event", "test", "palplat_helm"]
        )
        funcs["event.fire"] = rec.fire
        states = salt.loader.states(o, funcs, utils, {})
        make.funcs = funcs
        return states

    return make


def test_state_test_mode_same_changes_and_no_secret_anywhere(
    salt_states, namespace, kubeconfig, caplog, rec
):
    caplog.set_level(logging.DEBUG)
    pillar = {
        "palplat": {
            "gpu": {"enabled": False},
            "k3s": {"kubeconfig": kubeconfig},
            "platform": {"releases": {"st": cm_release(namespace)}},
        }
    }
    planned = salt_states(pillar, True)["palplat_helm.platform"]("platform")
    assert planned["result"] is None, planned
    mod_plan = salt_states.funcs["palplat_helm.plan"]()
    assert mod_plan["changes"]["st"]["objects"] == planned["changes"]["st"]["objects"]
    assert isinstance(salt_states.funcs["palplat_helm.releases"](), list)
    applied = salt_states(pillar, False)["palplat_helm.platform"]("platform")
    assert applied["result"] is True, applied
    strip = lambda c: {k: {f: v for f, v in r.items() if f != "revision"} for k, r in c.items()}  # noqa: E731
    assert strip(planned["changes"]) == strip(applied["changes"])
    again = salt_states(pillar, False)["palplat_helm.platform"]("platform")
    assert again["result"] is True and again["changes"] == {}
    one = salt_states(pillar, True)["palplat_helm.release"]("st")
    assert one["result"] is True and one["changes"] == {}
    missing = salt_states(pillar, True)["palplat_helm.release"]("nope")
    assert missing["result"] is False and "palplat:platform:releases:nope" in missing["comment"]
    bad = {"palplat": {**pillar["palplat"], "platform": {"releases": {"x": {"namespace": "BAD"}}}}}
    ret = salt_states(bad, False)["palplat_helm.platform"]("platform")
    assert ret["result"] is False and "palplat:platform:releases:x" in ret["comment"]

    no_secret(planned, applied, again, rec.events, rec.argv, caplog.text)
    assert any(t.startswith("palplat/helm/") for _, t in rec.events)
    assert SECRET in redact.registered()  # it was registered, so masking was exercised


def test_uninstall_keeps_pvcs_unless_told(run, namespace, kube_api):
    rels = {"keep": cm_release(namespace, pvc=True), "drop": cm_release(namespace, pvc=True)}
    assert run(rels)["errors"] == {}
    assert get(kube_api, "v1", "PersistentVolumeClaim", "keep-data", namespace) is not None
    rels["keep"]["enabled"] = False
    rels["drop"].update(enabled=False, keep_pvcs=False)
    res = run(rels)
    assert res["errors"] == {}
    kept = get(kube_api, "v1", "PersistentVolumeClaim", "keep-data", namespace)
    assert kept is not None and not kept["metadata"].get("deletionTimestamp")
    dropped = get(kube_api, "v1", "PersistentVolumeClaim", "drop-data", namespace)
    assert dropped is None or dropped["metadata"].get("deletionTimestamp")


def test_api_outage_mid_upgrade_then_rerun_converges(run, namespace, control_plane, kube_api):
    base = {"wait": True, "timeout": 20}
    assert run({"out": {**cm_release(namespace), **base}})["errors"] == {}
    # a Deployment never becomes Available here: helm --wait blocks, then the API goes away
    stuck = {"out": {**cm_release(namespace, greeting="v2", deployment=True), **base}}
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(run(stuck)))
    t.start()
    deadline = time.monotonic() + 30
    while get(kube_api, "apps/v1", "Deployment", "out-app", namespace) is None:
        assert time.monotonic() < deadline, "helm never created the Deployment"
        time.sleep(0.2)
    control_plane.stop_apiserver()
    try:
        t.join(120)
    finally:
        control_plane.start_apiserver()
    assert not t.is_alive()
    assert result["errors"].get("out"), result
    # API back: a re-run with a fixed pillar converges; nothing was lost
    fixed = {"out": {**cm_release(namespace, greeting="v3"), **base}}
    plan = run(fixed, test=True)
    assert plan["errors"] == {}, plan["errors"]
    assert plan["changes"]["out"]["action"] == "upgrade"
    res = run(fixed)
    assert res["errors"] == {}, res["errors"]
    assert get(kube_api, "v1", "ConfigMap", "out-config", namespace)["data"]["greeting"] == "v3"
    assert get(kube_api, "v1", "Secret", "out-secret", namespace) is not None
    assert get(kube_api, "apps/v1", "Deployment", "out-app", namespace) is None
    assert run(fixed)["changes"] == {}
