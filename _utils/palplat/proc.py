"""Run external programs (helm, nft, k3s, systemctl, ...) with argv lists, never shells.

:func:`run` refuses an argv that contains a registered secret (secrets go through files
with mode 0600 or stdin) and masks the output it puts into errors and logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from palplat import redact
from palplat.errors import CommandError, InputError

log = logging.getLogger("palplat.proc")


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[..., Result]

# Counts every process started through run(); benchmarks read it.
STATS = {"calls": 0, "by_program": {}}


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,  # noqa: A002 - mirrors subprocess
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    cwd: str | None = None,
) -> Result:
    argv = [str(a) for a in argv]
    for a in argv:
        if redact.contains_secret(a):
            raise InputError(
                f"refusing to run {argv[0]}: a secret value would appear in its argv; "
                "pass it through a 0600 file or stdin"
            )
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    prog = os.path.basename(argv[0])
    STATS["calls"] += 1
    STATS["by_program"][prog] = STATS["by_program"].get(prog, 0) + 1
    log.debug("running %s", " ".join(argv))
    try:
        cp = subprocess.run(  # noqa: S603 - argv list, no shell
            argv,
            input=input,
            env=full_env,
            timeout=timeout,
            capture_output=True,
            text=True,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        raise CommandError(argv, 127, f"{argv[0]}: program not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise CommandError(argv, 124, f"{argv[0]} timed out after {timeout}s") from None
    res = Result(argv, cp.returncode, cp.stdout, cp.stderr)
    if check and cp.returncode != 0:
        raise CommandError(
            argv, cp.returncode, redact.mask_text(cp.stderr), redact.mask_text(cp.stdout)
        )
    return res


def write_private(path: str, data: str | bytes) -> None:
    """Write ``data`` to ``path`` readable only by its owner (0600), atomically.

    The bytes go to a new temporary file beside ``path`` (``O_EXCL | O_NOFOLLOW``: never an
    existing file or a symlink planted there), which is flushed and then renamed over
    ``path``. So a reader sees the old or the new content, never a truncated file, and a
    symlink at ``path`` is replaced, not followed (the bytes never land where it points).
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.palplat-{secrets.token_hex(6)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data.encode() if isinstance(data, str) else data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
