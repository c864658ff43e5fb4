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


def two_releases():
    base = {"namespace": "ns", "chart": {"path": str(CHARTS / "cm")}}
    cfg = config.load(
        {"palplat": {"gpu": {"enabled": False}, "platform": {"releases": {"a": base, "b": base}}}}
    )
    return config.releases(cfg)


@pytest.mark.parametrize("parallel", [1, 4])
def test_an_unexpected_error_stays_with_its_release(monkeypatch, parallel):
    import yaml

    def one(p, ctx, test, upstream):
        if p.key == "a":  # what a YAML 1.1 reader raised on kube-prometheus-stack's CRDs
            raise yaml.constructor.ConstructorError(None, None, "tag:yaml.org,2002:value")

    monkeypatch.setattr(execute, "_converge_one", one)
    ctx = helm.Context(helm=FakeHelm({}), kube=FakeKube(), parallel=parallel)
    res = helm.converge(two_releases(), ctx, test=True)
    assert res["errors"]["a"].startswith("unexpected error: ConstructorError")
    assert list(res["changes"]) == ["b"] and res["changes"]["b"]["action"] == "install"


class Steps:
    """Records the steps of one release's converge."""

    def __init__(self, monkeypatch, pending):
        self.calls = []
        self.pending = pending
        from palplat.helm.render import Rendered

        crd = {"metadata": {"name": "as.x.dev"}}
        monkeypatch.setattr(
            execute, "render_client", lambda p, ctx: self.log("render_client") or Rendered([crd])
        )
        monkeypatch.setattr(execute, "apply_crds", self.apply_crds)
        monkeypatch.setattr(execute, "render_diff", self.render_diff)
        monkeypatch.setattr(execute, "_upgrade", lambda p, ctx: self.log("upgrade"))
        monkeypatch.setattr(execute, "_recover_pending", lambda p, ctx: self.log("recover"))

    def log(self, what):
        self.calls.append(what)

    def apply_crds(self, p, ctx, crds, dry_run):
        from palplat.helm.crds import Applied

        self.log(f"apply_crds(dry_run={dry_run})")
        pending = crds if dry_run and self.pending else []
        return Applied({"CustomResourceDefinition/as.x.dev": {}}, {"X": "left alone: y"}, pending)

    def render_diff(self, p, ctx, upstream, *, client, pending_crds):
        self.log(f"render_diff(pending={len(pending_crds)})")


def test_real_run_applies_crds_before_the_server_side_render(monkeypatch):
    steps = Steps(monkeypatch, pending=True)
    p = helm.ReleasePlan("r", "r", "ns", releases()["r"], action="install")
    execute._converge_one(p, helm.Context(helm=None, kube=None), False, [])
    assert steps.calls == [
        "recover",
        "render_client",
        "apply_crds(dry_run=False)",
        "render_diff(pending=0)",
        "upgrade",
    ]
    assert "X: left alone: y" in p.reasons
    assert "CustomResourceDefinition/as.x.dev" in p.objects


def test_test_mode_plans_a_release_whose_crds_are_not_installed(monkeypatch):
    steps = Steps(monkeypatch, pending=True)
    p = helm.ReleasePlan("r", "r", "ns", releases()["r"], action="install")
    execute._converge_one(p, helm.Context(helm=None, kube=None), True, [])
    assert steps.calls == ["render_client", "apply_crds(dry_run=True)", "render_diff(pending=1)"]
