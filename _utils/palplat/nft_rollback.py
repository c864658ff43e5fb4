"""Roll back an unconfirmed firewall change: the program a timer runs at the deadline.

Started either by a transient systemd timer (``systemd-run --on-active``) or, where
systemd is not PID 1, as a detached process (``--detach --at EPOCH``) that sleeps until the
deadline. Both end up in :func:`fire`: under a lock, if the pending record still exists
with the same token (nobody confirmed), it runs the saved ``nft -f`` restore script and
records the outcome beside the record. Standard library only, so it runs with whatever
Python started it and never depends on the pillar.

    python -m palplat.nft_rollback RECORD [--token T] [--detach --at EPOCH]

The module path is in the command line of every armed rollback (the systemd unit's and the
detached process's), so it stays ``palplat.nft_rollback``, outside the ``palplat.nft``
package: a rollback armed before an upgrade runs it after the upgrade, and palplat finds
its process by that name (``palplat.nft.commit.cancel``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time


def outcome_path(record: str) -> str:
    return record[: -len(".json")] + ".last.json" if record.endswith(".json") else record + ".last"


@contextlib.contextmanager
def locked(record: str):
    """Serialize confirm, reschedule and rollback of one pending record."""
    fd = os.open(record + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def write(path: str, data: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def fire(record: str, token: str | None = None) -> int:
    """Restore the saved table if the change behind ``record`` is still unconfirmed."""
    with locked(record):
        rec = read(record)
        if rec is None or (token and rec.get("token") != token):
            return 0  # confirmed (or superseded by a newer change with its own timer)
        argv = [str(a) for a in rec["restore_argv"]]
        cp = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        write(
            outcome_path(record),
            {
                "outcome": "rolled back" if cp.returncode == 0 else "rollback failed",
                "token": rec.get("token"),
                "at": time.time(),
                "returncode": cp.returncode,
                "stderr": cp.stderr[-2000:],
                "table": rec.get("table"),
                "netns": rec.get("netns"),
            },
        )
        if cp.returncode == 0:
            os.unlink(record)
        return cp.returncode


def _detach(record: str, token: str | None, at: float) -> int:
    """Fork a session leader that sleeps until ``at`` then fires; print its pid."""
    pid = os.fork()
    if pid:
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()
        return 0
    os.setsid()
    log = os.open(record + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    while True:
        left = at - time.time()
        if left <= 0:
            break
        time.sleep(min(left, 1.0))
        if read(record) is None:  # confirmed: nothing left to do
            os._exit(0)
    try:
        rc = fire(record, token)
    except Exception as exc:  # noqa: BLE001 - a detached process can only log
        print(f"palplat firewall rollback failed: {exc}", flush=True)
        rc = 1
    os._exit(rc)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    record = args.pop(0)
    token = None
    detach = False
    at = 0.0
    while args:
        opt = args.pop(0)
        if opt == "--token":
            token = args.pop(0)
        elif opt == "--detach":
            detach = True
        elif opt == "--at":
            at = float(args.pop(0))
        else:
            print(f"unknown option {opt}", file=sys.stderr)
            return 2
    if detach:
        return _detach(record, token, at)
    return fire(record, token)


if __name__ == "__main__":
    sys.exit(main())
