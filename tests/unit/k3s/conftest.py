"""Fixtures of the k3s unit tests."""

from __future__ import annotations

import pytest

from tests.support.fake_k3s import ReleaseServer
from tests.unit.k3s.support import V1, V2, V3


@pytest.fixture(scope="module")
def releases():
    with ReleaseServer() as rs:
        for v in (V1, V2, V3):
            rs.add_release(v, images=b"fake images " + v.encode())
        yield rs
