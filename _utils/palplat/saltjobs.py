"""One Salt job across many minions, gathered so that no return is lost and no wait is
longer than Salt's own (the runners' ``_cmd``; the client is Salt's ``LocalClient``,
passed in, so this module does not import Salt).

What Salt's ``LocalClient.cmd`` does, and one thing more. Returns come as events on the
master's bus; with many minions returning at the same moment an event can be missed by
the listening runner while the return itself reached the master's job cache (seen with
two minions; a runner then waited until its timeout, then asked every minion whether it
still ran the job). Here, while waiting, the job cache is read for the minions whose
event has not come, once a second after the first ``poll_after`` seconds: a missed event
costs about a second, not the timeout.

Timeouts are Salt's: a minion that does not answer is given up after ``timeout`` plus
the master's ``gather_job_timeout`` (Salt asks it whether it still runs the job); one
that says it does is waited for, as ``salt`` on the command line does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Gathered:
    """The returns of one job: ``{minion: {"ret": ..., "retcode": ...}}``."""

    jid: str | None = None
    expected: list[str] = field(default_factory=list)
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)
    from_cache: list[str] = field(default_factory=list)  # found in the job cache, not by event
    seconds: float = 0.0

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.expected) - set(self.returns))

    def rets(self) -> dict[str, Any]:
        return {m: r.get("ret") for m, r in self.returns.items()}


def gather(
    client: Any,
    tgt: Any,
    fun: str | list[str],
    arg: Iterable[Any] = (),
    tgt_type: str = "glob",
    kwarg: Mapping[str, Any] | None = None,
    timeout: float = 30,
    *,
    poll_after: float = 1.0,
    poll_every: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> Gathered:
    """Publish ``fun`` to ``tgt`` and gather every return (see the module docstring)."""
    t0 = clock()
    pub = client.run_job(
        tgt, fun, list(arg), tgt_type, timeout=timeout, kwarg=dict(kwarg or {}) or None, listen=True
    )
    if not pub:
        return Gathered(seconds=clock() - t0)
    out = Gathered(jid=pub["jid"], expected=sorted(pub.get("minions") or []))
    want = set(out.expected)
    next_poll = t0 + poll_after
    it = client.get_iter_returns(
        pub["jid"], set(want), timeout=timeout, tgt=tgt, tgt_type=tgt_type, block=False
    )
    try:
        for got in it:
            for mid, data in (got or {}).items():
                if isinstance(data, Mapping) and not data.get("failed") and "ret" in data:
                    out.returns[mid] = dict(data)
            if want and want <= set(out.returns):
                break
            if got is None and clock() >= next_poll:
                next_poll = clock() + poll_every
                _from_cache(client, out, want)
                if want <= set(out.returns):
                    break
    finally:
        it.close()
    if want - set(out.returns):  # the last word: what reached the job cache
        _from_cache(client, out, want)
    out.seconds = clock() - t0
    return out


def _from_cache(client: Any, out: Gathered, want: set[str]) -> None:
    try:
        cached = client.get_cache_returns(out.jid)
    except Exception:  # noqa: BLE001 - a job cache that cannot be read: events only
        return
    for mid, data in (cached or {}).items():
        if mid in want and mid not in out.returns and isinstance(data, Mapping):
            if "ret" in data:  # the job cache holds a minion only once it returned
                out.returns[mid] = dict(data)
                out.from_cache.append(mid)
