"""State module (the orchestration, on the master): ``palplat_dora.recorded``, the last
state of ``palplat.full``. It turns the returns of the run's stages (``__running__``) into
ledger records and sends them to the minion that holds the ledger
(``palplat_dora.record``); docs/dora.md.

It runs whatever the stages did (no requisites, no failhard before it), changes nothing a
plan shows (no ``changes``), records nothing in test mode, and never fails a run: records
that no minion took wait in the master's spool for the next run.
"""

import os

from palplat import loaderkit
from palplat.dora import api, ci, records
from palplat.dora.ledger import Spool


def _send(tgt, tgt_type, timeout):
    def send(recs):
        answers = __salt__["saltutil.cmd"](
            tgt, "palplat_dora.record", tgt_type=tgt_type, kwarg={"records": recs},
            timeout=timeout,
        )  # fmt: skip
        taken = False
        for data in (answers or {}).values():
            ret = (data or {}).get("ret")
            if isinstance(ret, dict) and "added" in ret:
                taken = True
        return taken

    return send


@loaderkit.state
def recorded(name="palplat-dora", tgt="I@palplat:*", tgt_type="compound", timeout=60):
    """Record this orchestration's outcome per platform component in the DORA ledger."""
    if loaderkit.is_test(__opts__):
        return loaderkit.state_ret(name, {}, True, "test mode: nothing is recorded")
    given = (__pillar__ or {}).get(ci.PILLAR_KEY) or {}
    # Salt injects __running__ into the globals of the function it calls: loaderkit's
    # wrapper when the state is decorated
    running = vars(loaderkit).get("__running__") or globals().get("__running__") or {}
    recs = records.from_orchestration(
        running, revision=given.get("revision"), commits=given.get("commits")
    )
    spool = Spool(os.path.join(__opts__["cachedir"], "palplat", "dora-master-spool.jsonl"))
    out = api.deliver(_send(tgt, tgt_type, int(timeout)), spool, recs)
    run = recs[0]
    applies = recs[1:]
    what = ", ".join(f"{r['c']}: {r['o']}" for r in applies) or "no component changed"
    if out["spooled"]:
        comment = (
            f"run {run['run']} ({what}): no minion took the records; {out['spooled']} wait in "
            f"{out['spool']} for the next run"
        )
    else:
        comment = f"recorded run {run['run']} (revision {run['rev'] or 'not given'}): {what}"
    return loaderkit.state_ret(name, {}, True, comment)
