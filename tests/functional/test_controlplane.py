"""The real control plane for tests (tests/support/testenv.py) does what the suite relies on:
real kubectl and the Python client, server-side apply, dryRun=All, CRDs with validation,
helm install/upgrade/rollback, namespace deletion, service-account tokens, API outages."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.support import testenv

pytestmark = [pytest.mark.controlplane]

REPO = Path(__file__).resolve().parents[2]
FIXTURE_CRD = REPO / "tests" / "fixtures" / "crds" / "widgets.test.palplat.dev.yaml"
VENDOR_CRDS = REPO.parent / "shared" / "reference" / "crds"


def kubectl(kubectl_bin, kubeconfig, *args, input=None, check=True):
    proc = subprocess.run(
        [kubectl_bin, f"--kubeconfig={kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
    return proc


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def configmap(name, data, labels=None):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


# --------------------------------------------------------------------------- core API


def test_server_reports_real_version(kubectl_bin, kubeconfig):
    out = json.loads(kubectl(kubectl_bin, kubeconfig, "version", "-o", "json").stdout)
    server = out["serverVersion"]["gitVersion"]
    assert server.startswith("v1.") and server != "v0.0.0-master", out
    assert out["clientVersion"]["gitVersion"] == server


def test_kubectl_reads_and_writes(kubectl_bin, kubeconfig, namespace):
    kubectl(
        kubectl_bin,
        kubeconfig,
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input=json.dumps(configmap("via-kubectl", {"a": "1"})),
    )
    got = json.loads(
        kubectl(
            kubectl_bin, kubeconfig, "-n", namespace, "get", "cm", "via-kubectl", "-o", "json"
        ).stdout
    )
    assert got["data"] == {"a": "1"}
    kubectl(kubectl_bin, kubeconfig, "-n", namespace, "delete", "cm", "via-kubectl")
    gone = kubectl(
        kubectl_bin, kubeconfig, "-n", namespace, "get", "cm", "via-kubectl", check=False
    )
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_python_client_reads_and_writes(kube_api, namespace):
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(namespace, configmap("via-python", {"k": "v"}))
    core.patch_namespaced_config_map("via-python", namespace, {"data": {"k": "w"}})
    names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
    assert "via-python" in names
    assert core.read_namespaced_config_map("via-python", namespace).data == {"k": "w"}


def test_server_side_apply_and_field_ownership(kube_api, namespace):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)

    def apply(body, manager, force=False):
        return core.patch_namespaced_config_map(
            body["metadata"]["name"],
            namespace,
            body,
            field_manager=manager,
            force=force,
            _content_type="application/apply-patch+yaml",
        )

    first = apply(configmap("ssa", {"owned": "palplat"}), "palplat")
    assert first.data == {"owned": "palplat"}
    managers = {m.manager: m.operation for m in first.metadata.managed_fields}
    assert managers == {"palplat": "Apply"}
    # Same apply again: nothing changes (the resourceVersion stays).
    again = apply(configmap("ssa", {"owned": "palplat"}), "palplat")
    assert again.metadata.resource_version == first.metadata.resource_version
    # Another manager touching the same field conflicts unless it forces.
    with pytest.raises(ApiException) as exc:
        apply(configmap("ssa", {"owned": "intruder"}), "intruder")
    assert exc.value.status == 409
    forced = apply(configmap("ssa", {"owned": "intruder"}), "intruder", force=True)
    assert forced.data == {"owned": "intruder"}


def test_dry_run_all_stores_nothing(kube_api, namespace):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    created = core.create_namespaced_config_map(
        namespace, configmap("dry", {"x": "1"}), dry_run="All"
    )
    assert created.data == {"x": "1"}
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("dry", namespace)
    assert exc.value.status == 404
    # Server-side apply in dry-run mode too.
    core.create_namespaced_config_map(namespace, configmap("real", {"x": "1"}))
    planned = core.patch_namespaced_config_map(
        "real",
        namespace,
        configmap("real", {"x": "2"}),
        field_manager="palplat",
        force=True,
        dry_run="All",
        _content_type="application/apply-patch+yaml",
    )
    assert planned.data == {"x": "2"}
    assert core.read_namespaced_config_map("real", namespace).data == {"x": "1"}


# --------------------------------------------------------------------------- CRDs


def wait_established(kubectl_bin, kubeconfig, *crd_names):
    kubectl(
        kubectl_bin,
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *[f"crd/{n}" for n in crd_names],
    )


def test_fixture_crd_validates(kubectl_bin, kubeconfig, kube_api, namespace):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    kubectl(kubectl_bin, kubeconfig, "apply", "--server-side", "-f", str(FIXTURE_CRD))
    wait_established(kubectl_bin, kubeconfig, "widgets.test.palplat.dev")
    custom = client.CustomObjectsApi(kube_api)
    args = ("test.palplat.dev", "v1", namespace, "widgets")

    def widget(name, spec):
        return {
            "apiVersion": "test.palplat.dev/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": spec,
        }

    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*args, widget("bad", {"size": 0, "color": "pink"}))
    assert exc.value.status == 422
    assert "spec.size" in exc.value.body and "spec.color" in exc.value.body
    custom.create_namespaced_custom_object(*args, widget("good", {"size": 3, "color": "red"}))
    stored = custom.get_namespaced_custom_object(*args[:3], "widgets", "good")
    assert stored["spec"] == {"size": 3, "color": "red"}


@pytest.fixture(scope="module")
def vendor_crds(kubectl_bin, kubeconfig):
    if not VENDOR_CRDS.is_dir():
        pytest.skip(f"vendor CRDs not available: {VENDOR_CRDS} is absent")
    files = sorted(VENDOR_CRDS.glob("*.yaml"))
    names = []
    for path in files:
        # Server-side apply: some vendor CRDs are larger than the client-side apply annotation.
        out = kubectl(
            kubectl_bin, kubeconfig, "apply", "--server-side", "-o", "name", "-f", str(path)
        )
        names += [ln.split("/", 1)[1] for ln in out.stdout.split() if ln.strip()]
    return names


def test_vendor_crds_become_established(kubectl_bin, kubeconfig, vendor_crds):
    assert len(vendor_crds) >= 12
    wait_established(kubectl_bin, kubeconfig, *vendor_crds)


def test_servicemonitor_validation(kubectl_bin, kubeconfig, kube_api, namespace, vendor_crds):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    wait_established(kubectl_bin, kubeconfig, "servicemonitors.monitoring.coreos.com")
    custom = client.CustomObjectsApi(kube_api)
    args = ("monitoring.coreos.com", "v1", namespace, "servicemonitors")

    def sm(name, spec):
        return {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": name},
            "spec": spec,
        }

    # No selector, and an interval that is not a Prometheus duration.
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(
            *args, sm("bad", {"endpoints": [{"port": "web", "interval": "often"}]})
        )
    assert exc.value.status == 422, exc.value.body
    assert "spec.selector" in exc.value.body and "interval" in exc.value.body
    good = {
        "selector": {"matchLabels": {"app": "demo"}},
        "endpoints": [{"port": "web", "interval": "30s", "path": "/metrics"}],
    }
    custom.create_namespaced_custom_object(*args, sm("good", good))
    stored = custom.get_namespaced_custom_object(*args[:3], "servicemonitors", "good")
    assert stored["spec"]["endpoints"][0]["interval"] == "30s"


# --------------------------------------------------------------------------- helm


def make_chart(root: Path) -> Path:
    chart = root / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: v2
            name: demo
            version: 0.1.0
            kubeVersion: ">=1.30.0-0"
            """
        )
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {{ .Release.Name }}-cfg
            data:
              greeting: {{ .Values.greeting | quote }}
            """
        )
    )
    return chart


@pytest.mark.helm
def test_helm_install_upgrade_rollback(helm_bin, kubeconfig, kube_api, namespace, tmp_path):
    from kubernetes import client

    chart = make_chart(tmp_path / "charts")
    env = dict(os.environ)
    env.update(
        KUBECONFIG=kubeconfig,
        HELM_CACHE_HOME=str(tmp_path / "helm" / "cache"),
        HELM_CONFIG_HOME=str(tmp_path / "helm" / "config"),
        HELM_DATA_HOME=str(tmp_path / "helm" / "data"),
    )

    def helm(*args):
        proc = subprocess.run(
            [helm_bin, "--namespace", namespace, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}{proc.stdout}"
        return proc.stdout

    core = client.CoreV1Api(kube_api)

    def greeting():
        return core.read_namespaced_config_map("demo-cfg", namespace).data["greeting"]

    helm("install", "demo", str(chart), "--wait", "--timeout", "60s")
    assert greeting() == "hello"
    helm("upgrade", "demo", str(chart), "--set", "greeting=bye", "--wait", "--timeout", "60s")
    assert greeting() == "bye"
    helm("rollback", "demo", "1", "--wait", "--timeout", "60s")
    assert greeting() == "hello"
    history = json.loads(helm("history", "demo", "-o", "json"))
    assert [h["revision"] for h in history] == [1, 2, 3]
    assert history[-1]["status"] == "deployed"


# --------------------------------------------------------------------------- controllers


def test_namespace_deletion_completes(kube_api):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    name = f"t-delete-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(name, configmap("content", {"a": "b"}))
    core.create_namespaced_secret(
        name, client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"k": "v"})
    )
    core.delete_namespace(name)

    def gone():
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, 60, f"namespace {name} to finish deleting")


def test_garbage_collector_deletes_dependents(kube_api, namespace):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, configmap("owner", {}))
    dependent = configmap("dependent", {})
    dependent["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    ]
    core.create_namespaced_config_map(namespace, dependent)
    core.delete_namespaced_config_map("owner", namespace)

    def collected():
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(collected, 60, "the garbage collector to delete the dependent")


def test_service_account_tokens_work(control_plane, kube_api, namespace):
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot"))
    )
    token = core.create_namespaced_service_account_token(
        "robot",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    ).status.token

    cfg = client.Configuration()
    cfg.host = control_plane.server
    cfg.ssl_ca_cert = str(control_plane.pki / "ca.crt")
    cfg.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(cfg) as robot:
        review = client.AuthenticationV1Api(robot).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:robot"

    # The controller-manager's token controller fills legacy token secrets (signing key).
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="robot-token", annotations={"kubernetes.io/service-account.name": "robot"}
            ),
            type="kubernetes.io/service-account-token",
        ),
    )
    wait_for(
        lambda: (core.read_namespaced_secret("robot-token", namespace).data or {}).get("token"),
        60,
        "the token controller to fill robot-token",
    )


# --------------------------------------------------------------------------- outages, CLI


def test_api_outage_keeps_data(control_plane, kube_api, namespace):
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(namespace, configmap("survivor", {"a": "1"}))
    port = int(control_plane.server.rsplit(":", 1)[1])
    control_plane.stop_apiserver()
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
    finally:
        control_plane.start_apiserver()
    assert control_plane.server.endswith(f":{port}")  # same address: kubeconfigs stay valid
    assert core.read_namespaced_config_map("survivor", namespace).data == {"a": "1"}


@pytest.mark.slow
def test_cli_up_env_down(tmp_path, kubectl_bin):
    if testenv.missing_bins():
        pytest.skip(f"{testenv.missing_bins()} not built: run tools/build-testbin")
    workdir = tmp_path / "cp"
    cli = [sys.executable, "-m", "tests.support.testenv"]

    def run(*args):
        return subprocess.run(
            [*cli, *args, "--dir", str(workdir)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=180,
        )

    up = run("up")
    try:
        assert up.returncode == 0, up.stderr
        env = dict(
            line.removeprefix("export ").replace("'", "").split("=", 1)
            for line in run("env").stdout.splitlines()
        )
        kcfg = env["KUBECONFIG"]
        kubectl(kubectl_bin, kcfg, "create", "configmap", "persist", "--from-literal=k=v")
        state = json.loads((workdir / "controlplane.json").read_text())
        # Every component listens on loopback only.
        listening = subprocess.run(
            ["ss", "-Hltnp"], capture_output=True, text=True, check=False
        ).stdout
        for pid in state["pids"].values():
            for line in listening.splitlines():
                if f"pid={pid}," in line:
                    assert line.split()[3].startswith("127.0.0.1:"), line
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert not any(testenv.ControlPlane.attach(workdir).running().values())
    # Same directory again: the data is still there.
    assert run("up").returncode == 0
    try:
        out = kubectl(kubectl_bin, kcfg, "get", "cm", "persist", "-o", "jsonpath={.data.k}")
        assert out.stdout == "v"
    finally:
        run("down")


# --------------------------------------------------------------------------- kwok


def make_deployment_chart(root: Path) -> Path:
    chart = root / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("replicas: 2\nimage: registry.invalid/web:1\n")
    (chart / "templates" / "deploy.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: {{ .Release.Name }}
            spec:
              replicas: {{ .Values.replicas }}
              selector:
                matchLabels: {app: {{ .Release.Name }}}
              template:
                metadata:
                  labels: {app: {{ .Release.Name }}}
                spec:
                  containers:
                    - name: web
                      image: {{ .Values.image }}
            """
        )
    )
    return chart


@pytest.mark.helm
@pytest.mark.slow
def test_kwok_pods_run_and_helm_wait_returns(kwok_control_plane, helm_bin, tmp_path):
    """With kwok's fake node, a Deployment becomes Available and `helm --wait` returns."""
    from kubernetes import client, config

    cp = kwok_control_plane
    chart = make_deployment_chart(tmp_path / "charts")
    env = dict(os.environ)
    env.update(
        KUBECONFIG=str(cp.kubeconfig),
        HELM_CACHE_HOME=str(tmp_path / "helm" / "cache"),
        HELM_CONFIG_HOME=str(tmp_path / "helm" / "config"),
        HELM_DATA_HOME=str(tmp_path / "helm" / "data"),
    )
    proc = subprocess.run(
        [helm_bin, "install", "web", str(chart), "-n", "default", "--wait", "--timeout", "90s"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    try:
        assert proc.returncode == 0, proc.stderr + proc.stdout
        with config.new_client_from_config(config_file=str(cp.kubeconfig)) as api:
            deploy = client.AppsV1Api(api).read_namespaced_deployment("web", "default")
            assert deploy.status.available_replicas == 2
            pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=web")
            assert {p.status.phase for p in pods.items} == {"Running"}
            assert {p.spec.node_name for p in pods.items} == {"kwok-node-0"}
    finally:  # the kwok control plane is shared: leave no release behind
        subprocess.run(
            [helm_bin, "uninstall", "web", "-n", "default", "--wait"],
            capture_output=True, env=env, timeout=120,
        )  # fmt: skip
