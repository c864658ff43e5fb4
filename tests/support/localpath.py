"""The test bed's storage, as k3s ships it: StorageClass ``local-path`` (default, provisioner
``rancher.io/local-path``, ``WaitForFirstConsumer``) and a provisioner that binds its claims.

k3s runs rancher's local-path-provisioner, which creates a hostPath PersistentVolume per
claim on the node the scheduler picked (after a helper pod made the directory). Here the
nodes are kwok's, so no helper pod could run; this loop does the provisioner's API side
(stdlib only, run as a control-plane component by ``tests/support/testenv.py``):

- a pending claim of class ``local-path`` whose pod the scheduler placed (annotation
  ``volume.kubernetes.io/selected-node``; an ``Immediate`` class takes the first node) gets
  a PersistentVolume ``pvc-<claim uid>`` pre-bound to it (``claimRef``), with the claim's
  size and access modes, a ``hostPath`` under ``--root`` and node affinity to that node,
  exactly the shape local-path-provisioner creates; kube-controller-manager's PV
  controller then binds the pair and the scheduler starts the pod;
- a volume it made that is ``Released`` (claim deleted) with reclaim policy ``Delete`` is
  deleted, with its directory.

    python tests/support/localpath.py --server URL --ca CA --cert CRT --key KEY --root DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

STORAGE_CLASS = "local-path"
PROVISIONER = "rancher.io/local-path"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def storage_class(binding_mode: str = "WaitForFirstConsumer") -> dict:
    """The StorageClass k3s ships (manifests/local-storage.yaml)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": binding_mode,
    }


def volume_for(claim: dict, node: str, root: Path) -> dict:
    """The PersistentVolume local-path-provisioner would create for ``claim`` on ``node``."""
    meta = claim["metadata"]
    spec = claim.get("spec") or {}
    name = f"pvc-{meta['uid']}"
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "hostPath": {
                "path": str(root / f"{name}_{meta['namespace']}_{meta['name']}"),
                "type": "DirectoryOrCreate",
            },
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


class Api:
    """A minimal client (admin certificate) for the few calls the loop makes."""

    def __init__(self, server: str, ca: str, cert: str, key: str):
        self.server = server.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:  # noqa: S310
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    def items(self, path: str) -> list[dict]:
        code, out = self.call("GET", path)
        return out.get("items") or [] if code == 200 else []


def sync(api: Api, root: Path) -> int:
    """One pass: provision pending claims, delete released volumes. Returns the number of
    writes made (the loop polls faster while there is work)."""
    writes = 0
    classes = {
        c["metadata"]["name"]: c
        for c in api.items("/apis/storage.k8s.io/v1/storageclasses")
        if c.get("provisioner") == PROVISIONER
    }
    if not classes:
        return 0
    volumes = {v["metadata"]["name"]: v for v in api.items("/api/v1/persistentvolumes")}
    nodes: list[str] | None = None
    for claim in api.items("/api/v1/persistentvolumeclaims"):
        meta, spec = claim["metadata"], claim.get("spec") or {}
        sc = classes.get(spec.get("storageClassName") or "")
        if sc is None or spec.get("volumeName") or meta.get("deletionTimestamp"):
            continue
        if (claim.get("status") or {}).get("phase") not in (None, "Pending"):
            continue
        if f"pvc-{meta['uid']}" in volumes:
            continue
        node = (meta.get("annotations") or {}).get(SELECTED_NODE)
        if not node and sc.get("volumeBindingMode") == "Immediate":
            if nodes is None:
                nodes = sorted(n["metadata"]["name"] for n in api.items("/api/v1/nodes"))
            node = nodes[0] if nodes else None
        if not node:
            continue  # WaitForFirstConsumer: the scheduler has not placed a pod yet
        pv = volume_for(claim, node, root)
        Path(pv["spec"]["hostPath"]["path"]).mkdir(parents=True, exist_ok=True)
        code, _ = api.call("POST", "/api/v1/persistentvolumes", pv)
        writes += 1
        claim_key = f"{meta['namespace']}/{meta['name']}"
        log(f"{claim_key}: volume {pv['metadata']['name']} on {node} ({code})")
    for name, pv in volumes.items():
        annotations = pv["metadata"].get("annotations") or {}
        if annotations.get(PROVISIONED_BY) != PROVISIONER:
            continue
        spec = pv.get("spec") or {}
        released = (pv.get("status") or {}).get("phase") == "Released"
        if released and spec.get("persistentVolumeReclaimPolicy") == "Delete":
            code, _ = api.call("DELETE", f"/api/v1/persistentvolumes/{name}")
            shutil.rmtree((spec.get("hostPath") or {}).get("path", "/nonexistent"), True)
            writes += 1
            log(f"volume {name} released: deleted ({code})")
    return writes


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--root", required=True, type=Path, help="where the volumes' dirs go")
    ap.add_argument("--interval", type=float, default=0.5)
    args = ap.parse_args(argv)
    api = Api(args.server, args.ca, args.cert, args.key)
    log(f"local-path provisioner for {args.server}, volumes under {args.root}")
    while True:
        try:
            busy = sync(api, args.root)
        except (OSError, ValueError, KeyError) as exc:  # API restarting, a torn object
            log(f"pass failed: {exc}")
            busy = 0
        time.sleep(args.interval / 4 if busy else args.interval)


if __name__ == "__main__":
    sys.exit(main())
