"""Execution module: palplat's nftables table (``inet palplat``) on a minion.

Thin: the logic is in ``palplat.nft`` (``_utils/palplat/nft/``); see docs/firewall.md.
"""

from palplat import loaderkit, nft


def _cfg():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__).config()


@loaderkit.translate
def render():
    """
    Show the ``nft -f`` script palplat would load (it replaces only palplat's table).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.render
    """
    return nft.render(nft.desired(_cfg()))


@loaderkit.translate
def plan():
    """
    Compare the live table with the pillar: rule-level changes, lock-out and
    commit-confirmed decisions. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.plan
    """
    cfg = _cfg()
    if not cfg.firewall.enabled:
        return {"changes": {}, "comment": "palplat:firewall:enabled is false"}
    p = nft.plan(cfg)
    return {"changes": p.changes, "comment": p.comment(test=True)}


@loaderkit.translate
def live():
    """
    The live palplat table, rule texts grouped by rule name (None when absent).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.live
    """
    fw = _cfg().firewall
    table = nft.Nft(fw.netns).live(fw.table)
    if table is None:
        return None
    return {name: [r.text() for r in rules] for name, rules in table.groups().items()}


@loaderkit.translate
def pending():
    """
    The firewall change waiting for confirmation, if any (deadline, mechanism).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.pending
    """
    fw = _cfg().firewall
    rec = nft.pending(nft.Paths.of(fw))
    if rec is None:
        return None
    return {k: rec[k] for k in ("table", "netns", "deadline", "mechanism") if k in rec}


@loaderkit.translate
def probe_info():
    """
    What the master needs to prove SSH access before it confirms a change: the change
    waiting for confirmation (if any), the SSH port(s) sshd listens on, this node's
    addresses and the vantage points of ``palplat:firewall:confirm``. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.probe_info
    """
    return nft.probe_info(_cfg())


@loaderkit.translate
def confirm():
    """
    Confirm the last firewall change: cancel its automatic rollback and write the
    boot-time config. Run it by hand after you opened a NEW SSH connection to the host
    (an open session proves nothing: the firewall keeps established connections).
    ``palplat.full`` confirms by itself only when a new connection from outside the node
    succeeds (runner ``palplat_nftables.confirm``, docs/firewall.md).
    Fails when the change was already rolled back.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.confirm
    """
    fw = _cfg().firewall
    if not fw.enabled:
        return {"confirmed": False, "comment": "palplat:firewall:enabled is false"}
    return nft.confirm(fw, nft.Paths.of(fw))


@loaderkit.translate
def rollback():
    """
    Roll back an unconfirmed firewall change now (what its timer would do).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_nftables.rollback
    """
    fw = _cfg().firewall
    return nft.rollback_now(nft.Paths.of(fw))
