"""palplat.kube.ownership: ownership labels, the applied-hash, owner names."""

from __future__ import annotations

import pytest

from palplat import kube
from palplat.errors import InputError
from tests.unit.kube.objects import cm


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
