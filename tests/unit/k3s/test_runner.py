"""The upgrade runner's Salt glue: it loads through Salt's runner loader, and its call
function turns minion returns (state results, retcodes, silence) into pass/fail."""

from __future__ import annotations

import importlib.util

import pytest

from palplat.errors import PalplatError
from tests.support.saltenv import REPO


def _module():
    spec = importlib.util.spec_from_file_location(
        "palplat_k3s_runner", REPO / "_runners/palplat_k3s.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loads_through_salt_runner_loader(tmp_path):
    import salt.config
    import salt.loader

    opts = salt.config.master_config(None)
    opts.update(
        root_dir=str(tmp_path),
        cachedir=str(tmp_path / "cache"),
        extension_modules=str(tmp_path / "ext"),
        runner_dirs=[str(REPO / "_runners")],
        utils_dirs=[str(REPO / "_utils")],
    )
    runners = salt.loader.runner(opts, utils=salt.loader.utils(opts))
    assert "palplat_k3s.upgrade" in runners and "palplat_k3s.plan" in runners


class FakeClient:
    """Salt's LocalClient as ``palplat.saltjobs.gather`` uses it: publish, then the
    return events of the job."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []
        self.jobs = {}

    def run_job(self, tgt, fun, arg=(), tgt_type="glob", timeout=None, kwarg=None, listen=False):
        self.calls.append((tgt, fun, list(arg), kwarg))
        jid = str(len(self.calls))
        self.jobs[jid] = self.answers.get((tgt, fun), {})
        return {"jid": jid, "minions": [tgt]}

    def get_iter_returns(self, jid, minions, timeout=None, tgt=None, tgt_type=None, block=True):
        yield from ({m: r} for m, r in self.jobs[jid].items())

    def get_cache_returns(self, jid):
        return {}


def test_call_checks_state_results_and_retcodes():
    mod = _module()
    good = {"a": {"result": True, "comment": "ok"}}
    bad = {"a": {"result": True}, "b": {"result": False, "comment": "checksum mismatch"}}
    client = FakeClient(
        {
            ("s1", "state.sls"): {"s1": {"ret": good, "retcode": 0}},
            ("s2", "state.sls"): {"s2": {"ret": bad, "retcode": 2}},
            ("s1", "palplat_k3s.cordon"): {"s1": {"ret": "ERROR: node gone", "retcode": 1}},
        }
    )
    call = mod._caller(client, 30)
    assert call("s1", "state.sls", "palplat.k3s", pillar={"palplat_k3s_upgrade": True}) == good
    assert client.calls[0] == (
        "s1",
        "state.sls",
        ["palplat.k3s"],
        {"pillar": {"palplat_k3s_upgrade": True}},
    )
    with pytest.raises(PalplatError, match="checksum mismatch"):
        call("s2", "state.sls", "palplat.k3s")
    with pytest.raises(PalplatError, match="node gone"):
        call("s1", "palplat_k3s.cordon", "n1")
    with pytest.raises(PalplatError, match="did not answer"):
        call("s3", "palplat_k3s.node_ready", "n1")
