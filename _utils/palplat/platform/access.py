"""Reaching a release: a Tailscale Ingress (optionally Funnel: from the internet) to a
chart's Service, and a blackbox Probe of its URL for Prometheus."""

from __future__ import annotations

import urllib.parse
from typing import Any

INGRESS_CLASS = "tailscale"
FUNNEL_ANNOTATION = "tailscale.com/funnel"
MON_API = "monitoring.coreos.com/v1"


def hostname(url: str) -> str:
    """The Tailscale machine name of ``https://<machine>.<tailnet>``: its first label."""
    return (urllib.parse.urlsplit(url).hostname or "").split(".", 1)[0]


def tailscale_ingress(
    name: str, namespace: str, service: str, port: int, url: str, *, funnel: bool
) -> dict[str, Any]:
    """An Ingress of class ``tailscale``: the operator gives it the tailnet name of
    ``url`` with a TLS certificate; ``funnel`` opens it to the internet."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if funnel:
        meta["annotations"] = {FUNNEL_ANNOTATION: "true"}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "defaultBackend": {"service": {"name": service, "port": {"number": port}}},
            "tls": [{"hosts": [hostname(url)]}],
        },
    }


def blackbox_probe(
    name: str,
    namespace: str,
    url: str,
    prober: str,
    *,
    job: str | None = None,
    module: str = "http_2xx",
    interval: str = "60s",
) -> dict[str, Any]:
    """A Prometheus Operator Probe: Prometheus asks the blackbox exporter at ``prober``
    (``host:port``) to fetch ``url`` with ``module`` every ``interval``."""
    return {
        "apiVersion": MON_API,
        "kind": "Probe",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "jobName": job or name,
            "interval": interval,
            "module": module,
            "prober": {"url": prober, "scheme": "http", "path": "/probe"},
            "targets": {"staticConfig": {"static": [url]}},
        },
    }
