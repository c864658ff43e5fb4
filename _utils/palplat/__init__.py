"""palplat: the library behind the palplat Salt extension.

Plain Python: no Salt loader globals. Loader modules (``_modules``, ``_states``,
``_runners``) pass in ``opts``, callables and clients, and translate ``PalplatError``.
"""

__version__ = "0.1.0"
