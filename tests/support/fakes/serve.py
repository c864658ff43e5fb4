"""The sandbox's Harbor, Woodpecker and Forgejo contract fakes as one detached process.

    python -m tests.support.fakes.serve --work DIR --fpr FINGERPRINT \\
        --harbor-port P --woodpecker-port P --forgejo-port P [--forge-repo owner/name ...] \\
        [--kubeconfig K --harbor-secret NS/NAME/KEY --forgejo-secret NS/NAME]

`make sandbox` starts it (``SandboxFakes`` in tests/support/fakes/platform.py) in its own
session, as it starts the chart repository, so that the fakes outlive ``sandbox up`` like
the control plane and the Salt daemons: ``salt-run palplat.plan`` and ``palplat.status``
reach them afterwards, and ``make sandbox-down`` stops them (SIGTERM).

Their credentials are the values ``sandbox up`` encrypts for the secrets.sls placeholders
(derived from the sandbox key's fingerprint, so never in argv), or, for the admin
passwords palplat generates (Harbor's, Forgejo's), read from the Secret in the cluster
that the chart would read (``--harbor-secret``, ``--forgejo-secret``): the fake knows
what the real Harbor or Forgejo would. Their data lives in
DIR/service-fakes/{harbor,woodpecker}.json: restored at start, written (0600, atomically)
after every request that may change it and again on SIGTERM, so that a restarted fake
answers as the one before did. Every request is logged (method, path without the query,
status) to stdout; contract violations are appended to DIR/service-fakes/violations.log
as they are seen.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from tests.support.fakes.forgejo import ForgejoFake
from tests.support.fakes.harbor import HarborFake
from tests.support.fakes.platform import SANDBOX_SECRETS, sandbox_value
from tests.support.fakes.server import FakeApi
from tests.support.fakes.woodpecker import WoodpeckerFake

READS = ("GET", "HEAD", "OPTIONS")


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}", flush=True)


def save(fake: FakeApi, path: Path) -> None:
    """The fake's data to ``path`` (0600: it holds the robots' and repositories' secrets),
    written beside and renamed, so that a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(fake.dump(), fh, indent=1)
    os.replace(tmp, path)


class Persisted:
    """Wraps a started fake's request handling: saves its data after every request that
    may write, appends the violations it sees to ``violations``, logs each request."""

    def __init__(self, fake: FakeApi, path: Path, violations: Path):
        self.fake, self.path, self.violations = fake, path, violations
        self.lock = threading.Lock()
        self.seen = len(fake.violations)
        self.inner = fake.handle
        fake.handle = self.handle  # the HTTP handler looks it up on the instance

    def handle(self, method: str, raw: str, headers: dict, body: bytes):
        out = self.inner(method, raw, headers, body)
        log(f"{self.fake.name} {method} {raw.split('?', 1)[0]} {out[0] if out else 'dropped'}")
        with self.lock:
            if method not in READS:
                save(self.fake, self.path)
            new = self.fake.violations[self.seen :]
            self.seen += len(new)
            if new:
                with self.violations.open("a") as fh:
                    for v in new:
                        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {v}\n")
                        log(f"CONTRACT VIOLATION {v}")
        return out

    def save(self) -> None:
        with self.lock:
            save(self.fake, self.path)


class SecretValue:
    """A key of a Secret in the cluster, read again at most every ``ttl`` seconds."""

    def __init__(self, kubeconfig: str, namespace: str, name: str, key: str, ttl: float = 2.0):
        sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "_utils"))
        from palplat import kube

        self.kube = kube.Kube(kubeconfig)
        self.where = (namespace, name, key)
        self.ttl = ttl
        self._at = 0.0
        self._value = ""

    def __call__(self) -> str:
        import base64

        if time.monotonic() - self._at > self.ttl:
            ns, name, key = self.where
            try:
                live = self.kube.get("v1", "Secret", name, ns) or {}
                raw = (live.get("data") or {}).get(key)
                self._value = base64.b64decode(raw).decode() if raw else ""
            except Exception as exc:  # noqa: BLE001 - no answer: nobody signs in
                log(f"reading Secret {ns}/{name}: {exc}")
                self._value = ""
            self._at = time.monotonic()
        return self._value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.support.fakes.serve")
    ap.add_argument("--work", type=Path, required=True, help="the sandbox directory")
    ap.add_argument("--fpr", required=True, help="the sandbox key's fingerprint")
    ap.add_argument("--harbor-port", type=int, default=0)
    ap.add_argument("--woodpecker-port", type=int, default=0)
    ap.add_argument("--forgejo-port", type=int, default=0)
    ap.add_argument("--kubeconfig", help="where the generated admin Secrets are")
    ap.add_argument("--harbor-secret", help="NS/NAME/KEY of Harbor's admin password")
    ap.add_argument("--forgejo-secret", help="NS/NAME (username, password) of Forgejo's admin")
    ap.add_argument("--forge-repo", action="append", default=[], help="owner/name at the forge")
    args = ap.parse_args(argv)
    data = args.work / "service-fakes"
    data.mkdir(parents=True, exist_ok=True)
    harbor_pw = sandbox_value(args.fpr, SANDBOX_SECRETS["harbor"])
    if args.harbor_secret and args.kubeconfig:
        harbor_pw = SecretValue(args.kubeconfig, *args.harbor_secret.split("/", 2))
    harbor = HarborFake(password=harbor_pw)
    wp = WoodpeckerFake(token=sandbox_value(args.fpr, SANDBOX_SECRETS["woodpecker"]))
    forgejo_user, forgejo_pw = "forgejo-admin", ""
    if args.forgejo_secret and args.kubeconfig:
        ns, name = args.forgejo_secret.split("/", 1)
        forgejo_user = SecretValue(args.kubeconfig, ns, name, "username")
        forgejo_pw = SecretValue(args.kubeconfig, ns, name, "password")
    forgejo = ForgejoFake(username=forgejo_user, password=forgejo_pw)
    fakes = {
        "harbor": (harbor, args.harbor_port),
        "woodpecker": (wp, args.woodpecker_port),
        "forgejo": (forgejo, args.forgejo_port),
    }
    for name, (fake, _) in fakes.items():
        saved = data / f"{name}.json"
        if saved.exists():
            fake.restore(json.loads(saved.read_text()))
    known = {r["full_name"] for r in wp.forge_repos.values()}
    for repo in args.forge_repo:
        if repo not in known:
            wp.add_forge_repo(repo)
            known.add(repo)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    kept = []
    for name, (fake, port) in fakes.items():
        fake.port = port
        fake.start()
        kept.append(Persisted(fake, data / f"{name}.json", data / "violations.log"))
        kept[-1].save()  # the forge's repositories added above
        log(f"{fake.name} fake serving at {fake.url} (data: {data / f'{name}.json'})")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for p in kept:
            p.fake.stop()
            p.save()
        log("stopped; data saved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
