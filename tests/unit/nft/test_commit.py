"""Commit-confirmed. The systemd rollback timer: systemd is not PID 1 here, so the argv
palplat gives ``systemd-run`` is checked against the options the installed systemd-run
documents (``systemd-run --help``), and confirm must stop the timer. The detached-process
mechanism runs for real here (confirm ends it) and in tests/functional/test_nftables.py
(it rolls back). Rollbacks armed by an earlier palplat must still be found and disarmed."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from palplat import config, nft, proc
from palplat.errors import PalplatError
from palplat.nft import commit

LIB = Path(__file__).resolve().parents[3] / "_utils"


class FakeNft:
    """The nft command line as commit needs it: the live table's text, check, argv."""

    def __init__(self, live="table inet palplat {\n}\n"):
        self.live = live

    def list_text(self, name):
        return self.live

    def restore_argv(self, path):
        return ["nft", "-f", path]

    def check(self, script):
        pass


def fw_of(tmp_path, **extra):
    fw = {"root": str(tmp_path), "rollback_timer": "systemd", "confirm_seconds": 30}
    fw.update(extra)
    return config.load({"palplat": {"firewall": fw}}).firewall


def test_systemd_timer_argv_and_confirm_stops_it(tmp_path):
    calls = []

    def run(argv, **kw):
        calls.append(list(argv))
        return proc.Result(list(argv), 0, "", "")

    fw = fw_of(tmp_path)
    paths = nft.Paths.of(fw)
    rec = nft.schedule(fw, paths, FakeNft(), None, run)
    assert rec["mechanism"] == "systemd" and rec["unit"].startswith("palplat-nft-rollback-")
    argv = calls[0]
    assert argv[0] == "systemd-run"
    assert "--on-active=30" in argv and f"--unit={rec['unit']}" in argv
    cmd = argv[argv.index("--") + 1 :]
    assert cmd[1:4] == ["-m", "palplat.nft_rollback", paths.record]
    assert cmd[-2:] == ["--token", rec["token"]]
    assert oct(os.stat(paths.record).st_mode & 0o777) == "0o600"
    with open(rec["restore_script"]) as fh:  # the live table, replacing palplat's
        assert (
            fh.read() == "table inet palplat\ndelete table inet palplat\ntable inet palplat {\n}\n"
        )
    assert json.loads(open(paths.record).read())["token"] == rec["token"]

    if shutil.which("systemd-run"):
        helptext = subprocess.run(
            ["systemd-run", "--help"], capture_output=True, text=True, check=False
        ).stdout
        for opt in argv[1 : argv.index("--")]:
            name = opt.split("=", 1)[0]
            assert re.search(rf"(^|\s){re.escape(name)}[=\s]", helptext, re.M), name

    out = nft.confirm(fw, paths, run)
    assert out["confirmed"] is True
    assert calls[-1] == ["systemctl", "stop", f"{rec['unit']}.timer"]
    assert nft.pending(paths) is None


def test_a_second_unconfirmed_change_keeps_the_first_restore_script(tmp_path):
    runs = []

    def run(argv, **kw):
        runs.append(list(argv))
        return proc.Result(list(argv), 0, "", "")

    fw = fw_of(tmp_path)
    paths = nft.Paths.of(fw)
    first = nft.schedule(fw, paths, FakeNft("FIRST\n"), None, run)
    second = nft.schedule(fw, paths, FakeNft("SECOND\n"), None, run)
    assert second["restore_script"] == first["restore_script"]
    with open(second["restore_script"]) as fh:
        # the last confirmed table, not the intermediate one
        assert fh.read().endswith("delete table inet palplat\nFIRST\n")
    assert ["systemctl", "stop", f"{first['unit']}.timer"] in runs
    assert second["token"] != first["token"]
    # the new timer is armed before the old one is stopped
    arm = next(i for i, a in enumerate(runs) if a[0] == "systemd-run" and second["unit"] in a[1])
    assert arm < runs.index(["systemctl", "stop", f"{first['unit']}.timer"])


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _ended(pid, within=10.0):
    stop = time.monotonic() + within
    while _alive(pid) and time.monotonic() < stop:
        time.sleep(0.05)
    return not _alive(pid)


def _kill_rollback(pid, record):
    """A detached rollback of this test must not outlive it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if record.encode() in fh.read():
                os.kill(pid, 9)
    except OSError:
        pass


def test_the_rollback_program_is_importable_from_the_pythonpath_palplat_gives_it(tmp_path):
    calls = []

    def run(argv, **kw):
        calls.append(list(argv))
        return proc.Result(list(argv), 0, "", "")

    fw = fw_of(tmp_path)
    nft.schedule(fw, nft.Paths.of(fw), FakeNft(), None, run)
    env = [a for a in calls[0] if a.startswith("--setenv=PYTHONPATH=")]
    assert env == [f"--setenv=PYTHONPATH={LIB}"]
    assert (LIB / "palplat" / "nft_rollback.py").is_file()


def no_run(argv, **kw):
    raise AssertionError(f"unexpected command {argv}")


def test_a_detached_rollback_is_armed_for_real_and_disarmed(tmp_path):
    """The detached process also exits by itself once the record is gone, so it must end
    while the record is still there to prove that palplat found and stopped it."""
    fw = fw_of(tmp_path, rollback_timer="process", confirm_seconds=300)
    paths = nft.Paths.of(fw)
    first = nft.schedule(fw, paths, FakeNft(), None)
    pids = [first["pid"]]
    try:
        assert first["mechanism"] == "process" and _alive(first["pid"])
        with open(f"/proc/{first['pid']}/cmdline", "rb") as fh:
            argv = fh.read().decode().split("\0")
        assert argv[1:6] == ["-m", "palplat.nft_rollback", paths.record, "--token", first["token"]]
        second = nft.schedule(fw, paths, FakeNft("ignored\n"), None)  # a new deadline
        pids.append(second["pid"])
        assert _ended(first["pid"]), "rescheduling left the first rollback process running"
        assert nft.pending(paths)["token"] == second["token"] and _alive(second["pid"])
        assert nft.confirm(fw, paths, no_run)["confirmed"] is True
        assert _ended(second["pid"]) and nft.pending(paths) is None
    finally:
        for pid in pids:
            _kill_rollback(pid, paths.record)


def _old_record(fw, paths, token, **mechanism):
    """A pending record exactly as palplat wrote it before palplat.nft became a package."""
    os.makedirs(paths.state_dir, mode=0o700, exist_ok=True)
    script = os.path.join(paths.state_dir, "restore-host-inet-palplat.nft")
    proc.write_private(script, "table inet palplat\ndelete table inet palplat\n")
    rec = {
        "token": token,
        "created": time.time(),
        "deadline": time.time() + 300,
        "confirm_seconds": 300,
        "table": "inet palplat",
        "netns": None,
        "restore_script": script,
        "restore_argv": ["true"],
        "persist": None,
        **mechanism,
    }
    with open(paths.record, "w") as fh:
        json.dump(rec, fh)
    return rec


def test_a_detached_rollback_armed_by_the_previous_layout_is_found_and_cancelled(tmp_path):
    fw = fw_of(tmp_path, rollback_timer="process", confirm_seconds=300)
    paths = nft.Paths.of(fw)
    token = "0123456789abcdef0123456789abcdef"
    rec = _old_record(fw, paths, token, mechanism="process")
    # The argv palplat 0.1 (the single-module palplat.nft) gave the detached rollback.
    old_argv = [sys.executable, "-m", "palplat.nft_rollback", paths.record, "--token", token]
    cp = subprocess.run(
        [*old_argv, "--detach", "--at", repr(rec["deadline"])],
        env={**os.environ, "PYTHONPATH": str(LIB)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(cp.stdout.strip().splitlines()[-1])
    try:
        rec["pid"] = pid
        with open(paths.record, "w") as fh:
            json.dump(rec, fh)
        assert _alive(pid)
        found = nft.pending(paths)
        assert found["token"] == token and found["pid"] == pid
        commit.cancel(found, no_run)  # what confirm and a rescheduling change do first
        # Ended while its record still exists: stopped by palplat, not on its own.
        assert _ended(pid), "the old rollback process survived its cancellation"
        assert nft.confirm(fw, paths, no_run)["confirmed"] is True
        assert nft.pending(paths) is None
        assert nft.last_outcome(paths)["outcome"] == "confirmed"
        assert not os.path.exists(rec["restore_script"])
    finally:
        _kill_rollback(pid, paths.record)


def test_a_systemd_rollback_armed_by_the_previous_layout_is_stopped_on_confirm(tmp_path):
    calls = []

    def run(argv, **kw):
        calls.append(list(argv))
        return proc.Result(list(argv), 0, "", "")

    fw = fw_of(tmp_path)
    paths = nft.Paths.of(fw)
    unit = "palplat-nft-rollback-0123456789ab"
    _old_record(fw, paths, "0123456789abcdef0123456789abcdef", mechanism="systemd", unit=unit)
    assert nft.pending(paths)["unit"] == unit
    assert nft.confirm(fw, paths, run)["confirmed"] is True
    assert calls == [["systemctl", "stop", f"{unit}.timer"]]
    assert nft.pending(paths) is None


def test_arming_failure_keeps_the_earlier_rollback_and_its_record(tmp_path):
    """systemd-run failing while an unconfirmed change is pending: the earlier timer is
    never stopped, the record still names it (same token), and the error says so."""
    runs = []
    fail = {"on": False}

    def run(argv, **kw):
        runs.append(list(argv))
        if argv[0] == "systemd-run" and fail["on"]:
            raise proc.CommandError(argv, 1, "Failed to start transient timer unit")
        return proc.Result(list(argv), 0, "", "")

    fw = fw_of(tmp_path)
    paths = nft.Paths.of(fw)
    first = nft.schedule(fw, paths, FakeNft("FIRST\n"), None, run)
    fail["on"] = True
    with pytest.raises(PalplatError, match="earlier unconfirmed change keeps its rollback"):
        nft.schedule(fw, paths, FakeNft("SECOND\n"), None, run)
    assert nft.pending(paths) == first  # the record names the armed timer, unchanged
    assert not any(a[:2] == ["systemctl", "stop"] for a in runs)  # it was never stopped
    with open(first["restore_script"]) as fh:
        assert fh.read().endswith("FIRST\n")


def test_arming_failure_with_nothing_pending_leaves_nothing_behind(tmp_path):
    def run(argv, **kw):
        raise proc.CommandError(argv, 1, "systemd-run: Failed to connect to bus")

    fw = fw_of(tmp_path)
    paths = nft.Paths.of(fw)
    with pytest.raises(PalplatError, match="nothing was changed"):
        nft.schedule(fw, paths, FakeNft(), None, run)
    assert nft.pending(paths) is None
    assert not list(Path(paths.state_dir).glob("restore-*.nft"))


def test_a_rollback_or_confirm_since_the_plan_never_arms_an_empty_restore(tmp_path):
    """The plan saw a pending change (so an earlier version armed an empty restore script
    expecting to reuse it); the change was confirmed or rolled back before the apply took
    the lock. The restore script must be the live table read under the lock."""
    runs = []

    def run(argv, **kw):
        runs.append(list(argv))
        return proc.Result(list(argv), 0, "", "")

    fw = fw_of(tmp_path)
    paths = nft.Paths.of(fw)
    first = nft.schedule(fw, paths, FakeNft("table inet palplat { A }\n"), None, run)
    assert nft.confirm(fw, paths, run)["confirmed"] is True  # between plan and apply
    rec = nft.schedule(fw, paths, FakeNft("table inet palplat { B }\n"), None, run)
    with open(rec["restore_script"]) as fh:
        text = fh.read()
    assert text.endswith("table inet palplat { B }\n") and "delete table inet palplat" in text
    assert rec["restore_script"] != first["restore_script"]
    # a record whose script is gone (or empty) is never reused as an empty restore
    os.unlink(rec["restore_script"])
    again = nft.schedule(fw, paths, FakeNft("table inet palplat { C }\n"), None, run)
    with open(again["restore_script"]) as fh:
        assert fh.read().endswith("table inet palplat { C }\n")
