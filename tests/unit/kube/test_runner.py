"""palplat.kube.runner without an API server: input checks and the no-op fast path."""

from __future__ import annotations

import pytest

from palplat import kube
from palplat.errors import InputError
from palplat.kube.runner import _unchanged
from palplat.secret import Secret
from tests.unit.kube.objects import cm, live_of, secret


def test_unchanged_fast_path():
    desired = kube.owned(cm({"a": "1"}), "o")
    live = live_of(cm({"a": "1"}))
    assert _unchanged(live, desired)
    live["data"]["a"] = "hand-edit"
    assert not _unchanged(live, desired)
    # a field the manifest dropped changes the hash: goes to the dry-run apply
    assert not _unchanged(live_of(cm({"a": "1", "b": "2"})), desired)
    # Secret stringData is compared as the data the server stores
    s = kube.owned(secret(string_data={"pw": "x"}), "o")
    stored = dict(s, data={"pw": "eA=="})
    del stored["stringData"]
    assert _unchanged(stored, s)


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
