"""Loader glue: masked state returns, progress events to the right bus, the encrypt tool."""

import os
import subprocess
import sys
import uuid

import gnupg

from palplat import loaderkit, redact
from palplat.errors import InputError, PillarError, PillarProblem
from palplat.proc import run
from palplat.secret import Secret
from tests.support.saltenv import REPO, make_gpg_home


def test_state_ret_masks_changes_and_comment():
    s = Secret("sekrit-" + uuid.uuid4().hex)
    ret = loaderkit.state_ret(
        "x", {"a": {"old": s.reveal(), "new": "y"}}, None, f"would set {s.reveal()}"
    )
    assert s.reveal() not in repr(ret)
    assert ret["changes"]["a"]["old"] == "<hidden>"


def test_failed_pillar_error_lists_problems():
    ret = loaderkit.failed("x", PillarError([PillarProblem("palplat:k3s:token", "bad")]))
    assert ret["result"] is False
    assert "palplat:k3s:token: bad" in ret["comment"]


def test_progress_goes_to_the_master_when_there_is_one():
    sent, fired = [], []
    funcs = {
        "event.send": lambda tag, data=None: sent.append((tag, data)),
        "event.fire": lambda data, tag: fired.append((tag, data)),
    }
    s = Secret("progress-secret-" + uuid.uuid4().hex)
    loaderkit.Progress(loaderkit.salt_fire(funcs, {"file_client": "remote"}), "t")(
        "start", f"using {s.reveal()}"
    )
    loaderkit.Progress(loaderkit.salt_fire(funcs, {"file_client": "local"}), "t")("done", "ok")
    assert sent == [("palplat/t/start", {"message": "using <hidden>"})]
    assert fired == [("palplat/t/done", {"message": "ok"})]


def test_proc_refuses_a_secret_in_argv():
    s = Secret("argv-secret-" + uuid.uuid4().hex)
    try:
        run(["echo", s.reveal()])
    except InputError as exc:
        assert s.reveal() not in str(exc)
    else:
        raise AssertionError("a secret reached argv")
    assert redact.contains_secret(f"x{s.reveal()}x")


def test_encrypt_tool_reads_the_value_from_stdin(tmp_path):
    home, fpr = make_gpg_home(tmp_path / "gpg")
    value = "tool-secret-" + uuid.uuid4().hex
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools/palplat-encrypt"),
            "--recipient",
            fpr,
            "--gnupghome",
            home,
            "--key",
            "token",
            "--indent",
            "4",
        ],
        input=value,
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    ).stdout
    assert out.startswith("    token: |\n      -----BEGIN PGP MESSAGE-----")
    assert value not in out
    armored = "\n".join(line.strip() for line in out.splitlines()[1:])
    assert str(gnupg.GPG(gnupghome=home).decrypt(armored)) == value
