"""Execution module: palplat's nftables table (``inet palplat``) on a minion.

Thin: the logic is in ``palplat.nft`` (``_utils/palplat/nft.py``); see docs/firewall.md.
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

from palplat import config, nft, redact  # noqa: E402
from palplat.errors import PalplatError  # noqa: E402
from palplat.loaderkit import salt_exception  # noqa: E402

__virtualname__ = "palplat_nftables"


def __virtual__():
    return __virtualname__


def _fw():
    redact.install_log_filter()
    try:
        return config.load(__pillar__)
    except PalplatError as exc:
        raise salt_exception(exc) from None


def render():
    """
    Show the ``nft -f`` script palplat would load (it replaces only palplat's table).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.render
    """
    return nft.render(nft.desired(_fw()))


def plan():
    """
    Compare the live table with the pillar: rule-level changes, lock-out and
    commit-confirmed decisions. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.plan
    """
    cfg = _fw()
    if not cfg.firewall.enabled:
        return {"changes": {}, "comment": "palplat:firewall:enabled is false"}
    try:
        p = nft.plan(cfg)
    except PalplatError as exc:
        raise salt_exception(exc) from None
    return {"changes": p.changes, "comment": p.comment(test=True)}


def live():
    """
    The live palplat table, rule texts grouped by rule name (None when absent).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.live
    """
    fw = _fw().firewall
    try:
        table = nft.Nft(fw.netns).live(fw.table)
    except PalplatError as exc:
        raise salt_exception(exc) from None
    if table is None:
        return None
    return {name: [r.text() for r in rules] for name, rules in table.groups().items()}


def pending():
    """
    The firewall change waiting for confirmation, if any (deadline, mechanism).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.pending
    """
    fw = _fw().firewall
    rec = nft.pending(nft.Paths.of(fw))
    if rec is None:
        return None
    return {k: rec[k] for k in ("table", "netns", "deadline", "mechanism") if k in rec}


def confirm():
    """
    Confirm the last firewall change: cancel its automatic rollback and write the
    boot-time config. A successful ``palplat.full`` orchestration calls it at its end.
    Fails when the change was already rolled back.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.confirm
    """
    fw = _fw().firewall
    if not fw.enabled:
        return {"confirmed": False, "comment": "palplat:firewall:enabled is false"}
    try:
        return nft.confirm(fw, nft.Paths.of(fw))
    except PalplatError as exc:
        raise salt_exception(exc) from None


def rollback():
    """
    Roll back an unconfirmed firewall change now (what its timer would do).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.rollback
    """
    fw = _fw().firewall
    try:
        return nft.rollback_now(nft.Paths.of(fw))
    except PalplatError as exc:
        raise salt_exception(exc) from None
