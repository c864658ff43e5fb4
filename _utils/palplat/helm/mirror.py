"""Chart mirrors (``palplat:platform:mirrors``): where helm fetches charts from.

An air-gapped host cannot reach the chart repositories and OCI registries the releases
name. ``mirrors`` maps a repository URL or an OCI prefix (``oci://registry[/path]``) to
a mirror of it; every helm call (``repo add``, ``registry login``, ``template``,
``upgrade``) and every repository index fetch goes to the mirror. The release keeps its
own chart source: the fingerprint is computed from the pillar's ``chart``, so switching
mirrors upgrades nothing (a mirror that serves the same archive has the same digest).

A source matches a chart when it is the chart's repository URL or OCI reference, or a
prefix of it that ends at a ``/``; the longest match wins and the rest of the URL is kept:
``oci://ghcr.io/woodpecker-ci: oci://mirror.lan/ghcr`` sends
``oci://ghcr.io/woodpecker-ci/helm/woodpecker`` to ``oci://mirror.lan/ghcr/helm/woodpecker``.
"""

from __future__ import annotations

from collections.abc import Mapping

from palplat.model import Chart


def _norm(url: str) -> str:
    return url.rstrip("/")


def rewrite(url: str, mirrors: Mapping[str, str]) -> str | None:
    """``url`` on its mirror, or None when no mirror covers it."""
    u = _norm(url)
    best = None
    for src, dst in mirrors.items():
        s = _norm(src)
        if (u == s or u.startswith(s + "/")) and (best is None or len(s) > len(best[0])):
            best = (s, _norm(dst))
    if best is None:
        return None
    return best[1] + u[len(best[0]) :]


def mirrored(chart: Chart, mirrors: Mapping[str, str]) -> Chart:
    """``chart`` as helm fetches it: its repository or OCI reference on its mirror."""
    if not mirrors:
        return chart
    if chart.repo:
        url = rewrite(chart.repo, mirrors)
        return chart.model_copy(update={"repo": url}) if url else chart
    if chart.oci:
        url = rewrite(chart.oci, mirrors)
        return chart.model_copy(update={"oci": url}) if url else chart
    return chart


def describe(chart: Chart, mirrors: Mapping[str, str]) -> str:
    """`` (mirror of <source>)`` for messages about a mirrored chart, else ``""``."""
    src = chart.repo or chart.oci
    if src and mirrors and rewrite(src, mirrors):
        return f" (palplat:platform:mirrors: mirror of {_norm(src)})"
    return ""
