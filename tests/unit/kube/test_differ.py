"""palplat.kube.differ: normalize, diff, masking, and comparing with what the server stores."""

from __future__ import annotations

import pytest

from palplat import kube
from palplat.secret import Secret
from tests.unit.kube.objects import cm, live_of, secret


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
    assert kube.holds(value, want) == (kube.project(value, want) == want)


def test_secret_as_stored_folds_string_data_into_data():
    s = secret({"a": "YQ=="}, {"pw": "x", "n": 1})
    stored = kube.secret_as_stored(s)
    assert stored["data"] == {"a": "YQ==", "pw": "eA==", "n": "MQ=="}
    assert "stringData" not in stored
    assert s["stringData"] == {"pw": "x", "n": 1}  # the input is untouched
    plain = secret({"a": "YQ=="})
    assert kube.secret_as_stored(plain) is plain
    other = cm()
    other["stringData"] = {"pw": "x"}
    assert kube.secret_as_stored(other) is other  # only Secrets are folded
