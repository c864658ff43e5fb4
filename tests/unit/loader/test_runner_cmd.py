"""The runners' ``cmd``: a return whose event this process missed is read from the job
cache; a minion in neither keeps Salt's "did not return" words (an error in the report)."""

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

    def get_cli_event_returns(self, jid, minions, timeout, tgt, tgt_type):
        yield {"a": {"ret": {"ok": 1}}}
        yield {"b": {"out": "no_return", "ret": "Minion did not return. [No response]"}}
        yield {"c": {"out": "no_return", "ret": "Minion did not return. [No response]"}}

    def get_cache_returns(self, jid):
        return {"a": {"ret": {"ok": "stale"}}, "b": {"ret": {"ok": 2}}}


def test_missed_event_read_from_the_job_cache(monkeypatch):
    cmd = _runner(monkeypatch, Client())._cmd("*", "glob", 30)
    assert cmd("test.ping") == {
        "a": {"ok": 1},  # the event wins
        "b": {"ok": 2},  # the event was missed: the job cache has it
        "c": "Minion did not return. [No response]",  # nowhere: reported as such
    }
