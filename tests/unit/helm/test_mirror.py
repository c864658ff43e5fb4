"""palplat.helm.mirror and ``palplat:platform:mirrors``: every helm call goes to the mirror,
the fingerprint stays the chart's own."""

from __future__ import annotations

import pytest

from palplat import config, helm
from palplat.errors import PillarError
from palplat.helm import mirror
from palplat.model import Chart

MIRRORS = {
    "https://prometheus-community.github.io/helm-charts": "http://mirror.lan/prom/",
    "oci://ghcr.io/woodpecker-ci": "oci://mirror.lan/ghcr",
    "oci://ghcr.io/woodpecker-ci/helm/woodpecker": "oci://mirror.lan/exact/woodpecker",
}


def test_rewrite_longest_prefix_on_a_path_boundary():
    assert mirror.rewrite("https://prometheus-community.github.io/helm-charts/", MIRRORS) == (
        "http://mirror.lan/prom"
    )
    assert mirror.rewrite("oci://ghcr.io/woodpecker-ci/helm/other", MIRRORS) == (
        "oci://mirror.lan/ghcr/helm/other"
    )
    assert mirror.rewrite("oci://ghcr.io/woodpecker-ci/helm/woodpecker", MIRRORS) == (
        "oci://mirror.lan/exact/woodpecker"
    )
    assert mirror.rewrite("oci://ghcr.io/woodpecker-cix/helm", MIRRORS) is None
    assert mirror.rewrite("https://charts.min.io", MIRRORS) is None


def test_mirrored_chart_and_its_helm_arguments():
    repo = Chart(repo="https://prometheus-community.github.io/helm-charts", name="x", version="1")
    oci = Chart(oci="oci://ghcr.io/woodpecker-ci/helm/woodpecker", version="1.6.2")
    local = Chart(path="/c")
    assert helm.mirrored(repo, MIRRORS).repo == "http://mirror.lan/prom"
    assert helm.mirrored(oci, MIRRORS).oci == "oci://mirror.lan/exact/woodpecker"
    assert helm.mirrored(local, MIRRORS) is local and helm.mirrored(repo, {}) is repo
    ctx = helm.Context(helm=None, kube=None, mirrors=MIRRORS)
    assert ctx.chart_args(repo) == [
        f"{helm.repo_name('http://mirror.lan/prom')}/x",
        "--version",
        "1",
    ]
    assert ctx.chart_args(oci)[0] == "oci://mirror.lan/exact/woodpecker"
    assert repo.repo == "https://prometheus-community.github.io/helm-charts"  # not changed


def pillar(mirrors, **platform):
    return {
        "palplat": {
            "gpu": {"enabled": False},
            "platform": {
                "mirrors": mirrors,
                "releases": {
                    "r": {
                        "namespace": "ns",
                        "chart": {"repo": "https://charts.example/x", "name": "c", "version": "1"},
                    }
                },
                **platform,
            },
        }
    }


def test_pillar_mirrors_are_validated_with_paths():
    cfg = config.load(pillar(MIRRORS))
    assert cfg.platform.mirrors == MIRRORS
    with pytest.raises(PillarError) as err:
        config.load(
            pillar(
                {
                    "ftp://x/charts": "http://m",
                    "https://a/charts": "oci://m/a",
                    "https://b/charts": "https://user:pw@m/b",
                    "oci://": "oci://m",
                    "https://c/charts": 5,
                }
            )
        )
    text = str(err.value)
    assert "palplat:platform:mirrors:ftp://x/charts: must be a chart repository URL" in text
    assert "palplat:platform:mirrors:https://b/charts: must not hold credentials" in text
    assert "palplat:platform:mirrors:oci://: must be a chart repository URL" in text
    assert "palplat:platform:mirrors:https://c/charts: has the wrong type" in text
    with pytest.raises(PillarError, match="palplat:platform:mirrors: https://a/charts -> oci"):
        config.load(pillar({"https://a/charts": "oci://m/a"}))
    with pytest.raises(
        PillarError, match="palplat:platform:mirror: unknown key; did you mean 'mirrors'"
    ):
        config.load(pillar({}, mirror={"https://a": "https://b"}))


class Index:
    """Stands in for RepoIndex: records the repositories asked for."""

    def __init__(self):
        self.asked = []

    def entry(self, repo, name, version):
        self.asked.append(repo)
        return {"digest": "same-archive"}


class Helm:
    def list_releases(self):
        return {}


class Kube:
    def list(self, *a, **kw):
        return []


def test_switching_mirrors_keeps_the_fingerprint(monkeypatch):
    from palplat.helm import context

    monkeypatch.setattr(context.k8s, "Kube", lambda kubeconfig: Kube())
    prints = []
    for mirrors in (
        {},
        {"https://charts.example/x": "http://m1"},
        {"https://charts.example": "http://m2/"},
    ):
        cfg = config.load(pillar(mirrors))
        ctx = helm.context_for(cfg, helm_bin="helm", kubeconfig="/dev/null")
        assert ctx.mirrors == mirrors
        ctx.helm, ctx.index = Helm(), Index()
        (p,) = helm.plan(config.releases(cfg), ctx)
        assert p.error is None and p.action == "install"
        prints.append(p.fingerprint)
        assert ctx.index.asked == [
            mirror.rewrite("https://charts.example/x", mirrors) or "https://charts.example/x"
        ]
    assert len(set(prints)) == 1
    assert ctx.index.asked == ["http://m2/x"]
