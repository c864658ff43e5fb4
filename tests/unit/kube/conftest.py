"""Every test starts and ends with an empty registry of secrets to mask."""

import pytest

from palplat import redact


@pytest.fixture(autouse=True)
def _clean_registry():
    redact.clear()
    yield
    redact.clear()
