"""Runner: the orchestrated confirm of a commit-confirmed firewall change, on the master.

    salt-run palplat_nftables.baseline [tgt=...]   # probe SSH before the firewall stage
    salt-run palplat_nftables.confirm [tgt=...]    # probe again; confirm only with proof

``palplat.full`` runs ``baseline`` before its firewall stage and ``confirm`` after it. A
change that waits for confirmation is kept only when a NEW connection to the node's live
SSH port, opened from outside the node (the master, or the minions
``palplat:firewall:confirm:probe_from`` names), succeeds, and every connection that
worked in the baseline still works; otherwise the rollback stays armed, this runner fails
(which stops the orchestration) and says how to confirm by hand. The logic is in
``palplat.nft.probe``; this module only talks to minions.
"""

import os

import salt.client
import salt.utils.minions

from palplat import loaderkit, redact, saltjobs
from palplat.nft import probe

__virtualname__ = "palplat_nftables"
TARGET = "I@palplat:*"
ROLLED_BACK = "the last firewall change was rolled back by its timer, not confirmed"


def __virtual__():
    return __virtualname__


def _client():
    return salt.client.get_local_client(mopts=__opts__)


def _cache_dir():
    return os.path.join(__opts__["cachedir"], "palplat", "firewall-probe")


def _one(client, mid, fun, timeout, arg=(), kwarg=None):
    """One minion's ``{"ret", "retcode"}`` (None: no answer), through
    :func:`palplat.saltjobs.gather` like the other runners (no missed return event)."""
    got = saltjobs.gather(client, mid, fun, arg, "glob", kwarg, timeout).returns
    return got.get(mid)


def _infos(client, tgt, tgt_type, timeout):
    """``{minion: probe_info}``; a minion that failed or did not answer: a message."""
    expected = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)["minions"]
    got = saltjobs.gather(
        client, tgt, "palplat_nftables.probe_info", tgt_type=tgt_type, timeout=timeout
    ).returns
    out = {}
    for mid in sorted(set(expected) | set(got)):
        r = got.get(mid)
        if r is None:
            out[mid] = f"{mid} did not answer palplat_nftables.probe_info within {timeout}s"
        elif r.get("retcode") or not isinstance(r.get("ret"), dict):
            out[mid] = redact.mask_text(str(r.get("ret")))
        else:
            out[mid] = r["ret"]
    return out


def _connector(client, minion, vantage, info):
    timeout = float(info.get("timeout") or 3)
    if vantage == probe.MASTER:
        ns = info.get("probe_netns")
        if ns:
            return lambda t: probe.connect_in(ns, t.addr, t.port, timeout)
        return lambda t: probe.connect_here(t.addr, t.port, timeout)

    def remote(t):
        r = _one(
            client, vantage, "network.connect", int(timeout) + 30, [t.addr, t.port],
            {"timeout": timeout},
        )  # fmt: skip
        if r is None:
            return {"ok": False, "local": False, "error": f"minion {vantage} did not answer"}
        ret = r.get("ret") if isinstance(r.get("ret"), dict) else {}
        return {
            "ok": ret.get("result") is True,
            # the node probing itself proves nothing
            "local": vantage == minion,
            "error": str(ret.get("comment") or r.get("ret"))[:300],
        }

    return remote


def _probe(client, minion, info):
    ts = probe.targets(info.get("addresses") or [], info.get("ssh_ports") or [])
    results = {}
    for vantage in info.get("probe_from") or [probe.MASTER]:
        connect = _connector(client, minion, vantage, info)
        if vantage == probe.MASTER:
            results[vantage] = probe.probe(ts, connect)
        else:  # one LocalClient call at a time
            results[vantage] = {t.key: dict(connect(t)) for t in ts}
    return results


def _short(results):
    return {v: {k: r.get("ok") for k, r in res.items()} for v, res in results.items()}


def baseline(tgt=TARGET, tgt_type="compound", timeout=60):
    """
    Probe every targeted node's SSH port(s) from its vantage points before the firewall
    stage and keep the result on the master (the baseline ``confirm`` compares with).
    Changes nothing on the minions.

    CLI Example:

    .. code-block:: bash

        salt-run palplat_nftables.baseline tgt=host1 tgt_type=glob
    """
    loaderkit.env(__salt__, __opts__)
    client = _client()
    out, bad = {}, False
    for mid, info in _infos(client, tgt, tgt_type, timeout).items():
        if not isinstance(info, dict):
            out[mid] = info
            bad = True
            continue
        if not info.get("enabled"):
            out[mid] = "palplat:firewall:enabled is false"
            continue
        results = _probe(client, mid, info)
        probe.save_baseline(_cache_dir(), mid, results)
        out[mid] = _short(results)
    if bad:
        __context__["retcode"] = 1
    return {"result": not bad, "baseline": out}


def confirm(tgt=TARGET, tgt_type="compound", timeout=60, test=False):
    """
    Confirm each targeted node's pending firewall change only when a NEW connection to its
    live SSH port from outside the node succeeds (and nothing that worked in the baseline
    fails); otherwise leave the rollback armed, fail, and say how to confirm by hand.
    ``test=True``: probe and decide, confirm nothing.

    CLI Example:

    .. code-block:: bash

        salt-run palplat_nftables.confirm
        salt-run palplat_nftables.confirm tgt=host1 tgt_type=glob
    """
    test = test or loaderkit.env(__salt__, __opts__).test
    client = _client()
    out, failed = {}, []
    for mid, info in _infos(client, tgt, tgt_type, timeout).items():
        if not isinstance(info, dict):
            out[mid] = {"confirmed": False, "comment": info}
            failed.append(mid)
            continue
        if info.get("enabled") and not info.get("pending") and info.get("rolled_back"):
            if test:  # the minion's confirm reports it once: a plan leaves that to the run
                out[mid] = {"confirmed": None, "comment": ROLLED_BACK}
                continue
            # the minion's confirm reports the rollback (once) and says what to do
            r = _one(client, mid, "palplat_nftables.confirm", timeout)
            why = (r or {}).get("ret") or ROLLED_BACK
            out[mid] = {"confirmed": False, "comment": redact.mask_text(str(why))}
            failed.append(mid)
            continue
        if not info.get("enabled") or not info.get("pending"):
            out[mid] = {"confirmed": False, "comment": "no firewall change waits for confirmation"}
            continue
        results = _probe(client, mid, info)
        decision = probe.decide(results, probe.load_baseline(_cache_dir(), mid))
        entry = {"probes": _short(results), "why": decision.why}
        if not decision.confirm:
            entry.update(confirmed=False, comment=f"{decision.why}; {probe.by_hand(mid, info)}")
            out[mid] = entry
            failed.append(mid)
            continue
        if test:
            entry.update(confirmed=None, comment=f"would confirm: {decision.why}")
            out[mid] = entry
            continue
        r = _one(client, mid, "palplat_nftables.confirm", timeout)
        ret = (r or {}).get("ret")
        if r is None or r.get("retcode") or not isinstance(ret, dict) or not ret.get("confirmed"):
            entry.update(confirmed=False, comment=f"palplat_nftables.confirm failed: {ret}")
            failed.append(mid)
        else:
            entry.update(confirmed=True, comment=f"{ret.get('comment')}: {decision.why}")
        out[mid] = entry
    if failed:
        __context__["retcode"] = 1
    comment = (
        "; ".join(f"{m}: {out[m]['comment']}" for m in failed)
        if failed
        else "every pending firewall change was proven and confirmed (or none was pending)"
    )
    return redact.mask({"result": not failed, "comment": comment, "minions": out})
