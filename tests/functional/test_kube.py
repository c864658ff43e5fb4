"""palplat.kube and the palplat_kube modules against the real kube-apiserver.

The control plane has no kubelet: Deployments never become Available and Jobs never
complete, which is what the wait-timeout tests rely on. Objects are read back with the
official client (``kube_api``), not through palplat.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from pathlib import Path

import pytest

from palplat import kube, redact
from palplat.errors import WaitTimeout
from palplat.secret import Secret

pytestmark = [pytest.mark.controlplane]


@pytest.fixture
def k(kubeconfig):
    client = kube.Kube(kubeconfig)
    yield client
    client.close()


def reset(kc: kube.Kube) -> None:
    kc.stats.update(requests=0, writes=0)
    kc.stats["verbs"].clear()


def cm(ns, name="settings", data=None, **meta):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, **meta},
        "data": data if data is not None else {"level": "info"},
    }


def deployment(ns, name="web", image="nginx:1.27", replicas=1):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "ports": [{"containerPort": 80}],
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                },
            },
        },
    }


def service(ns, name="web"):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 80}]},
    }


def read_cm(kube_api, ns, name):
    from kubernetes import client

    return client.CoreV1Api(kube_api).read_namespaced_config_map(name, ns)


def read_cm_data(kc, ns, name):
    return kc.get("v1", "ConfigMap", name, ns)["data"]


def owner_id() -> str:
    return "t-" + uuid.uuid4().hex[:8]


# ----------------------------------------------------------------- create / no-op / change


def test_create_noop_change(k, namespace, kube_api):
    owner = owner_id()
    objs = [cm(namespace), deployment(namespace), service(namespace)]
    out = kube.converge(k, objs, owner=owner, dry_run=False)
    assert set(out["actions"].values()) == {"create"}
    assert set(out["changes"]) == {
        f"ConfigMap/{namespace}/settings",
        f"Deployment/{namespace}/web",
        f"Service/{namespace}/web",
    }
    live = read_cm(kube_api, namespace, "settings")
    assert live.data == {"level": "info"}
    assert live.metadata.labels == {
        "app.kubernetes.io/managed-by": "palplat",
        "palplat.io/owner": owner,
    }
    assert [f.manager for f in live.metadata.managed_fields] == ["palplat"]
    assert live.metadata.managed_fields[0].operation == "Apply"
    rv = live.metadata.resource_version

    # no-op: one LIST per kind, no write, nothing changed on the server
    reset(k)
    out = kube.converge(k, objs, owner=owner, dry_run=False)
    assert out["changes"] == {}
    assert set(out["actions"].values()) == {"nothing"}
    assert k.stats["writes"] == 0
    assert k.stats["requests"] == 3, dict(k.stats["verbs"])
    assert read_cm(kube_api, namespace, "settings").metadata.resource_version == rv

    # one field changes: the diff shows only that field
    objs[0] = cm(namespace, data={"level": "debug"})
    out = kube.converge(k, objs, owner=owner, dry_run=False)
    assert out["changes"] == {
        f"ConfigMap/{namespace}/settings": {"data.level": {"old": "info", "new": "debug"}}
    }
    assert out["actions"][f"Deployment/{namespace}/web"] == "nothing"
    assert read_cm(kube_api, namespace, "settings").data == {"level": "debug"}

    # an image change in a nested list: one path
    objs[1] = deployment(namespace, image="nginx:1.28")
    out = kube.converge(k, objs, owner=owner, dry_run=True)
    assert out["changes"] == {
        f"Deployment/{namespace}/web": {
            "spec.template.spec.containers[web].image": {"old": "nginx:1.27", "new": "nginx:1.28"}
        }
    }


def test_test_mode_is_dry_run_of_the_same_apply(k, namespace, kube_api):
    owner = owner_id()
    kube.converge(k, [cm(namespace)], owner=owner, dry_run=False)
    rv = read_cm(kube_api, namespace, "settings").metadata.resource_version
    reset(k)
    changed = [cm(namespace, data={"level": "warn", "extra": "1"})]
    plan = kube.converge(k, changed, owner=owner, dry_run=True)
    assert plan["changes"] == {
        f"ConfigMap/{namespace}/settings": {
            "data.level": {"old": "info", "new": "warn"},
            "data.extra": {"old": None, "new": "1"},
        }
    }
    assert k.stats["writes"] == 0
    assert k.stats["verbs"]["PATCH dry-run"] == 1
    live = read_cm(kube_api, namespace, "settings")
    assert live.metadata.resource_version == rv and live.data == {"level": "info"}
    # the real run reports exactly what test mode predicted
    real = kube.converge(k, changed, owner=owner, dry_run=False)
    assert real["changes"] == plan["changes"]
    # a create in test mode creates nothing
    plan = kube.converge(k, [cm(namespace, name="later")], owner=owner, dry_run=True)
    assert plan["actions"] == {f"ConfigMap/{namespace}/later": "create"}
    assert k.get("v1", "ConfigMap", "later", namespace) is None


def test_new_namespace_and_its_objects(k):
    """Test mode for objects in a namespace the same run creates: reported as creates
    (the server cannot dry-run into a namespace that does not exist yet); nothing made."""
    ns = "t-newns-" + uuid.uuid4().hex[:6]
    owner = owner_id()
    objs = [cm(ns), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    try:
        plan = kube.converge(k, objs, owner=owner, dry_run=True)
        assert plan["actions"] == {
            f"Namespace/{ns}": "create",
            f"ConfigMap/{ns}/settings": "create",
        }
        assert plan["changes"][f"ConfigMap/{ns}/settings"]["."]["new"]["data"] == {"level": "info"}
        assert k.get("v1", "Namespace", ns) is None
        out = kube.converge(k, objs, owner=owner, dry_run=False)
        assert out["changes"] == plan["changes"]
        assert kube.wait(k, objs, timeout=10)["ready"] == [
            f"ConfigMap/{ns}/settings",
            f"Namespace/{ns}",
        ]
        reset(k)
        assert kube.converge(k, objs, owner=owner, dry_run=True)["changes"] == {}
        assert k.stats["requests"] == 2 and k.stats["writes"] == 0
    finally:
        k.delete("v1", "Namespace", ns)


def test_drift_reported_and_corrected(k, namespace, kube_api):
    from kubernetes import client

    owner = owner_id()
    objs = [cm(namespace, data={"level": "info", "mode": "a"})]
    kube.converge(k, objs, owner=owner, dry_run=False)
    # a hand edit (kubectl edit = an Update by another manager)
    client.CoreV1Api(kube_api).patch_namespaced_config_map(
        "settings", namespace, {"data": {"level": "hand-edited"}}
    )
    plan = kube.converge(k, objs, owner=owner, dry_run=True)
    assert plan["changes"] == {
        f"ConfigMap/{namespace}/settings": {"data.level": {"old": "hand-edited", "new": "info"}}
    }
    out = kube.converge(k, objs, owner=owner, dry_run=False)
    assert out["changes"] == plan["changes"]
    assert read_cm(kube_api, namespace, "settings").data == {"level": "info", "mode": "a"}
    reset(k)
    assert kube.converge(k, objs, owner=owner, dry_run=False)["changes"] == {}
    assert k.stats["writes"] == 0


def test_removed_field_is_removed(k, namespace, kube_api):
    owner = owner_id()
    kube.converge(k, [cm(namespace, data={"a": "1", "b": "2"})], owner=owner, dry_run=False)
    out = kube.converge(k, [cm(namespace, data={"a": "1"})], owner=owner, dry_run=False)
    assert out["changes"] == {
        f"ConfigMap/{namespace}/settings": {"data.b": {"old": "2", "new": None}}
    }
    assert read_cm(kube_api, namespace, "settings").data == {"a": "1"}


# ------------------------------------------------------------------------------ prune


def test_prune_deletes_only_owned(k, namespace, kube_api):
    from kubernetes import client

    mine, other = owner_id(), owner_id()
    kube.converge(
        k,
        [cm(namespace, "keep"), cm(namespace, "drop"), service(namespace, "gone")],
        owner=mine,
        dry_run=False,
    )
    kube.converge(k, [cm(namespace, "theirs")], owner=other, dry_run=False)
    client.CoreV1Api(kube_api).create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="unlabelled"))
    )
    # test mode: reported, nothing deleted
    plan = kube.converge(k, [cm(namespace, "keep")], owner=mine, dry_run=True, prune=True)
    assert plan["actions"] == {
        f"ConfigMap/{namespace}/keep": "nothing",
        f"ConfigMap/{namespace}/drop": "delete",
        f"Service/{namespace}/gone": "delete",
    }
    assert k.get("v1", "ConfigMap", "drop", namespace) is not None
    out = kube.converge(k, [cm(namespace, "keep")], owner=mine, dry_run=False, prune=True)
    assert out["changes"] == plan["changes"]
    names = {
        c.metadata.name
        for c in client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items
    }
    assert {"keep", "theirs", "unlabelled"} <= names and "drop" not in names
    assert k.get("v1", "Service", "gone", namespace) is None
    reset(k)
    again = kube.converge(k, [cm(namespace, "keep")], owner=mine, dry_run=False, prune=True)
    assert again["changes"] == {} and k.stats["writes"] == 0


def test_prune_keeps_namespaces_unless_they_are_managed(k, namespace):
    ns = "t-prune-ns-" + uuid.uuid4().hex[:6]
    owner = owner_id()
    nsobj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    try:
        kube.converge(k, [nsobj, cm(namespace)], owner=owner, dry_run=False)
        # Namespaces left the manifests entirely: the namespace is not pruned
        out = kube.converge(k, [cm(namespace)], owner=owner, dry_run=True, prune=True)
        assert out["changes"] == {}
        # named explicitly: it is
        out = kube.converge(
            k,
            [cm(namespace)],
            owner=owner,
            dry_run=True,
            prune=True,
            prune_kinds=[("v1", "Namespace")],
        )
        assert out["actions"][f"Namespace/{ns}"] == "delete"
    finally:
        k.delete("v1", "Namespace", ns)


# ---------------------------------------------------------------------- CRDs and waiting


def crd(group):
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_established_then_cr(k, namespace):
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    owner = owner_id()
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": namespace},
        "spec": {"size": 3},
    }
    try:
        # the CR is listed first: converge still puts the CRD first and waits for it
        plan = kube.converge(k, [widget, crd(group)], owner=owner, dry_run=True)
        assert list(plan["actions"].values()) == ["create", "create"]
        assert list(plan["actions"])[0] == f"CustomResourceDefinition/widgets.{group}"
        events = []
        out = kube.converge(
            k,
            [widget, crd(group)],
            owner=owner,
            dry_run=False,
            progress=lambda phase, msg, **kw: events.append(phase),
        )
        assert out["actions"][f"Widget/{namespace}/w1"] == "create"
        assert "done" in events
        got = kube.wait(k, [crd(group)], timeout=10)
        assert got["ready"] == [f"CustomResourceDefinition/widgets.{group}"]
        assert k.get(f"{group}/v1", "Widget", "w1", namespace)["spec"] == {"size": 3}
        reset(k)
        assert kube.converge(k, [widget, crd(group)], owner=owner, dry_run=False)["changes"] == {}
        assert k.stats["writes"] == 0
        # a CR that breaks the CRD schema is rejected by the server, in test mode too
        bad = dict(widget, spec={"size": 0})
        with pytest.raises(kube.ConvergeError, match=r"Widget/.*/w1.*422.*spec.size"):
            kube.converge(k, [bad], owner=owner, dry_run=True)
        # prune never deletes CRDs
        out = kube.converge(
            k,
            [],
            owner=owner,
            dry_run=False,
            prune=True,
            prune_kinds=[("apiextensions.k8s.io/v1", "CustomResourceDefinition")],
        )
        assert k.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")
    finally:
        k.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")


def test_wait_timeout_names_what_is_not_ready(k, namespace):
    owner = owner_id()
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "m", "image": "busybox"}],
                }
            }
        },
    }
    objs = [cm(namespace), deployment(namespace), job]
    kube.converge(k, objs, owner=owner, dry_run=False)
    phases = []
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout) as exc:
        kube.wait(
            k,
            objs + [("v1", "Namespace", namespace)],
            timeout=3,
            progress=lambda phase, msg, **kw: phases.append((phase, msg)),
        )
    took = time.monotonic() - t0
    assert 3 <= took < 8
    msg = str(exc.value)
    assert f"2 of 4 object(s) not ready: Deployment/{namespace}/web (" in msg
    assert f"Job/{namespace}/migrate (" in msg and "Complete" in msg
    assert f"ready: ConfigMap/{namespace}/settings, Namespace/{namespace}" in msg
    assert set(exc.value.partial["not_ready"]) == {
        f"Deployment/{namespace}/web",
        f"Job/{namespace}/migrate",
    }
    assert exc.value.partial["ready"] == [
        f"ConfigMap/{namespace}/settings",
        f"Namespace/{namespace}",
    ]
    assert phases[0][0] == "start" and phases[-1][0] == "timeout"
    assert any(p == "waiting" for p, _ in phases)


def test_wait_fires_events_through_progress(k, namespace):
    from palplat import loaderkit

    fired = []
    progress = loaderkit.Progress(lambda data, tag: fired.append((tag, data)), "kube", every=0)
    kube.converge(k, [deployment(namespace)], owner=owner_id(), dry_run=False)
    with pytest.raises(WaitTimeout):
        kube.wait(k, [deployment(namespace)], timeout=1.5, progress=progress)
    tags = [t for t, _ in fired]
    assert tags[0] == "palplat/kube/start" and tags[-1] == "palplat/kube/timeout"
    assert "palplat/kube/waiting" in tags
    assert f"Deployment/{namespace}/web" in fired[-1][1]["message"]


def test_wait_namespace_active_and_missing_object(k, namespace):
    assert kube.wait(k, [("v1", "Namespace", namespace)], timeout=5)["ready"] == [
        f"Namespace/{namespace}"
    ]
    with pytest.raises(WaitTimeout, match=r"ConfigMap/.*/nope \(does not exist\); none ready"):
        kube.wait(k, [("v1", "ConfigMap", "nope", namespace)], timeout=1)


# ------------------------------------------------------------------------ rejections


def test_admission_rejection_is_a_clear_error(k, namespace):
    """A ValidatingAdmissionPolicy (in-process CEL admission) denies the object."""
    name = f"palplat-deny-{uuid.uuid4().hex[:6]}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "!has(object.data) || !('forbidden' in object.data)",
                    "message": "configmaps may not carry a 'forbidden' key",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    owner = owner_id()
    try:
        kube.converge(k, [policy, binding], owner=owner, dry_run=False)
        bad = cm(namespace, data={"forbidden": "x"})
        deadline = time.monotonic() + 20  # the policy reaches the admission chain in a moment
        while True:
            try:
                kube.converge(k, [bad], owner=owner, dry_run=True)
            except kube.ConvergeError as exc:
                err = exc
                break
            assert time.monotonic() < deadline, "the admission policy never took effect"
            time.sleep(0.5)
        msg = str(err)
        assert f"apply ConfigMap/{namespace}/settings" in msg
        assert "configmaps may not carry a 'forbidden' key" in msg
        assert err.status in (403, 422)
        with pytest.raises(kube.ConvergeError, match="may not carry"):
            kube.converge(k, [bad], owner=owner, dry_run=False)
        assert k.get("v1", "ConfigMap", "settings", namespace) is None
    finally:
        k.delete("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", name)
        k.delete("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", name)


def test_invalid_object_and_unknown_kind(k, namespace):
    bad = deployment(namespace)
    bad["spec"]["template"]["spec"]["containers"][0]["name"] = "Not_A_DNS_Name"
    with pytest.raises(kube.ConvergeError, match=r"422 Invalid.*fix the manifest"):
        kube.converge(k, [bad], owner=owner_id(), dry_run=True)
    ghost = {"apiVersion": "nope.example.com/v1", "kind": "Ghost", "metadata": {"name": "g"}}
    with pytest.raises(kube.KubeError, match="does not serve kind Ghost.*CustomResourceDefinition"):
        kube.converge(k, [ghost], owner=owner_id(), dry_run=True)


# ----------------------------------------------------------------------------- secrets


def test_secret_values_never_shown(k, namespace, caplog):
    caplog.set_level(logging.DEBUG)
    pw, pw2 = "pw-" + uuid.uuid4().hex, "pw-" + uuid.uuid4().hex
    token = "tok-" + uuid.uuid4().hex
    Secret(token)  # a pillar secret that ends up in a ConfigMap
    owner = owner_id()

    def objs(p):
        return [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "db", "namespace": namespace},
                "stringData": {"password": p, "user": "app"},
            },
            cm(namespace, data={"url": f"postgres://app:{token}@db"}),
        ]

    forbidden = [
        pw,
        pw2,
        token,
        base64.b64encode(pw.encode()).decode(),
        base64.b64encode(pw2.encode()).decode(),
    ]
    outputs = [
        kube.converge(k, objs(pw), owner=owner, dry_run=True),
        kube.converge(k, objs(pw), owner=owner, dry_run=False),
        kube.converge(k, objs(pw), owner=owner, dry_run=False),
    ]
    plan = kube.converge(k, objs(pw2), owner=owner, dry_run=True)
    assert plan["changes"] == {
        f"Secret/{namespace}/db": {"data.password": {"old": "<hidden>", "new": "<hidden>"}}
    }
    outputs += [plan, kube.converge(k, objs(pw2), owner=owner, dry_run=False)]
    outputs.append(kube.masked(k.get("v1", "Secret", "db", namespace)))
    outputs.append(kube.masked(k.list("v1", "Secret", namespace)))
    assert outputs[2]["changes"] == {}
    text = json.dumps(outputs) + caplog.text
    assert "PATCH" in caplog.text  # debug logging of every request was on
    for value in forbidden:
        assert value not in text
    assert (
        base64.b64decode(k.get("v1", "Secret", "db", namespace)["data"]["password"]).decode() == pw2
    )
    redact.clear()


# ---------------------------------------------------------------------- API outage


@pytest.mark.slow
def test_api_server_down_then_back(k, namespace, control_plane):
    """The API server stops in the middle of a run (right after the first object was
    written): a clear error with what was done; after a restart a re-run converges."""
    owner = owner_id()
    objs = [cm(namespace, "one"), cm(namespace, "two"), cm(namespace, "three")]
    kube.converge(k, objs[:1], owner=owner, dry_run=False)
    objs[0] = cm(namespace, "one", data={"level": "debug"})
    applied = []

    def stop_after_first(phase, msg, **kw):
        applied.append(kw.get("key"))
        if len(applied) == 2:  # "two" is about to be written: pull the plug
            control_plane.stop_apiserver()

    try:
        with pytest.raises(
            kube.ConvergeError, match="cannot reach the Kubernetes API server"
        ) as exc:
            kube.converge(k, objs, owner=owner, dry_run=False, progress=stop_after_first)
        assert list(exc.value.changes) == [f"ConfigMap/{namespace}/one"]
    finally:
        control_plane.start_apiserver()
    out = kube.converge(k, objs, owner=owner, dry_run=False)
    assert out["actions"] == {
        f"ConfigMap/{namespace}/one": "nothing",
        f"ConfigMap/{namespace}/two": "create",
        f"ConfigMap/{namespace}/three": "create",
    }
    assert read_cm_data(k, namespace, "one") == {"level": "debug"}
    assert kube.converge(k, objs, owner=owner, dry_run=False)["changes"] == {}


# ------------------------------------------------------------------- through Salt's loader


@pytest.fixture(scope="module")
def loaders(kubeconfig, tmp_path_factory):
    import salt.config
    from saltfactories.utils.functional import Loaders

    from tests.support.saltenv import CHECKOUT_DIRS

    root = tmp_path_factory.mktemp("kube-minion")
    for d in ("srv", "pillar"):
        (root / d).mkdir()
    opts = salt.config.minion_config(None)
    opts["palplat_plaintext_secrets"] = True  # test pillars hold plain text
    opts.update(
        id="kube-functional",
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
        pillar={"palplat": {"k3s": {"mode": "external", "kubeconfig": kubeconfig}}},
    )
    return Loaders(opts)


@pytest.mark.salt
def test_states_through_salt_loader(loaders, namespace, kube_api):
    pw = "st-" + uuid.uuid4().hex
    manifests = [
        cm(namespace, data={"a": "1"}),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": namespace},
            "stringData": {"pw": pw},
        },
    ]
    state = loaders.states.palplat_kube
    ret = state.present("kube objects", manifests=manifests, test=True)
    assert ret.result is None
    assert set(ret.changes) == {f"ConfigMap/{namespace}/settings", f"Secret/{namespace}/creds"}
    assert "would create 2" in ret.comment
    assert loaders.modules.palplat_kube.get("v1", "ConfigMap", "settings", namespace) is None

    ret = state.present("kube objects", manifests=manifests)
    assert ret.result is True and len(ret.changes) == 2
    assert (
        read_cm(kube_api, namespace, "settings").metadata.labels["palplat.io/owner"]
        == "kube-objects"
    )

    ret = state.present("kube objects", manifests=manifests)
    assert ret.result is True and ret.changes == {}
    ret = state.present("kube objects", manifests=manifests, test=True)
    assert ret.result is True and ret.changes == {}

    manifests[0] = cm(namespace, data={"a": "2"})
    ret = state.present("kube objects", manifests=manifests, test=True)
    assert ret.result is None
    assert ret.changes == {f"ConfigMap/{namespace}/settings": {"data.a": {"old": "1", "new": "2"}}}
    ret = state.present("kube objects", manifests=manifests)
    assert ret.result is True and read_cm(kube_api, namespace, "settings").data == {"a": "2"}

    got = loaders.modules.palplat_kube.get("v1", "Secret", "creds", namespace)
    assert got["data"] == {"pw": "<hidden>"}
    assert pw not in json.dumps(loaders.modules.palplat_kube.list("v1", "Secret", namespace))

    # bad input: fails before anything changes, naming the problem
    ret = state.present("bad", manifests=[{"kind": "ConfigMap"}])
    assert ret.result is False and "manifests[0]: apiVersion, metadata.name missing" in ret.comment

    # an unreadable kubeconfig: fails naming the pillar key to fix, nothing changed
    ret = state.present("nocfg", manifests=manifests, kubeconfig="/nonexistent/kubeconfig")
    assert ret.result is False and "palplat:k3s:kubeconfig" in ret.comment

    # wait: the Deployment never becomes Available here
    ret = state.present("waiter", manifest=deployment(namespace), wait=True, timeout=2)
    assert ret.result is False
    assert f"Deployment/{namespace}/web" in ret.comment and "not ready" in ret.comment
    assert f"Deployment/{namespace}/web" in ret.changes

    # absent: test mode is a dry-run delete; then deleted; then nothing to do
    ret = state.absent("gone", manifest=manifests[0], test=True)
    assert ret.result is None and f"ConfigMap/{namespace}/settings" in ret.changes
    assert read_cm(kube_api, namespace, "settings")
    ret = state.absent("gone", manifest=manifests[0])
    assert ret.result is True and ret.changes
    ret = state.absent("gone", manifest=manifests[0])
    assert ret.result is True and ret.changes == {}
    ret = state.absent("by owner", owner="kube-objects")
    assert ret.result is True and list(ret.changes) == [f"Secret/{namespace}/creds"]
    for r in [ret]:
        assert pw not in json.dumps(r.changes) + r.comment


# ------------------------------------------------------------------------- no-op cost


@pytest.mark.slow
def test_noop_of_100_objects_is_one_list_per_kind(k, namespace):
    """The issue's 100 plain objects, already converged: a no-op costs one LIST per kind
    (the floor) and no write. Prints the figures (pytest -s)."""
    owner = owner_id()
    objs = [cm(namespace, f"c{i}", data={"i": str(i)}) for i in range(50)]
    objs += [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"s{i}", "namespace": namespace},
            "stringData": {"v": f"value-{i}"},
        }
        for i in range(25)
    ]
    objs += [service(namespace, f"svc{i}") for i in range(15)]
    objs += [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": f"sa{i}", "namespace": namespace},
        }
        for i in range(10)
    ]
    reset(k)
    t0 = time.monotonic()
    kube.converge(k, objs, owner=owner, dry_run=False)
    create_s, create_req = time.monotonic() - t0, k.stats["requests"]

    def floor():
        for kind in ("ConfigMap", "Secret", "Service", "ServiceAccount"):
            k.list("v1", kind, label_selector=kube.owner_selector(owner))

    runs = []
    for _ in range(3):
        reset(k)
        t0 = time.monotonic()
        floor()
        floor_s = time.monotonic() - t0
        reset(k)
        t0 = time.monotonic()
        out = kube.converge(k, objs, owner=owner, dry_run=False)
        runs.append((time.monotonic() - t0, floor_s))
        assert out["changes"] == {}
        assert k.stats["requests"] == 4 and k.stats["writes"] == 0, dict(k.stats["verbs"])
    reset(k)
    t0 = time.monotonic()
    plan = kube.converge(k, objs, owner=owner, dry_run=True)
    plan_s = time.monotonic() - t0
    assert plan["changes"] == {} and k.stats["requests"] == 4
    noop_s, floor_s = min(r[0] for r in runs), min(r[1] for r in runs)
    print(
        f"\n100 objects: create {create_s:.2f}s/{create_req} requests; no-op {noop_s * 1000:.0f}ms "
        f"(4 requests, 0 writes), test mode {plan_s * 1000:.0f}ms; floor (4 LISTs) "
        f"{floor_s * 1000:.0f}ms; ratio {noop_s / floor_s:.2f}"
    )


@pytest.mark.salt
def test_execution_module_through_salt_loader(loaders, namespace):
    mod = loaders.modules.palplat_kube
    pw = "em-" + uuid.uuid4().hex
    sec = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "em", "namespace": namespace},
        "stringData": {"pw": pw},
    }
    got = mod.apply(sec, owner="em", dry_run=True)
    assert got["data"] == {"pw": "<hidden>"}
    assert mod.get("v1", "Secret", "em", namespace) is None
    got = mod.apply(sec, owner="em")
    assert got["metadata"]["labels"]["palplat.io/owner"] == "em"
    assert pw not in json.dumps(got)
    assert mod.diff(sec, owner="em") == {}
    changed = dict(sec, stringData={"pw": pw + "x"})
    assert mod.diff(changed, owner="em") == {"data.pw": {"old": "<hidden>", "new": "<hidden>"}}
    yaml_cm = f"{{apiVersion: v1, kind: ConfigMap, metadata: {{name: y, namespace: {namespace}}}}}"
    assert mod.apply(yaml_cm)["metadata"]["name"] == "y"
    names = [o["metadata"]["name"] for o in mod.list("v1", "ConfigMap", namespace)]
    assert "y" in names
    assert mod.wait([["v1", "ConfigMap", "y", namespace]], timeout=5)["ready"] == [
        f"ConfigMap/{namespace}/y"
    ]
    assert mod.delete("v1", "ConfigMap", "y", namespace, dry_run=True) is True
    assert mod.get("v1", "ConfigMap", "y", namespace) is not None
    assert mod.delete("v1", "ConfigMap", "y", namespace) is True
    assert mod.delete("v1", "ConfigMap", "y", namespace) is False
    from salt.exceptions import CommandExecutionError, SaltInvocationError

    with pytest.raises(CommandExecutionError, match="not ready"):
        mod.wait(["v1", "ConfigMap", "never", namespace], timeout=1)
    with pytest.raises(SaltInvocationError, match="mapping"):
        mod.apply("- just\n- a list")


# ------------------------------------------------------------------ vendor CRDs


REFERENCE_CRDS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "crds"


def test_vendor_crds_converge_and_noop(k, namespace):
    """The real Prometheus/CNPG/Argo/Tailscale CRDs (big schemas): create, no-op with one
    LIST and no write, then a custom resource. Each is moved to a test-only group so the
    session's other tests (helm charts with the same CRDs) are not disturbed."""
    if not REFERENCE_CRDS.is_dir():
        pytest.skip(f"{REFERENCE_CRDS} is absent (vendor reference data)")
    import yaml

    tag = uuid.uuid4().hex[:6]
    crds = []
    for path in sorted(REFERENCE_CRDS.glob("*.yaml")):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for doc in yaml.load_all(path.read_text(), Loader=loader):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                spec = doc["spec"]
                spec["group"] = f"t{tag}.{spec['group']}"
                doc["metadata"] = {"name": f"{spec['names']['plural']}.{spec['group']}"}
                crds.append(doc)
    assert len(crds) == 12
    owner = owner_id()
    try:
        out = kube.converge(k, crds, owner=owner, dry_run=False)
        assert set(out["actions"].values()) == {"create"}
        reset(k)
        t0 = time.monotonic()
        out = kube.converge(k, crds, owner=owner, dry_run=True)
        took = time.monotonic() - t0
        assert out["changes"] == {}
        assert k.stats["requests"] == 1 and k.stats["writes"] == 0, dict(k.stats["verbs"])
        print(f"\n12 vendor CRDs no-op: {took * 1000:.0f}ms, 1 request")
        rule = {
            "apiVersion": f"t{tag}.monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "r", "namespace": namespace},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]},
        }
        assert kube.converge(k, [rule], owner=owner, dry_run=False)["actions"] == {
            f"PrometheusRule/{namespace}/r": "create"
        }
        # one changed field in a 400 KB schema: the diff is one line
        crds[0]["spec"]["versions"][0]["additionalPrinterColumns"][0]["priority"] = 1
        plan = kube.converge(k, crds, owner=owner, dry_run=True)
        (only,) = plan["changes"].values()
        assert list(only) == ["spec.versions[v1alpha1].additionalPrinterColumns[0].priority"] or (
            len(only) == 1
        )
    finally:
        for c in crds:
            k.delete(kube.CRD_API, "CustomResourceDefinition", c["metadata"]["name"])
