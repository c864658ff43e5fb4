"""The ledger: every record, in the cluster, so that it outlives the master and the
minion's disk; written with compare-and-swap, so two runs at once both land.

Storage: ConfigMaps ``palplat-dora-ledger-NNNNNN`` in ``palplat:dora:namespace``, labelled
as palplat's (``app.kubernetes.io/managed-by=palplat``, ``palplat.io/owner=palplat-dora``),
each holding up to :data:`CHUNK` records as gzipped JSON in ``binaryData``. Only the
newest chunk is written:

- append: read the newest chunk, add the records whose ids are not in the ledger yet,
  replace it with its ``resourceVersion`` (a concurrent writer makes that a 409 Conflict:
  read again, merge again, retry); a full chunk starts the next one by a create (409
  AlreadyExists when another writer was first: use theirs);
- every write is one object replaced whole, so a writer that dies mid-way leaves the
  previous ledger readable;
- bound: beyond ``max_records`` the oldest chunks are deleted;
- reads merge every chunk and drop duplicate ids (the same fact recorded twice, by two
  server minions or two observations).

:class:`Spool` keeps records on local disk while the cluster cannot be reached (the host
stages of a first run, an API server that is down); the next append sends them first.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import gzip
import json
import os
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

from palplat import kube as k8s
from palplat.errors import PalplatError

PREFIX = "palplat-dora-ledger-"
OWNER = "palplat-dora"
LEDGER_LABEL = "palplat.io/dora-ledger"
DATA_KEY = "records.json.gz"
COUNT_ANNOTATION = "palplat.io/dora-records"
CHUNK = 2000
MAX_BYTES = 700 * 1024  # well under a ConfigMap's 1 MiB
ATTEMPTS = 60


class LedgerError(PalplatError):
    """The ledger could not be written (after retries) or read."""


def chunk_name(index: int) -> str:
    return f"{PREFIX}{index:06d}"


def encode(records: list[Mapping[str, Any]]) -> str:
    raw = json.dumps(records, separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode()


def decode(obj: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    data = ((obj or {}).get("binaryData") or {}).get(DATA_KEY)
    if not data:
        return []
    try:
        return json.loads(gzip.decompress(base64.b64decode(data)))
    except (ValueError, OSError) as exc:
        name = ((obj or {}).get("metadata") or {}).get("name")
        raise LedgerError(f"ledger chunk {name} is unreadable: {exc}") from None


def _index(obj: Mapping[str, Any]) -> int:
    name = obj["metadata"]["name"]
    try:
        return int(name[len(PREFIX) :])
    except ValueError:
        return -1


def chunk_manifest(namespace: str, index: int, records: list[Mapping[str, Any]]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": chunk_name(index),
            "namespace": namespace,
            "labels": {
                k8s.MANAGED_BY_LABEL: k8s.MANAGED_BY_VALUE,
                k8s.OWNER_LABEL: OWNER,
                LEDGER_LABEL: "chunk",
            },
            "annotations": {COUNT_ANNOTATION: str(len(records))},
        },
        "binaryData": {DATA_KEY: encode(records)},
    }


def merge(chunks: Iterable[list[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Every record once (first seen wins), oldest first."""
    seen: set[str] = set()
    out = []
    for records in chunks:
        for r in records:
            if r.get("id") in seen:
                continue
            seen.add(r.get("id"))
            out.append(dict(r))
    out.sort(key=lambda r: r.get("t") or 0)
    return out


class Ledger:
    """The ledger in ``namespace`` of the cluster ``kube`` talks to."""

    def __init__(self, kube: k8s.Kube, namespace: str = "kube-system", max_records: int = 100_000):
        self.kube = kube
        self.namespace = namespace
        self.max_records = max_records
        self.stats = {"conflicts": 0, "created": 0, "pruned": 0}
        # every record as of the last append (that append read them all anyway): the
        # metrics written right after need no second read
        self.cached: list[dict[str, Any]] | None = None

    def _path(self, name: str | None = None) -> str:
        res = self.kube.resource("v1", "ConfigMap")
        return res.path(name, self.namespace)

    def chunks(self) -> list[dict]:
        items = self.kube.list(
            "v1", "ConfigMap", self.namespace, f"{k8s.OWNER_LABEL}={OWNER},{LEDGER_LABEL}=chunk"
        )
        return sorted((i for i in items if _index(i) >= 0), key=_index)

    def read(self) -> list[dict[str, Any]]:
        """Every record, oldest first."""
        return merge(decode(c) for c in self.chunks())

    def _get(self, index: int) -> dict | None:
        return self.kube.get("v1", "ConfigMap", chunk_name(index), self.namespace)

    def _write(self, index: int, records: list, live: dict | None) -> bool:
        """Create (``live`` None) or replace chunk ``index``; False on a conflict."""
        body = chunk_manifest(self.namespace, index, records)
        try:
            if live is None:
                self.kube.request("POST", self._path(), body=body, what=chunk_name(index))
                self.stats["created"] += 1
            else:
                body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                self.kube.request(
                    "PUT", self._path(chunk_name(index)), body=body, what=chunk_name(index)
                )
        except k8s.KubeError as exc:
            if exc.status == 409:
                self.stats["conflicts"] += 1
                return False
            raise
        return True

    def append(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Add the records the ledger does not hold yet; how many were added."""
        new = [dict(r) for r in records]
        self.cached = None
        if not new:
            return 0
        chunks = self.chunks()
        older = [decode(c) for c in chunks[:-1]]
        known = {r.get("id") for c in older for r in c}
        head = chunks[-1] if chunks else None
        index = _index(head) if head else 0
        for attempt in range(ATTEMPTS):
            have = decode(head) if head else []
            ids = known | {r.get("id") for r in have}
            todo = [r for r in merge([new]) if r.get("id") not in ids]
            if not todo:
                self.cached = merge([*older, have])
                return 0
            room = CHUNK - len(have)
            if head is not None and room <= 0:
                index, head = index + 1, None  # full: the next chunk
                known = ids
                older.append(have)
                continue
            put, rest = todo[:room], todo[room:]
            body = have + put
            if len(encode(body)) > MAX_BYTES and have:
                index, head, known = index + 1, None, ids
                older.append(have)
                continue
            if self._write(index, body, head):
                added = len(put)
                if rest:
                    added += self.append(rest)
                else:
                    self.cached = merge([*older, body])
                if self._prune():
                    self.cached = None
                return added
            # a concurrent writer: back off (before reading: a read must be fresh when the
            # write follows), read again, merge again
            time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 20)))  # noqa: S311 - jitter
            head = self._get(index)
            if head is None:  # it was pruned or deleted meanwhile: re-read everything
                return self.append(new)
        raise LedgerError(
            f"could not write the DORA ledger in {self.namespace} after {ATTEMPTS} attempts "
            "(too many concurrent writers); the records stay in the minion's spool"
        )

    def _prune(self) -> bool:
        """Drop the oldest chunks beyond the bound; whether any was dropped."""
        chunks = self.chunks()
        counts = [
            int(((c["metadata"].get("annotations") or {}).get(COUNT_ANNOTATION)) or 0)
            for c in chunks
        ]
        total = sum(counts)
        dropped = False
        for c, n in zip(chunks[:-1], counts[:-1], strict=True):
            if total - n < self.max_records:
                break
            with contextlib.suppress(k8s.NotFound):
                self.kube.delete("v1", "ConfigMap", c["metadata"]["name"], self.namespace)
            total -= n
            self.stats["pruned"] += 1
            dropped = True
        return dropped


class Spool:
    """Records waiting for the cluster, one JSON line each, in ``path`` (0600)."""

    def __init__(self, path: str):
        self.path = path

    @contextlib.contextmanager
    def _locked(self):
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        fd = os.open(self.path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        with self._locked():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                for r in records:
                    fh.write(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def pending(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def drain(self, send) -> int:
        """``send(records)`` what waits, then forget it (kept when ``send`` raises)."""
        with self._locked():
            waiting = self.pending()
            if not waiting:
                return 0
            send(waiting)
            os.unlink(self.path)
            return len(waiting)
