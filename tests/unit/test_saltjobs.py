"""palplat.saltjobs.gather: every return of a job, also one whose event was missed (read
from the job cache within a second), and no wait beyond Salt's for a silent minion."""

from __future__ import annotations

import itertools

from palplat import saltjobs


class Client:
    """Salt's LocalClient as gather uses it. ``events``: the return events in order
    (None: nothing came during a poll); ``cache``: the job cache after the run."""

    def __init__(self, minions, events, cache=None):
        self.minions, self.events, self.cache = minions, events, cache or {}
        self.cache_reads = 0
        self.closed = False

    def run_job(self, tgt, fun, arg, tgt_type, timeout=None, kwarg=None, listen=False):
        assert listen  # subscribed before the publish: no return can come before
        return {"jid": "j1", "minions": list(self.minions)}

    def get_iter_returns(self, jid, minions, timeout=None, tgt=None, tgt_type=None, block=True):
        assert block is False  # it yields None while idle, so the cache can be read
        try:
            yield from self.events
        finally:
            self.closed = True

    def get_cache_returns(self, jid):
        self.cache_reads += 1
        return self.cache


def test_every_return_by_event():
    events = [{f"m{i}": {"ret": i, "retcode": 0}} for i in range(24)]
    c = Client([f"m{i}" for i in range(24)], events)
    got = saltjobs.gather(c, "*", "test.ping")
    assert got.rets() == {f"m{i}": i for i in range(24)} and got.missing == []
    assert c.cache_reads == 0 and got.from_cache == [] and c.closed


def test_a_missed_event_is_read_from_the_job_cache_within_a_poll():
    now = itertools.count(0.0, 0.25)  # each look at the clock: a quarter second later
    events = [{"m0": {"ret": 0}}] + [None] * 1000  # m1's event never comes
    c = Client(["m0", "m1"], events, cache={"m0": {"ret": 0}, "m1": {"ret": "late"}})
    got = saltjobs.gather(c, "*", "test.ping", timeout=30, clock=lambda: next(now))
    assert got.rets() == {"m0": 0, "m1": "late"} and got.from_cache == ["m1"]
    assert got.seconds <= 2.0 and c.cache_reads == 1


def test_a_silent_minion_is_left_out_when_salt_gives_up():
    c = Client(["m0", "m1"], [{"m0": {"ret": True}}, None, None, {"m1": {"failed": True}}])
    got = saltjobs.gather(c, "*", "test.ping", poll_after=1e9)
    assert got.rets() == {"m0": True} and got.missing == ["m1"]
    assert c.cache_reads == 1  # the last look, in case its return reached the cache


def test_nothing_published():
    class Down(Client):
        def run_job(self, *a, **k):
            return {}

    got = saltjobs.gather(Down([], []), "*", "test.ping")
    assert got.returns == {} and got.expected == []
