"""Runner: quorum-safe k3s upgrades across minions.

.. code-block:: bash

    salt-run palplat_k3s.plan                  # the order, changes nothing
    salt-run palplat_k3s.upgrade               # servers one at a time, then agents drained
    salt-run palplat_k3s.upgrade tgt='k3s-*' tgt_type=glob
    salt-run palplat_k3s.remove minion=agent3 [test=True]   # drain, uninstall, delete

The logic is in ``palplat.k3s.upgrade``; this module only talks to minions.
"""

import salt.client
import salt.utils.minions

from palplat import loaderkit, redact, saltjobs
from palplat.errors import PalplatError
from palplat.k3s import cluster
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


def _statuses(client, tgt, tgt_type, timeout, plan=None):
    expected = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)["minions"]
    got = saltjobs.gather(
        client,
        tgt,
        "palplat_k3s.status",
        tgt_type=tgt_type,
        timeout=timeout,
        kwarg={"plan": plan} if plan else None,
    ).returns
    out = {}
    for mid in sorted(set(expected) | set(got)):
        r = got.get(mid)
        if r is None:
            out[mid] = "did not answer"
        elif r.get("retcode") or not isinstance(r.get("ret"), dict):
            out[mid] = redact.mask_text(str(r.get("ret")))
        else:
            out[mid] = r.get("ret")
    return out


def _nodes(client, statuses, timeout=30):
    """The cluster's Nodes (``palplat_k3s.nodes``) from the minion that holds the
    cluster, else another server whose k3s runs; None when none can say (a bare fleet)."""
    servers = sorted(
        (not s.get("holds_cluster"), m)
        for m, s in statuses.items()
        if isinstance(s, dict)
        and s.get("mode") == "install"
        and s.get("role") == "server"
        and s.get("active")
    )
    for _, mid in servers:
        r = saltjobs.gather(client, mid, "palplat_k3s.nodes", tgt_type="glob", timeout=timeout)
        ret = r.returns.get(mid) or {}
        if not ret.get("retcode") and isinstance(ret.get("ret"), list):
            return ret["ret"]
    return None


def _caller(client, timeout):
    def call(minion, fun, *args, **kwargs):
        r = saltjobs.gather(
            client, minion, fun, list(args), "glob", kwargs or None, timeout
        ).returns.get(minion)
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


def plan(tgt="I@palplat:*", tgt_type="compound", timeout=60, plan=None):
    """
    The upgrade order for the targeted minions; changes nothing. ``plan``: of a pull
    request's pillar (what ``palplat.plan pillarenv=...`` passes). ``waves``: the order
    the k3s stage joins them in (``palplat.full``): the minion that holds the cluster,
    then each further server, then the agents.

    CLI Example:

    .. code-block:: bash

        salt-run palplat_k3s.plan
    """
    loaderkit.env(__salt__, __opts__)
    client = _client()
    statuses = _statuses(client, tgt, tgt_type, timeout, plan)
    waves = cluster.waves(statuses)
    try:
        out = k3s_upgrade.plan(statuses, _nodes(client, statuses) if waves else None)
    except PalplatError as exc:
        return {"result": False, "comment": redact.mask_text(str(exc)), "waves": waves}
    return {**out, "waves": waves}


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
        statuses = _statuses(client, tgt, tgt_type, 60)
        nodes = _nodes(client, statuses) if cluster.waves(statuses) else None
        the_plan = k3s_upgrade.plan(statuses, nodes)
    except PalplatError as exc:
        __context__["retcode"] = 1
        return {"result": False, "comment": redact.mask_text(str(exc)), "changes": {}, "retcode": 1}
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
            "retcode": 1,
        }
    return {"result": True, "comment": "upgraded", "changes": {"plan": the_plan, "done": done}}


def remove(minion, tgt="I@palplat:*", tgt_type="compound", purge=True, timeout=600, test=False):
    """
    Take ``minion``'s node out of the cluster: (a server: only while etcd keeps quorum
    after it, checked on the cluster's own view) cordon and drain it, uninstall k3s on
    it (``palplat_k3s.absent``, ``purge``: its data too), delete its Node. Nothing else
    is touched; the first failure stops it. ``test=True`` returns the steps only. The
    minion that holds the cluster is not removed. Afterwards take the minion out of the
    pillar's top file (else ``palplat.full`` installs k3s there again).

    CLI Example:

    .. code-block:: bash

        salt-run palplat_k3s.remove minion=agent3 test=True
        salt-run palplat_k3s.remove minion=server3
    """
    test = test or loaderkit.env(__salt__, __opts__).test
    client = _client()
    statuses = _statuses(client, tgt, tgt_type, 60)
    if minion not in statuses:
        statuses.update(_statuses(client, minion, "glob", 60))
    try:
        nodes = _nodes(client, {m: s for m, s in statuses.items() if m != minion}) or []
        the_plan = cluster.removal_plan(minion, statuses, nodes, purge=bool(purge))
    except PalplatError as exc:
        __context__["retcode"] = 1
        return {"result": False, "comment": redact.mask_text(str(exc)), "changes": {}, "retcode": 1}
    if test:
        return {"result": None, "comment": f"would remove {minion}", "changes": the_plan}
    progress = loaderkit.Progress(_fire, "k3s/remove")
    try:
        done = cluster.remove(
            the_plan, _caller(client, timeout), timeout=timeout, progress=progress
        )
    except cluster.RemovalError as exc:
        __context__["retcode"] = 1
        return {
            "result": False,
            "comment": str(exc),
            "changes": {"plan": the_plan, "done": exc.done},
            "retcode": 1,
        }
    return {
        "result": True,
        "comment": (
            f"removed {minion} (node {the_plan['node']}); now take it out of the pillar's "
            f"top file and remove its key (salt-key -d {minion}), or palplat.full installs "
            "k3s there again"
        ),
        "changes": {"plan": the_plan, "done": done},
    }
