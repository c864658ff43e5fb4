"""Commit-confirmed: a change that narrows access to the management ports is applied with
its rollback armed (:func:`schedule`); :func:`confirm` disarms it and writes the deferred
boot-time config, :func:`rollback_now` fires it at once.

The rollback itself is the stdlib-only program :mod:`palplat.nft_rollback`, started by a
transient systemd timer or as a detached process. Rollbacks armed by any palplat version
are found by their pending record (:attr:`Paths.record`) and disarmed by the unit name or
the pid the record holds; a pid is only signalled while its command line still names
``palplat.nft_rollback`` and the record's token.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
import uuid
from typing import Any

from palplat import nft_rollback, proc
from palplat.errors import PalplatError
from palplat.nft.cli import Nft
from palplat.nft.host import Paths, persist_write, state_key
from palplat.nft.ruleset import FAMILY, removal_script

log = logging.getLogger(__name__)
ROLLBACK_MODULE = "palplat.nft_rollback"  # in the argv of every armed rollback: keep it


def systemd_running() -> bool:
    return os.path.isdir("/run/systemd/system")


def _libdir() -> str:
    """The directory that makes :data:`ROLLBACK_MODULE` importable (the rollback's
    PYTHONPATH)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(nft_rollback.__file__)))


def pending(paths: Paths) -> dict | None:
    return nft_rollback.read(paths.record)


def last_outcome(paths: Paths) -> dict | None:
    return nft_rollback.read(nft_rollback.outcome_path(paths.record))


def unreported_rollback(paths: Paths) -> dict | None:
    """The last change's outcome when its timer rolled it back (or failed to) and no
    confirm has reported it yet, else None."""
    last = last_outcome(paths)
    return last if last and last.get("outcome") != "confirmed" and not last.get("seen") else None


def _restore_script(fw, paths: Paths, nft: Nft, old: dict | None) -> tuple[str, bool]:
    """The restore script of the change about to be applied, read under the record's lock:
    an unconfirmed earlier change keeps its own (the last confirmed table); otherwise the
    live table as it is now. ``(path, new)``: ``new`` when this call wrote the file."""
    if old is not None:
        path = old.get("restore_script") or ""
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            text = ""
        if _restores(fw, text):
            return path, False
        # a record without a usable script cannot roll anything back: start from the live
        # table (what the earlier change left), as if nothing were pending
    previous = removal_script(fw.table) + (nft.list_text(fw.table) or "")
    if not _restores(fw, previous):  # pragma: no cover - removal_script always names it
        raise PalplatError(f"refusing to arm an empty rollback of {FAMILY} {fw.table}")
    nft.check(previous)  # never arm a rollback that nft would refuse
    path = os.path.join(paths.state_dir, f"restore-{state_key(fw)}-{uuid.uuid4().hex[:8]}.nft")
    proc.write_private(path, previous)
    return path, True


def _restores(fw, script: str) -> bool:
    """A restore script names palplat's table: it replaces or deletes it (never empty)."""
    return f"delete table {FAMILY} {fw.table}" in script


def _arm(fw, paths: Paths, token: str, deadline: float, run) -> dict[str, Any]:
    """Start the rollback timer for ``token``: the mechanism, and its unit or pid."""
    mech = fw.rollback_timer
    if mech == "auto":
        mech = "systemd" if systemd_running() and shutil.which("systemd-run") else "process"
    argv = [sys.executable, "-m", ROLLBACK_MODULE, paths.record, "--token", token]
    if mech == "systemd":
        unit = f"palplat-nft-rollback-{token[:12]}"
        run(
            [
                "systemd-run",
                f"--unit={unit}",
                "--description=palplat: roll back an unconfirmed firewall change",
                f"--on-active={fw.confirm_seconds}",
                "--timer-property=AccuracySec=1s",
                f"--setenv=PYTHONPATH={_libdir()}",
                "--quiet",
                "--",
                *argv,
            ],
            timeout=60,
        )
        return {"mechanism": mech, "unit": unit}
    res = run(
        argv + ["--detach", "--at", repr(deadline)],
        env={"PYTHONPATH": _libdir()},
        timeout=60,
    )
    try:
        pid = int(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise PalplatError(
            f"the rollback process did not report its pid: {res.stdout[-300:]!r}"
        ) from None
    return {"mechanism": mech, "pid": pid}


def schedule(fw, paths: Paths, nft: Nft, persist: dict | None, run=proc.run) -> dict:
    """Arm the rollback of the change about to be applied; return the pending record.

    Under the record's lock: the restore script is the one of an unconfirmed earlier change
    (the last confirmed table), else the live table read now (never what a plan saw before
    the lock: a confirm or a rollback may have run since). The new timer is armed first;
    only then is the record replaced and the earlier timer cancelled, so at every moment a
    timer whose token matches the record is armed. When arming fails, the earlier rollback
    stays armed as it was (or, with none, nothing was changed) and the error is raised."""
    os.makedirs(paths.state_dir, mode=0o700, exist_ok=True)
    with nft_rollback.locked(paths.record):
        old = nft_rollback.read(paths.record)
        script_path, wrote = _restore_script(fw, paths, nft, old)
        token = uuid.uuid4().hex
        deadline = time.time() + fw.confirm_seconds
        try:
            armed = _arm(fw, paths, token, deadline, run)
        except Exception as exc:
            if wrote:
                with contextlib.suppress(OSError):
                    os.unlink(script_path)
            kept = (
                "the earlier unconfirmed change keeps its rollback (at "
                f"{time.strftime('%H:%M:%S', time.localtime(old['deadline']))})"
                if old is not None
                else "nothing was changed"
            )
            raise PalplatError(
                f"could not arm the rollback timer of {FAMILY} {fw.table} ({exc}); {kept}; "
                "the new table was not loaded"
            ) from None
        rec = {
            "token": token,
            "created": time.time(),
            "deadline": deadline,
            "confirm_seconds": fw.confirm_seconds,
            "table": f"{FAMILY} {fw.table}",
            "netns": fw.netns,
            "restore_script": script_path,
            "restore_argv": nft.restore_argv(script_path),
            "persist": persist,
            "first": old is None,  # no earlier unconfirmed change: a failed load disarms it
            **armed,
        }
        nft_rollback.write(paths.record, rec)
        if old is not None:
            # its token no longer matches the record: even if stopping it fails, it fires
            # as a no-op (nft_rollback.fire)
            try:
                cancel(old, run)
            except Exception:  # noqa: BLE001 - a stale timer is harmless (token mismatch)
                log.warning("could not stop the superseded rollback timer", exc_info=True)
            stale = old.get("restore_script")
            if stale and stale != script_path:
                with contextlib.suppress(OSError):
                    os.unlink(stale)
        return rec


def cancel(rec: dict, run=proc.run) -> None:
    """Disarm the rollback behind pending record ``rec``: stop its systemd timer, or end its
    detached process (only while that pid is still a rollback of this record's token)."""
    if rec.get("unit"):
        run(["systemctl", "stop", f"{rec['unit']}.timer"], check=False, timeout=60)
    pid = rec.get("pid")
    if pid:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().decode(errors="replace")
        except OSError:
            return
        if ROLLBACK_MODULE in cmd and rec.get("token", "-") in cmd:
            try:
                os.kill(pid, 15)
            except OSError:
                pass


def confirm(fw, paths: Paths, run=proc.run) -> dict[str, Any]:
    """Confirm a pending change: disarm its rollback and write the deferred persistence.

    Raises :class:`PalplatError` when the change was already rolled back."""
    has_state = os.path.isdir(paths.state_dir)
    with nft_rollback.locked(paths.record) if has_state else contextlib.nullcontext():
        rec = nft_rollback.read(paths.record)
        if rec is None:
            last = unreported_rollback(paths)
            if last:
                last["seen"] = True
                nft_rollback.write(nft_rollback.outcome_path(paths.record), last)
                raise PalplatError(
                    f"the firewall change to {last.get('table')} was {last.get('outcome')} "
                    f"at {time.strftime('%H:%M:%S', time.localtime(last.get('at', 0)))} "
                    "because it was not confirmed in time; run the firewall state again and "
                    "confirm within confirm_seconds"
                )
            return {"confirmed": False, "comment": "no firewall change is waiting for confirmation"}
        if rec.get("persist"):
            persist_write(Paths(**rec["persist"]["paths"]), rec["persist"]["content"])
        cancel(rec, run)
        if os.path.exists(rec["restore_script"]):
            os.unlink(rec["restore_script"])
        os.unlink(paths.record)
        nft_rollback.write(
            nft_rollback.outcome_path(paths.record),
            {
                "outcome": "confirmed",
                "token": rec["token"],
                "at": time.time(),
                "table": rec["table"],
            },
        )
        left = max(0, int(rec["deadline"] - time.time()))
        return {
            "confirmed": True,
            "comment": f"confirmed the firewall change to {rec['table']} "
            f"({left}s before its rollback)",
        }


def rollback_now(paths: Paths) -> dict[str, Any]:
    """Roll back a pending change immediately (what the timer would do)."""
    rec = nft_rollback.read(paths.record)
    if rec is None:
        return {"rolled_back": False, "comment": "no firewall change is waiting for confirmation"}
    rc = nft_rollback.fire(paths.record)
    out = last_outcome(paths) or {}
    if rc != 0:
        raise PalplatError(f"rollback failed: {out.get('stderr', '').strip()}")
    cancel(rec)
    out["seen"] = True
    nft_rollback.write(nft_rollback.outcome_path(paths.record), out)
    return {"rolled_back": True, "comment": f"restored the last confirmed {rec['table']}"}
