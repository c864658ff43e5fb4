"""palplat: the library behind the palplat Salt extension.

Plain Python: no Salt loader globals. Loader modules (``_modules``, ``_states``,
``_runners``) pass in ``opts``, callables and clients, and translate ``PalplatError``.
"""

import os as _os

# pydantic looks for plugins in every distribution's entry points when it builds a model
# class. Under Salt 3007 on Python 3.12 Salt's vendored importlib_metadata has put its own
# finder on sys.meta_path, whose distributions the stdlib cannot sort: every model class
# (so the whole library) failed to import (seen on the GPU proof's Ubuntu 24.04 host).
# palplat uses no pydantic plugin.
_os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def _version() -> str:
    """The installed distribution's version (the git tag it was built from: ``make
    dist``); a checkout synced through file_roots has no distribution: ``0+checkout``."""
    from importlib import metadata

    try:
        return metadata.version("palplat")
    except metadata.PackageNotFoundError:
        return "0+checkout"
    except Exception:  # noqa: BLE001 - a broken metadata finder (see above) is no reason to fail
        return "0+unknown"


__version__ = _version()
