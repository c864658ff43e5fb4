"""palplat.helm.execute without a cluster: progress of long helm calls, the verify step."""

from __future__ import annotations

from pathlib import Path

import pytest

from palplat import config, helm
from palplat.helm import execute

CHARTS = Path(__file__).resolve().parents[2] / "fixtures" / "charts"


def test_long_helm_call_reports_progress():
    import time

    from palplat import loaderkit

    events = []
    ctx = helm.Context(helm=None, kube=None)
    ctx.progress = loaderkit.Progress(lambda d, t: events.append((t, d)), "helm", every=0)
    out = execute._run_with_progress(lambda: time.sleep(0.35) or "ok", "helm upgrade x", ctx, 0.1)
    assert out == "ok"
    assert events and all(t == "palplat/helm/waiting" for t, _ in events)
    assert "still running" in events[0][1]["message"]


def releases(**kw):
    base = {"namespace": "ns", "chart": {"path": str(CHARTS / "cm")}, "values": {"a": 1}}
    base.update(kw)
    cfg = config.load(
        {"palplat": {"gpu": {"enabled": False}, "platform": {"releases": {"r": base}}}}
    )
    return config.releases(cfg)


class FakeHelm:
    """helm's listing, and an uninstall that removes the release or (``sticky``) does not."""

    def __init__(self, listed, sticky=False):
        self.listed = dict(listed)
        self.sticky = sticky
        self.calls = []

    def list_releases(self):
        self.calls.append("list")
        return dict(self.listed)

    def uninstall(self, name, namespace, timeout, wait):
        self.calls.append("uninstall")
        if not self.sticky:
            self.listed.pop((namespace, name), None)

    def status(self, name, namespace):
        return None


class FakeKube:
    def __init__(self):
        self.deleted = []

    def list(self, api, kind, namespace=None, label_selector=None):
        return []

    def delete(self, api, kind, name, namespace=None):
        self.deleted.append((kind, name, namespace))


LISTED = {("ns", "r"): {"name": "r", "namespace": "ns", "revision": "1", "status": "deployed"}}


def test_verify_reports_what_is_still_not_converged():
    h = FakeHelm({})
    ctx = helm.Context(helm=h, kube=FakeKube())
    errors = {}
    execute._verify(releases(), ctx, [], errors)
    assert errors == {} and h.calls == []  # nothing converged: nothing to verify
    execute._verify(releases(), ctx, ["r"], errors)
    assert errors == {"r": f"{helm.VERIFY_FAILED}: not installed"}
    assert h.calls == ["list"]


@pytest.mark.parametrize("sticky", [False, True])
def test_converge_verifies_after_a_real_run(sticky):
    h = FakeHelm(LISTED, sticky=sticky)
    k = FakeKube()
    ctx = helm.Context(helm=h, kube=k)
    rels = releases(enabled=False)
    res = helm.converge(rels, ctx, test=False)
    assert res["changes"]["r"]["action"] == "uninstall"
    assert ("Secret", helm.store_name("r"), "ns") in k.deleted
    assert h.calls == ["list", "uninstall", "list"]  # plan, uninstall, verify
    if sticky:
        assert res["errors"] == {"r": "verify failed: still not converged: enabled is false"}
    else:
        assert res["errors"] == {}


def test_converge_test_mode_does_not_verify():
    h = FakeHelm(LISTED)
    ctx = helm.Context(helm=h, kube=FakeKube())
    res = helm.converge(releases(enabled=False), ctx, test=True)
    assert res["changes"]["r"]["action"] == "uninstall" and res["errors"] == {}
    assert h.calls == ["list"]
