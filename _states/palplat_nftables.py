"""State module: ``palplat_nftables.managed`` converges palplat's nftables table.

Reads ``palplat:firewall`` (and the k3s role for the port profile). One ``nft -f``
transaction replaces only palplat's table; a change that narrows access to the
management ports is applied commit-confirmed. See docs/firewall.md.
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

from palplat import config, loaderkit, nft, redact  # noqa: E402
from palplat.errors import PalplatError  # noqa: E402

__virtualname__ = "palplat_nftables"


def __virtual__():
    return __virtualname__


def managed(name="palplat"):
    """Make the live palplat table equal to the one rendered from the pillar.

    Test mode runs the same plan (including ``nft -c``) and returns the same changes: the
    rules added, removed and changed by name, set element changes, whether the change
    would be commit-confirmed, and the boot-time files.
    """
    redact.install_log_filter()
    try:
        cfg = config.load(__pillar__)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    if not cfg.firewall.enabled:
        return loaderkit.state_ret(
            name, {}, True, "palplat:firewall:enabled is false: nftables is left alone"
        )
    try:
        plan = nft.plan(cfg)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    if not plan.changed:
        return loaderkit.state_ret(name, {}, True, plan.comment(test=False))
    if __opts__["test"]:
        return loaderkit.state_ret(name, plan.changes, None, plan.comment(test=True))
    progress = loaderkit.Progress(loaderkit.salt_fire(__salt__, __opts__), "firewall")
    try:
        nft.apply(plan, progress=progress)
    except PalplatError as exc:
        return loaderkit.failed(name, exc)
    return loaderkit.state_ret(name, plan.changes, True, plan.comment(test=False))
