"""A CloudNativePG database: the Cluster manifest and where its credentials are.

palplat creates the Cluster; CloudNativePG then makes the Secret ``<cluster>-app`` (type
``kubernetes.io/basic-auth``) with the application credentials. Charts and services read
them from there (``secretKeyRef``, a mounted file, ``existingSecret``): no password is ever
copied into values or the pillar. Shared by the platform's releases and service onboarding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from palplat.model import Database

CNPG_API = "postgresql.cnpg.io/v1"
PORT = 5432
# CloudNativePG's defaults: initdb creates database "app" owned by "app"
DATABASE = "app"
OWNER = "app"
# The keys of the application Secret CloudNativePG makes
SECRET_KEYS = ("username", "password", "host", "port", "dbname", "uri", "jdbc-uri", "pgpass")


@dataclass(frozen=True)
class CnpgDatabase:
    """A Cluster manifest and the reference to its credentials."""

    manifest: dict[str, Any]
    cluster: str
    namespace: str
    secret: str  # ``<cluster>-app``, made by CloudNativePG
    host: str  # the read-write Service ``<cluster>-rw``
    port: int = PORT
    database: str = DATABASE
    keys: tuple[str, ...] = field(default=SECRET_KEYS)

    def secret_key_ref(self, key: str) -> dict[str, Any]:
        """``valueFrom`` of an env var holding one credential (e.g. ``password``)."""
        if key not in self.keys:
            raise ValueError(f"{key!r} is not a key of {self.secret} ({', '.join(self.keys)})")
        return {"secretKeyRef": {"name": self.secret, "key": key}}


def cluster_name(name: str) -> str:
    """The Cluster of release or service ``name``: ``<name>-db``."""
    return f"{name}-db"


def cnpg_cluster(
    name: str, namespace: str, db: Database, *, labels: dict[str, str] | None = None
) -> CnpgDatabase:
    """The Cluster ``<name>-db`` in ``namespace`` (``db.instances``, ``db.size`` on the
    default StorageClass, database ``app`` owned by ``app``) and its credentials' Secret.
    ``db.backup`` is added by :func:`backup_objects` (it needs the object store)."""
    cluster = cluster_name(name)
    meta: dict[str, Any] = {"name": cluster, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    manifest = {
        "apiVersion": CNPG_API,
        "kind": "Cluster",
        "metadata": meta,
        "spec": {
            "instances": db.instances,
            "storage": {"size": db.size},
            "bootstrap": {"initdb": {"database": DATABASE, "owner": OWNER}},
        },
    }
    return CnpgDatabase(
        manifest=manifest,
        cluster=cluster,
        namespace=namespace,
        secret=f"{cluster}-app",
        host=f"{cluster}-rw",
    )


BACKUP_SECRET = "palplat-backup-store"  # the object store's keys, beside each Cluster


def backup_objects(
    cluster: dict[str, Any],
    path: str,
    db: Database,
    store: Any,
    meta: Callable[[str], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Scheduled backups of ``cluster`` (its manifest gets ``spec.backup``: barman to
    ``s3://<bucket>/<path>`` at ``store.endpoint``, ``db.backup.retention``) and the two
    objects beside it: the Secret ``palplat-backup-store`` with the store's keys and the
    ScheduledBackup ``<cluster>`` (``db.backup.schedule``). ``store``: a
    ``services:defaults:object_store`` (endpoint, bucket, access_key, secret_key);
    ``meta(name)``: the metadata of an object of that name beside the Cluster. Shared by
    the platform's releases and service onboarding."""
    assert db.backup is not None
    name = cluster["metadata"]["name"]
    cluster["spec"]["backup"] = {
        "retentionPolicy": db.backup.retention,
        "barmanObjectStore": {
            "destinationPath": f"s3://{store.bucket}/{path}",
            "endpointURL": str(store.endpoint),
            "s3Credentials": {
                "accessKeyId": {"name": BACKUP_SECRET, "key": "ACCESS_KEY_ID"},
                "secretAccessKey": {"name": BACKUP_SECRET, "key": "ACCESS_SECRET_KEY"},
            },
        },
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(BACKUP_SECRET),
        "type": "Opaque",
        "stringData": {"ACCESS_KEY_ID": store.access_key, "ACCESS_SECRET_KEY": store.secret_key},
    }
    scheduled = {
        "apiVersion": CNPG_API,
        "kind": "ScheduledBackup",
        "metadata": meta(name),
        "spec": {
            "schedule": db.backup.schedule,
            "cluster": {"name": name},
            "backupOwnerReference": "self",
            "method": "barmanObjectStore",
        },
    }
    return [secret, scheduled]
