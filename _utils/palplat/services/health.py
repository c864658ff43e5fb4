"""What a running service looks like from the cluster, for ``palplat.status``: its Argo
CD Application's sync and health, its Funnel URL (the hostname the Tailscale operator
wrote into the Ingress status), its CloudNativePG Cluster's ready instances.

Read from the objects the run's one inventory listed (no extra request). A service is
healthy when its Application is Synced and Healthy, its funnel has a hostname and its
database has every instance ready; anything else says what is missing.
"""

from __future__ import annotations

from typing import Any

from palplat.services.resolve import Spec


def _first(objs: list[dict], kind: str, name: str | None = None) -> dict | None:
    for o in objs:
        meta = o.get("metadata") or {}
        if o.get("kind") == kind and (name is None or meta.get("name") == name):
            return o
    return None


def describe(spec: Spec, objects: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """``(columns, problems)`` for one service from its live objects."""
    cols: dict[str, str] = {}
    problems: list[str] = []
    app = _first(objects, "Application", spec.name)
    if app is None:
        cols["app"] = "missing"
        problems.append("no Argo CD Application")
    else:
        st = app.get("status") or {}
        sync = (st.get("sync") or {}).get("status") or "Unknown"
        health = (st.get("health") or {}).get("status") or "Unknown"
        cols["app"] = f"{sync}/{health}"
        if (sync, health) != ("Synced", "Healthy"):
            problems.append(f"Application {sync}/{health}")
    if spec.public_host:
        ing = _first(objects, "Ingress", spec.name)
        lb = (((ing or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        hosts = [i.get("hostname") for i in lb if i.get("hostname")]
        if hosts:
            cols["url"] = f"https://{hosts[0]}"
        else:
            cols["url"] = f"https://{spec.public_host} (no address yet)"
            problems.append("funnel has no address yet")
    db = spec.entry.database
    if db is not None:
        cluster = _first(objects, "Cluster", spec.db_cluster)
        if cluster is None:
            cols["database"] = "missing"
            problems.append("no database Cluster")
        else:
            ready = int((cluster.get("status") or {}).get("readyInstances") or 0)
            cols["database"] = f"{ready}/{db.instances} ready"
            if ready < db.instances:
                problems.append(f"database {ready}/{db.instances} ready")
    return cols, problems
