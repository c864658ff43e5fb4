"""The runners' ``cmd``: a return whose event this process missed is read from the job
cache; a minion in neither is left out (the report says it did not answer)."""

import importlib.util

from tests.support.saltenv import REPO


def _runner(monkeypatch, client):
    spec = importlib.util.spec_from_file_location("palplat_runner", REPO / "_runners/palplat.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.__opts__ = {}
    monkeypatch.setattr(mod.salt.client, "get_local_client", lambda **kw: client)
    return mod


class Client:
    def run_job(self, *a, **kw):
        return {"jid": "1", "minions": ["a", "b", "c"]}

    def get_iter_returns(self, jid, minions, timeout, tgt, tgt_type, block=True):
        # Salt yields nothing for a minion whose event it did not see (b, c)
        yield {"a": {"ret": {"ok": 1}}}

    def get_cache_returns(self, jid):
        return {"a": {"ret": {"ok": "stale"}}, "b": {"ret": {"ok": 2}}}  # c: no return at all


def test_missed_event_read_from_the_job_cache(monkeypatch):
    cmd = _runner(monkeypatch, Client())._cmd("*", "glob", 30)
    assert cmd("test.ping") == {
        "a": {"ok": 1},  # the event wins
        "b": {"ok": 2},  # the event was missed: the job cache has it
    }


def test_an_unreadable_job_cache_is_no_answer(monkeypatch):
    import salt.exceptions

    class Broken(Client):
        def get_cache_returns(self, jid):
            raise salt.exceptions.SaltClientError("Could not examine master job cache")

    cmd = _runner(monkeypatch, Broken())._cmd("*", "glob", 30)
    assert cmd("test.ping") == {"a": {"ok": 1}}
