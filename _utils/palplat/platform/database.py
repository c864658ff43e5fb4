"""A CloudNativePG database: the Cluster manifest and where its credentials are.

palplat creates the Cluster; CloudNativePG then makes the Secret ``<cluster>-app`` (type
``kubernetes.io/basic-auth``) with the application credentials. Charts and services read
them from there (``secretKeyRef``, a mounted file, ``existingSecret``): no password is ever
copied into values or the pillar. Shared by the platform's releases and service onboarding.
"""

from __future__ import annotations

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
    ``db.backup`` is not turned into a backup here: that needs an object store (see
    ``palplat.services``)."""
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
