"""Execution module: validate and inspect the ``palplat`` pillar on a minion.

Thin: the logic is in the ``palplat`` library (``_utils/palplat``).
"""

import os as _os
import sys as _sys

# The library is the installed ``palplat`` package (pip mode) or, with file_roots +
# saltutil.sync_all, the copy synced beside this file's directory (extmods/utils).
_sys.path[:0] = [
    _p
    for _p in (
        _os.path.join(_os.path.dirname(_os.path.dirname(__file__)), _d)
        for _d in ("utils", "_utils")
    )
    if _os.path.isdir(_os.path.join(_p, "palplat")) and _p not in _sys.path
]

from palplat import config, loaderkit, redact  # noqa: E402
from palplat.errors import PalplatError  # noqa: E402

__virtualname__ = "palplat_config"


def __virtual__():
    return __virtualname__


def _load():
    redact.install_log_filter()
    try:
        return config.load(__pillar__)
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None


def validate():
    """
    Validate the ``palplat`` pillar; raise with every problem (path, found, fix).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_config.validate
    """
    _load()
    return True


def show():
    """
    Show the validated ``palplat`` pillar with defaults filled in and secrets masked.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_config.show
    """
    return redact.mask(_load().model_dump(mode="json", by_alias=True))


def problems():
    """
    List the problems of the ``palplat`` pillar (empty when it is valid).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_config.problems
    """
    redact.install_log_filter()
    return [str(p) for p in config.problems_of(__pillar__)]
