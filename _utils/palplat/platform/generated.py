"""Secrets palplat makes itself: a release's ``generated`` entries.

An admin password the operator never has to choose, copy or encrypt: palplat makes it
once, keeps it in a Kubernetes Secret in the release's namespace (with the release's
``secrets``, owner ``palplat-platform-secrets``) and the chart reads it from there
(``existingSecret``).
What palplat itself needs of it later (Harbor's admin password for the services stage,
Forgejo's admin for its OAuth application and token) it reads back from the same Secret.

A random value is made when its key is missing from the live Secret, and never again: a
re-run reads the live Secret first and keeps what is there, so the plan of a converged
platform shows no change. Fixed values (a username) follow the pillar. Every value is a
:class:`palplat.secret.Secret` from the moment it exists (masked in every diff, comment,
log and event). Removing an entry from the pillar deletes its Secret (pruned like
``secrets``); a chart still pointing at it then fails to start: remove both together.
"""

from __future__ import annotations

import base64
import secrets as rnd
import string
from collections.abc import Mapping
from typing import Any

from palplat import kube as k8s
from palplat.model import Random, Release
from palplat.secret import Secret

# kept with the release's `secrets` (one group, one owner: objects.SECRETS)
OWNER = "palplat-platform-secrets"
ALPHABET = string.ascii_letters + string.digits


def make(length: int) -> str:
    """A random value of ``length`` letters and digits (no character a shell, a URL or a
    YAML file would trip over)."""
    return "".join(rnd.choice(ALPHABET) for _ in range(length))


def _decoded(live: Mapping[str, Any] | None) -> dict[str, str]:
    out = {}
    for k, v in ((live or {}).get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def live_secrets(kube: k8s.Kube) -> dict[tuple[str, str], dict]:
    """The Secrets of the platform's secrets group (generated ones among them) by
    (namespace, name): one LIST."""
    items = kube.list("v1", "Secret", None, k8s.owner_selector(OWNER))
    return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in items}


def manifests(
    releases: Mapping[str, Release], live: Mapping[tuple[str, str], dict]
) -> list[dict[str, Any]]:
    """The generated Secrets of every enabled release (and their namespaces), values
    taken from ``live`` where they exist."""
    out: list[dict[str, Any]] = []
    namespaces: list[str] = []
    for key in sorted(releases):
        rel = releases[key]
        if not rel.enabled or not rel.generated:
            continue
        if rel.namespace not in namespaces:
            namespaces.append(rel.namespace)
        for name, spec in sorted(rel.generated.items()):
            have = _decoded(live.get((rel.namespace, name)))
            data: dict[str, Any] = {}
            for k, v in sorted(spec.items()):
                if isinstance(v, Random):
                    data[k] = Secret(have.get(k) or make(v.random))
                else:
                    data[k] = v
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": name,
                        "namespace": rel.namespace,
                        "annotations": {"palplat.io/generated-for": key},
                    },
                    "type": "Opaque",
                    "stringData": data,
                }
            )
    ns = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces]
    return ns + out


def value(kube: k8s.Kube, namespace: str, name: str, key: str) -> Secret | None:
    """One key of a Secret in the cluster (a generated one, or any the chart reads), as a
    :class:`Secret`; None when the Secret or the key is not there (yet)."""
    try:
        live = kube.get("v1", "Secret", name, namespace)
    except k8s.KubeError:
        return None
    got = _decoded(live).get(key)
    return Secret(got) if got else None
