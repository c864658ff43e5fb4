"""State module: ``palplat_config.validated`` fails (changing nothing) on a bad pillar.

Every palplat SLS requires it first, so a pillar typo stops the run before any change.
"""

import os as _os
import sys as _sys

_sys.path[:0] = [
    _p
    for _p in (
        _os.path.join(_os.path.dirname(_os.path.dirname(__file__)), _d)
        for _d in ("utils", "_utils")
    )
    if _os.path.isdir(_os.path.join(_p, "palplat")) and _p not in _sys.path
]

from palplat import config, loaderkit, redact  # noqa: E402
from palplat.errors import PillarError  # noqa: E402

__virtualname__ = "palplat_config"


def __virtual__():
    return __virtualname__


def validated(name="palplat"):
    """Validate the ``palplat`` pillar. Never changes anything; same in test mode."""
    redact.install_log_filter()
    try:
        config.load(__pillar__)
    except PillarError as exc:
        return loaderkit.failed(name, exc)
    return loaderkit.state_ret(name, {}, True, "the palplat pillar is valid")
