"""Shared pieces of the services unit tests: the example pillar, and a way to break it."""

from __future__ import annotations

import copy

import pytest

from palplat import config
from tests.support.fakes import platform


@pytest.fixture
def example() -> dict:
    """The example pillar's ``palplat`` mapping (init.sls merged with secrets.sls)."""
    return copy.deepcopy(platform.example())


@pytest.fixture
def load():
    def _load(p: dict):
        return config.load({"palplat": p})

    return _load
