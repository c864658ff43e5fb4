"""palplat.helm.store: the fingerprint Secret."""

from __future__ import annotations

from palplat import helm


def test_store_roundtrip():
    state = {"fingerprint": "f", "revision": 3, "objects": [{"kind": "ConfigMap"}]}
    m = helm.store_manifest("rel", "ns", state)
    assert m["metadata"]["labels"][helm.STORE_LABEL] == "rel"
    assert helm.decode_state(m) == state
    assert helm.decode_state({"data": {"state": "garbage"}}) == {}
