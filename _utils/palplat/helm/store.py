"""The fingerprint store: one Secret per release, ``palplat-helm-<release>`` in the release
namespace, labelled ``palplat.io/helm-release=<release>``.

It holds the fingerprint (chart source, version, archive digest, merged values), the helm
revision it was written for and the baseline of every object of the release (the live
objects, restricted to the fields the chart sets, read back after the upgrade). It is a
Secret because the baseline of a chart's Secrets holds their data.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Mapping
from typing import Any

from palplat import kube as k8s

STORE_PREFIX = "palplat-helm-"
STORE_LABEL = "palplat.io/helm-release"
STORE_KEY = "state"


def store_name(release: str) -> str:
    return f"{STORE_PREFIX}{release}"[:253]


def encode_state(state: Mapping[str, Any]) -> str:
    raw = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode()


def decode_state(secret: Mapping[str, Any]) -> dict:
    data = (secret.get("data") or {}).get(STORE_KEY)
    if not data:
        return {}
    try:
        raw = base64.b64decode(base64.b64decode(data))
        return json.loads(gzip.decompress(raw))
    except (ValueError, OSError):
        return {}


def store_manifest(release: str, namespace: str, state: Mapping[str, Any]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "palplat.io/helm-fingerprint",
        "metadata": {
            "name": store_name(release),
            "namespace": namespace,
            "labels": {k8s.MANAGED_BY_LABEL: k8s.MANAGED_BY_VALUE, STORE_LABEL: release},
        },
        "data": {STORE_KEY: base64.b64encode(encode_state(state).encode()).decode()},
    }
