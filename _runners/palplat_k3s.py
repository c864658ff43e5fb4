"""Runner: quorum-safe k3s upgrades across minions.

    salt-run palplat_k3s.plan                  # the order, changes nothing
    salt-run palplat_k3s.upgrade               # servers one at a time, then agents drained
    salt-run palplat_k3s.upgrade tgt='k3s-*' tgt_type=glob

The logic is in ``palplat.k3s.upgrade``; this module only talks to minions.
"""

import salt.client
import salt.utils.minions

from palplat import loaderkit, redact
from palplat.errors import PalplatError
from palplat.k3s import upgrade as k3s_upgrade

__virtualname__ = "palplat_k3s"


def __virtual__():
    return __virtualname__


def _client():
    return salt.client.get_local_client(mopts=__opts__)


def _fire(data, tag):
    try:
        __jid_event__.fire_event(data, "progress")
    except Exception:  # noqa: BLE001, S110 - progress output is best effort
        pass


def _statuses(client, tgt, tgt_type, timeout):
    expected = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)["minions"]
    got = client.cmd(
        tgt, "palplat_k3s.status", tgt_type=tgt_type, timeout=timeout, full_return=True
    )
    out = {}
    for mid in sorted(set(expected) | set(got)):
        r = got.get(mid)
        if r is None:
            out[mid] = "did not answer"
        elif r.get("retcode"):
            out[mid] = redact.mask_text(str(r.get("ret")))
        else:
            out[mid] = r.get("ret")
    return out


def _caller(client, timeout):
    def call(minion, fun, *args, **kwargs):
        r = client.cmd(
            minion, fun, arg=list(args), kwarg=kwargs, timeout=timeout, full_return=True
        ).get(minion)
        if r is None:
            raise PalplatError(f"{minion} did not answer {fun} within {timeout}s")
        ret = r.get("ret")
        if fun.startswith("state."):
            if not isinstance(ret, dict):
                raise PalplatError(f"{fun}: {ret}")
            bad = [v.get("comment", "") for v in ret.values() if v.get("result") is not True]
            if bad:
                raise PalplatError("; ".join(str(b) for b in bad))
            return ret
        if r.get("retcode"):
            raise PalplatError(str(ret))
        return ret

    return call


def plan(tgt="I@palplat:*", tgt_type="compound", timeout=60):
    """
    The upgrade order for the targeted minions; changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-run palplat_k3s.plan
    """
    loaderkit.env(__salt__, __opts__)
    try:
        return k3s_upgrade.plan(_statuses(_client(), tgt, tgt_type, timeout))
    except PalplatError as exc:
        return {"result": False, "comment": redact.mask_text(str(exc))}


def upgrade(tgt="I@palplat:*", tgt_type="compound", timeout=600, test=False):
    """
    Upgrade k3s to each minion's ``palplat:k3s:version``: servers one at a time (each Ready
    at the new version before the next), then agents cordoned, drained, upgraded, Ready,
    uncordoned. Stops at the first failure. ``test=True`` returns the plan only.

    CLI Example:

    .. code-block:: bash

        salt-run palplat_k3s.upgrade
        salt-run palplat_k3s.upgrade test=True
    """
    test = test or loaderkit.env(__salt__, __opts__).test
    client = _client()
    try:
        the_plan = k3s_upgrade.plan(_statuses(client, tgt, tgt_type, 60))
    except PalplatError as exc:
        __context__["retcode"] = 1
        return {"result": False, "comment": redact.mask_text(str(exc)), "changes": {}}
    if not the_plan["steps"]:
        return {"result": True, "comment": "every k3s node runs its pinned version", "changes": {}}
    if test:
        return {"result": None, "comment": "would upgrade in this order", "changes": the_plan}
    progress = loaderkit.Progress(_fire, "k3s/upgrade")
    try:
        done = k3s_upgrade.execute(
            the_plan, _caller(client, timeout), progress=progress, timeout=timeout
        )
    except k3s_upgrade.UpgradeError as exc:
        __context__["retcode"] = 1  # fails the orchestration
        return {
            "result": False,
            "comment": str(exc),
            "changes": {"plan": the_plan, "done": exc.done},
        }
    return {"result": True, "comment": "upgraded", "changes": {"plan": the_plan, "done": done}}
