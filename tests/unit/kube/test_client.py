"""palplat.kube.client without an API server: what error answers become."""

from __future__ import annotations

from palplat import kube
from palplat.kube.client import _api_error
from palplat.secret import Secret


def test_api_error_messages():
    err = _api_error(
        422, "", b'{"message":"spec.x: Invalid value","reason":"Invalid"}', "PATCH", "X/n/a"
    )
    assert str(err).startswith("apply X/n/a: the API server answered 422 Invalid: spec.x")
    assert "fix the manifest" in str(err)
    assert isinstance(_api_error(404, "Not Found", b"", "GET", "X"), kube.NotFound)
    Secret("admission-secret-value")
    err = _api_error(403, "", b'{"message":"denied admission-secret-value"}', "PATCH", "X")
    assert "admission-secret-value" not in str(err) and "<hidden>" in str(err)
