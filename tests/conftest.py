"""Root test configuration: make the library importable and register shared fixtures."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "_utils"))
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"

# Shared fixture plugins (each area adds its own module here).
pytest_plugins = ["tests.support.cp_fixtures"]

os.environ.setdefault("PALPLAT_REPO", str(REPO))


@pytest.fixture(scope="session", autouse=True)
def _salt_temp_log_handler():
    """Salt (imported by pytest-salt-factories) buffers every log record in a deferred
    handler that it flushes into pytest's already closed stderr at exit: drop it."""
    yield
    try:
        from salt._logging.impl import shutdown_temp_handler
    except ImportError:
        return
    shutdown_temp_handler()
