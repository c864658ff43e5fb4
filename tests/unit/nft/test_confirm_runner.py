"""The confirm runner (_runners/palplat_nftables.py) after a change its timer rolled back:
a real run fails once with the minion's message; a plan reports it and touches nothing."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[3] / "_runners" / "palplat_nftables.py"


@pytest.fixture
def runner(monkeypatch):
    spec = importlib.util.spec_from_file_location("palplat_nftables_runner", RUNNER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.__opts__, mod.__salt__, mod.__context__ = {}, {}, {}
    calls = []
    monkeypatch.setattr(mod, "_client", lambda: object())
    monkeypatch.setattr(
        mod,
        "_infos",
        lambda *a: {"m1": {"enabled": True, "pending": None, "rolled_back": True}},
    )

    def one(client, mid, fun, timeout, arg=(), kwarg=None):
        calls.append((mid, fun))
        return {"ret": "the firewall change to palplat was rolled back at 10:00:00", "retcode": 1}

    monkeypatch.setattr(mod, "_one", one)
    monkeypatch.setattr(mod.loaderkit, "env", lambda salt, opts: types.SimpleNamespace(test=False))
    mod.calls = calls
    return mod


def test_a_rolled_back_change_fails_the_real_confirm_once(runner):
    ret = runner.confirm()
    assert ret["result"] is False and runner.__context__["retcode"] == 1
    assert runner.calls == [("m1", "palplat_nftables.confirm")]
    assert "rolled back at 10:00:00" in ret["minions"]["m1"]["comment"]


def test_a_plan_reports_the_rollback_and_calls_no_minion(runner):
    ret = runner.confirm(test=True)
    assert runner.calls == []  # the minion's once-only report is left to the real run
    assert ret["result"] is True and ret["minions"]["m1"]["confirmed"] is None
    assert ret["minions"]["m1"]["comment"] == runner.ROLLED_BACK
