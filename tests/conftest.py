"""Root test configuration: make the library importable and register shared fixtures."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "_utils"))
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"

# Shared fixture plugins (each area adds its own module here).
pytest_plugins = ["tests.support.cp_fixtures"]

os.environ.setdefault("PALPLAT_REPO", str(REPO))
