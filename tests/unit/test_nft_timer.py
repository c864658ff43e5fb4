"""The systemd rollback timer: systemd is not PID 1 here, so the argv palplat gives
``systemd-run`` is checked against the options the installed systemd-run documents
(``systemd-run --help``), and confirm must stop the timer. The detached-process
mechanism runs for real in tests/functional/test_nftables.py."""

import json
import os
import re
import shutil
import subprocess

import pytest

from palplat import config, nft, proc


class FakeNft:
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
    rec = nft.schedule(fw, paths, FakeNft(), "table inet palplat\n", None, run)
    assert rec["mechanism"] == "systemd" and rec["unit"].startswith("palplat-nft-rollback-")
    argv = calls[0]
    assert argv[0] == "systemd-run"
    assert "--on-active=30" in argv and f"--unit={rec['unit']}" in argv
    cmd = argv[argv.index("--") + 1 :]
    assert cmd[1:4] == ["-m", "palplat.nft_rollback", paths.record]
    assert cmd[-2:] == ["--token", rec["token"]]
    assert oct(os.stat(paths.record).st_mode & 0o777) == "0o600"
    with open(rec["restore_script"]) as fh:
        assert fh.read() == "table inet palplat\n"
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
    first = nft.schedule(fw, paths, FakeNft(), "FIRST\n", None, run)
    second = nft.schedule(fw, paths, FakeNft(), "SECOND\n", None, run)
    assert second["restore_script"] == first["restore_script"]
    with open(second["restore_script"]) as fh:
        assert fh.read() == "FIRST\n"  # the last confirmed table, not the intermediate one
    assert ["systemctl", "stop", f"{first['unit']}.timer"] in runs
    assert second["token"] != first["token"]


def test_the_rollback_program_ignores_a_confirmed_or_superseded_record(tmp_path):
    from palplat import nft_rollback

    rec = tmp_path / "pending.json"
    assert nft_rollback.fire(str(rec)) == 0  # nothing pending: nothing runs
    nft_rollback.write(str(rec), {"token": "a", "restore_argv": ["false"]})
    assert nft_rollback.fire(str(rec), token="b") == 0  # a newer change owns the record
    assert rec.exists()
    assert nft_rollback.fire(str(rec), token="a") == 1  # restore failed: record kept
    assert rec.exists()
    assert nft_rollback.read(nft_rollback.outcome_path(str(rec)))["outcome"] == "rollback failed"


@pytest.mark.parametrize("root", ["/", "/tmp/x"])
def test_paths_are_rooted(root):
    fw = config.load({"palplat": {"firewall": {"root": root}}}).firewall
    p = nft.Paths.of(fw)
    prefix = "" if root == "/" else root
    assert p.persist_file == f"{prefix}/etc/nftables.d/palplat-palplat.nft"
    assert p.main_config == f"{prefix}/etc/nftables.conf"
    assert p.record.startswith(f"{prefix}/var/lib/palplat/nftables/pending-host-inet-palplat")
