"""palplat.kube without an API server: normalize, diff, masking, ownership, predicates."""

from __future__ import annotations

import pytest

from palplat import kube, redact
from palplat.errors import InputError
from palplat.secret import Secret


@pytest.fixture(autouse=True)
def _clean_registry():
    redact.clear()
    yield
    redact.clear()


def cm(data=None, **meta):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns", **meta},
        "data": data if data is not None else {"a": "1"},
    }


def live_of(obj):
    out = kube.owned(obj, "o")
    out["metadata"].update(
        resourceVersion="42",
        uid="u-1",
        generation=3,
        creationTimestamp="2026-01-01T00:00:00Z",
        managedFields=[{"manager": "palplat", "operation": "Apply"}],
    )
    out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    out["status"] = {"phase": "whatever"}
    return out


def test_normalize_drops_server_fields():
    n = kube.normalize(live_of(cm()))
    meta = n["metadata"]
    for f in ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"):
        assert f not in meta
    assert "status" not in n
    assert "annotations" not in meta  # only server/palplat bookkeeping annotations were there
    assert meta["labels"] == {kube.MANAGED_BY_LABEL: "palplat", kube.OWNER_LABEL: "o"}
    assert n["data"] == {"a": "1"}


def test_normalize_keeps_user_annotations_and_does_not_mutate():
    obj = live_of(cm(annotations={"team": "x"}))
    before = repr(obj)
    n = kube.normalize(obj)
    assert n["metadata"]["annotations"] == {"team": "x"}
    assert repr(obj) == before
    assert kube.normalize(None) == {}


def test_diff_only_changed_fields():
    a = live_of(cm({"a": "1", "b": "2"}))
    b = kube.owned(cm({"a": "1", "b": "3", "c": "new"}), "o")
    assert kube.diff(a, b) == {
        "data.b": {"old": "2", "new": "3"},
        "data.c": {"old": None, "new": "new"},
    }
    assert kube.diff(a, a) == {}
    # server bookkeeping differences alone are no change
    b2 = live_of(cm({"a": "1", "b": "2"}))
    b2["metadata"]["resourceVersion"] = "99"
    b2["status"] = {"other": True}
    assert kube.diff(a, b2) == {}


def test_diff_lists_by_name_and_index():
    def dep(image, env):
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "side", "image": "busybox"},
                            {"name": "web", "image": image, "args": env},
                        ]
                    }
                }
            },
        }

    d = kube.diff(dep("nginx:1", ["-a", "-b"]), dep("nginx:2", ["-a", "-c"]))
    assert d == {
        "spec.template.spec.containers[web].image": {"old": "nginx:1", "new": "nginx:2"},
        "spec.template.spec.containers[web].args[1]": {"old": "-b", "new": "-c"},
    }
    # a list whose length changes is shown whole
    d = kube.diff(dep("x", ["-a"]), dep("x", ["-a", "-b"]))
    assert d == {"spec.template.spec.containers[web].args": {"old": ["-a"], "new": ["-a", "-b"]}}


def test_diff_keys_with_dots_are_bracketed():
    d = kube.diff(
        cm(labels={"app.kubernetes.io/name": "a"}), cm(labels={"app.kubernetes.io/name": "b"})
    )
    assert d == {"metadata.labels[app.kubernetes.io/name]": {"old": "a", "new": "b"}}


def test_diff_create_and_delete():
    d = kube.diff(None, cm())
    assert list(d) == ["."] and d["."]["old"] is None and d["."]["new"]["data"] == {"a": "1"}
    d = kube.diff(cm(), None)
    assert d == {".": {"old": "present (ConfigMap/ns/c)", "new": None}}
    assert kube.diff(None, None) == {}


def secret(data=None, string_data=None):
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}}
    if data is not None:
        obj["data"] = data
    if string_data is not None:
        obj["stringData"] = string_data
    return obj


def test_secret_data_always_hidden_in_diff():
    d = kube.diff(secret({"pw": "b2xk", "same": "eA=="}), secret({"pw": "bmV3", "same": "eA=="}))
    assert d == {"data.pw": {"old": "<hidden>", "new": "<hidden>"}}
    d = kube.diff(None, secret(string_data={"pw": "plain-text-value"}))
    assert d["."]["new"]["stringData"] == {"pw": "<hidden>"}
    assert "plain-text-value" not in repr(d)
    d = kube.diff(secret({"pw": "b2xk"}), secret({"pw": "b2xk", "k2": "bmV3"}))
    assert d == {"data.k2": {"old": None, "new": "<hidden>"}}
    d = kube.diff(secret(), secret({"a": "YQ==", "b": "Yg=="}))
    assert d == {"data": {"old": None, "new": {"a": "<hidden>", "b": "<hidden>"}}}


def test_registered_secrets_masked_in_any_kind():
    Secret("registered-value-123")
    d = kube.diff(cm({"x": "1"}), cm({"x": "url=registered-value-123"}))
    assert d == {"data.x": {"old": "1", "new": "url=<hidden>"}}
    m = kube.masked(cm({"x": "registered-value-123"}))
    assert m["data"]["x"] == "<hidden>"


def test_masked_secret_object():
    obj = secret({"pw": "c2VjcmV0"}, {"other": "plain"})
    obj["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"stringData":{"other":"plain"}}'
    }
    m = kube.masked(obj)
    assert m["data"] == {"pw": "<hidden>"} and m["stringData"] == {"other": "<hidden>"}
    assert "plain" not in repr(m) and "c2VjcmV0" not in repr(m)
    assert obj["data"]["pw"] == "c2VjcmV0"  # the input is untouched
    assert kube.masked([obj])[0]["data"] == {"pw": "<hidden>"}
    assert kube.masked(None) is None


def test_owned_labels_and_stable_hash():
    a = kube.owned(cm(), "platform")
    labels = a["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/managed-by": "palplat", "palplat.io/owner": "platform"}
    h = a["metadata"]["annotations"][kube.HASH_ANNOTATION]
    assert kube.owned(a, "platform")["metadata"]["annotations"][kube.HASH_ANNOTATION] == h
    assert (
        kube.owned(cm({"a": "2"}), "platform")["metadata"]["annotations"][kube.HASH_ANNOTATION] != h
    )
    assert kube.owned(cm(), "other")["metadata"]["annotations"][kube.HASH_ANNOTATION] != h


@pytest.mark.parametrize("bad", ["", "has space", "x" * 64, "-lead", "a/b"])
def test_owner_must_be_label_value(bad):
    with pytest.raises(InputError, match="not a valid label value"):
        kube.check_owner(bad)


def test_unchanged_fast_path():
    desired = kube.owned(cm({"a": "1"}), "o")
    live = live_of(cm({"a": "1"}))
    assert kube._unchanged(live, desired)
    live["data"]["a"] = "hand-edit"
    assert not kube._unchanged(live, desired)
    # a field the manifest dropped changes the hash: goes to the dry-run apply
    assert not kube._unchanged(live_of(cm({"a": "1", "b": "2"})), desired)
    # Secret stringData is compared as the data the server stores
    s = kube.owned(secret(string_data={"pw": "x"}), "o")
    stored = dict(s, data={"pw": "eA=="})
    del stored["stringData"]
    assert kube._unchanged(stored, s)


def test_validate_manifests_names_every_problem():
    with pytest.raises(InputError) as exc:
        kube.validate_manifests(
            [cm(), {"kind": "ConfigMap", "metadata": {}}, "nope", cm()], "manifests"
        )
    msg = str(exc.value)
    assert "manifests[1]: apiVersion, metadata.name missing" in msg
    assert "manifests[2]: must be a mapping" in msg
    assert "manifests[3]: duplicates manifests[0] (ConfigMap/ns/c)" in msg
    assert "nothing was changed" in msg
    assert kube.validate_manifests(cm()) == [cm()]


def test_ready_predicates():
    crd = {"kind": "CustomResourceDefinition", "status": {"conditions": []}}
    assert kube.ready(crd) == (False, "no Established condition yet")
    crd["status"]["conditions"] = [{"type": "Established", "status": "True"}]
    assert kube.ready(crd)[0]
    assert kube.ready({"kind": "Namespace", "status": {"phase": "Terminating"}}) == (
        False,
        "phase Terminating",
    )
    dep = {
        "kind": "Deployment",
        "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}
            ],
        },
    }
    ok, why = kube.ready(dep)
    assert not ok and "MinimumReplicasUnavailable" in why and "0/2 replicas" in why
    dep["status"]["conditions"][0]["status"] = "True"
    assert kube.ready(dep) == (True, "Available")
    dep["metadata"]["generation"] = 3  # a new spec the controller has not seen yet
    assert not kube.ready(dep)[0]
    done = {"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert kube.ready(done) == (True, "Complete")
    job = {
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "n"},
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
        },
    }
    with pytest.raises(kube.WaitFailed, match="Job/n/j failed: BackoffLimitExceeded"):
        kube.ready(job)
    assert kube.ready({"kind": "ConfigMap"}) == (True, "exists")
    assert kube.ready(None) == (False, "does not exist")


def test_api_error_messages():
    err = kube._api_error(
        422, "", b'{"message":"spec.x: Invalid value","reason":"Invalid"}', "PATCH", "X/n/a"
    )
    assert str(err).startswith("apply X/n/a: the API server answered 422 Invalid: spec.x")
    assert "fix the manifest" in str(err)
    assert isinstance(kube._api_error(404, "Not Found", b"", "GET", "X"), kube.NotFound)
    Secret("admission-secret-value")
    err = kube._api_error(403, "", b'{"message":"denied admission-secret-value"}', "PATCH", "X")
    assert "admission-secret-value" not in str(err) and "<hidden>" in str(err)


@pytest.mark.parametrize(
    "value,want",
    [
        ({"a": 1, "b": 2}, {"a": 1}),
        ({"a": 1}, {"a": 2}),
        ({"a": [1, {"x": 1, "y": 2}]}, {"a": [1, {"x": 1}]}),
        ({"a": [1, 2]}, {"a": [1]}),
        ({"a": None}, {"a": None}),
        ({}, {"a": None}),
        ({}, {"a": {}}),
        ({"a": "x"}, {"a": {"b": 1}}),
        ([1, 2], [1, 2]),
    ],
)
def test_holds_matches_projection(value, want):
    assert kube._holds(value, want) == (kube.project(value, want) == want)


def test_secret_values_in_manifests_are_revealed_for_the_server_only():
    plain = cm({"a": "1"})
    assert kube.reveal(plain) is plain
    m = cm({"a": Secret("revealed-value-1"), "b": "x"})
    sent = kube.validate_manifests([m])[0]
    assert sent["data"] == {"a": "revealed-value-1", "b": "x"}
    assert kube.diff(None, m)["."]["new"]["data"]["a"] == "<hidden>"
    h1 = kube.owned(sent, "o")["metadata"]["annotations"][kube.HASH_ANNOTATION]
    other = kube.validate_manifests([cm({"a": Secret("revealed-value-2"), "b": "x"})])[0]
    assert kube.owned(other, "o")["metadata"]["annotations"][kube.HASH_ANNOTATION] != h1
