"""palplat.kube re-exports its submodules' API: ``from palplat.kube import X``."""

from __future__ import annotations

import palplat.kube
from palplat.kube import client, differ, errors, ownership, refs, runner, waiter


def test_every_exported_name_resolves_to_its_home():
    homes = (client, differ, errors, ownership, refs, runner, waiter)
    for name in palplat.kube.__all__:
        value = getattr(palplat.kube, name)
        assert any(getattr(m, name, None) is value for m in homes), name


def test_the_helpers_other_areas_share_are_public():
    for name in ("project", "holds", "secret_as_stored", "normalize", "diff", "converge", "wait"):
        assert callable(getattr(palplat.kube, name)), name
        assert name in palplat.kube.__all__
