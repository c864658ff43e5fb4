"""A small service-manager interface: systemd on real hosts, plain processes in tests.

Both managers keep unit files under ``<root>/etc/systemd/system`` and expose the same
verbs. :class:`Systemd` calls ``systemctl`` through :func:`palplat.proc.run` (argv lists).
:class:`Processes` runs a unit's ``ExecStart`` as a detached process group (pid file and
an append-only event log under ``<root>/run/palplat-services``): hosts and containers
without systemd, and the tests, which count restarts from that log.

:func:`manager` picks one: ``systemd`` when ``/run/systemd/system`` exists on a host
rooted at ``/``, else ``processes``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from palplat import proc
from palplat.errors import CommandError, InputError

UNIT_DIR = "etc/systemd/system"


def _rooted(root: str | os.PathLike, rel: str) -> Path:
    return Path(root) / rel.lstrip("/")


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write ``text`` atomically when it differs (or the mode does); True when written."""
    try:
        same = path.read_text() == text and (path.stat().st_mode & 0o777) == mode
    except FileNotFoundError:
        same = False
    if same:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.palplat-tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return True


def verify_unit(path: Path) -> list[str]:
    """Problems ``systemd-analyze verify`` reports for a unit file ([] when clean).

    Returns None when systemd-analyze is not installed (the caller decides to skip).
    """
    exe = shutil.which("systemd-analyze")
    if exe is None:
        return None  # type: ignore[return-value]
    res = proc.run([exe, "verify", str(path)], check=False, timeout=60)
    lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
    if res.returncode != 0:
        return lines or [f"systemd-analyze exited {res.returncode}"]
    return [ln for ln in lines if str(path.name) in ln or path.name.split(".")[0] in ln]


class ServiceManager:
    """Common part: unit files under ``<root>/etc/systemd/system``."""

    kind = "base"

    def __init__(self, root: str | os.PathLike = "/"):
        self.root = Path(root)
        self.unit_dir = _rooted(root, UNIT_DIR)

    def unit_path(self, name: str) -> Path:
        return self.unit_dir / name

    def read_unit(self, name: str) -> str | None:
        try:
            return self.unit_path(name).read_text()
        except FileNotFoundError:
            return None

    def write_unit(self, name: str, text: str) -> bool:
        changed = write_if_changed(self.unit_path(name), text, 0o644)
        if changed:
            self.daemon_reload()
        return changed

    def remove_unit(self, name: str) -> bool:
        path = self.unit_path(name)
        if not path.exists():
            return False
        path.unlink()
        self.daemon_reload()
        return True

    # verbs implemented by subclasses
    def daemon_reload(self) -> None:  # pragma: no cover - trivial
        pass

    def is_active(self, name: str) -> bool:
        raise NotImplementedError

    def is_enabled(self, name: str) -> bool:
        raise NotImplementedError

    def start(self, name: str) -> None:
        raise NotImplementedError

    def stop(self, name: str) -> None:
        raise NotImplementedError

    def restart(self, name: str) -> None:
        raise NotImplementedError

    def enable(self, name: str) -> None:
        raise NotImplementedError

    def disable(self, name: str) -> None:
        raise NotImplementedError


class Systemd(ServiceManager):
    """systemd through ``systemctl`` (argv lists, no shell)."""

    kind = "systemd"

    def __init__(self, root: str | os.PathLike = "/", systemctl: str = "systemctl"):
        super().__init__(root)
        self.systemctl = systemctl

    def _ctl(self, *args: str, check: bool = True) -> proc.Result:
        return proc.run([self.systemctl, *args], check=check, timeout=600)

    def daemon_reload(self) -> None:
        self._ctl("daemon-reload")

    def is_active(self, name: str) -> bool:
        return self._ctl("is-active", "--quiet", name, check=False).returncode == 0

    def is_enabled(self, name: str) -> bool:
        return self._ctl("is-enabled", "--quiet", name, check=False).returncode == 0

    def start(self, name: str) -> None:
        # --no-block: the caller waits for readiness itself, with progress events.
        self._ctl("start", "--no-block", name)

    def stop(self, name: str) -> None:
        self._ctl("stop", name)

    def main_pid(self, name: str) -> int:
        res = self._ctl("show", "--property=MainPID", "--value", name, check=False)
        try:
            return int(res.stdout.strip() or 0)
        except ValueError:
            return 0

    def restart(self, name: str, timeout: float = 120) -> None:
        # --no-block, then wait for a new main process: the caller's readiness wait must
        # not see the old process still answering.
        old = self.main_pid(name)
        self._ctl("restart", "--no-block", name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.main_pid(name)
            if pid and pid != old:
                return
            time.sleep(0.5)

    def enable(self, name: str) -> None:
        self._ctl("enable", name)

    def disable(self, name: str) -> None:
        self._ctl("disable", name, check=False)


class Processes(ServiceManager):
    """Runs a unit's ``ExecStart`` as a detached process group; for hosts without systemd.

    Understands ``ExecStart``, ``Environment`` and ``EnvironmentFile`` (``-`` prefix: may
    be missing). ``<state_dir>/<unit>.events`` gets one line per start/stop.
    """

    kind = "processes"

    def __init__(self, root: str | os.PathLike = "/", state_dir: str | os.PathLike | None = None):
        super().__init__(root)
        self.state_dir = Path(state_dir) if state_dir else _rooted(root, "run/palplat-services")

    def _pidfile(self, name: str) -> Path:
        return self.state_dir / f"{name}.pid"

    def _log(self, name: str, event: str) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / f"{name}.events", "a") as fh:
            fh.write(f"{time.time():.3f} {event}\n")

    def events(self, name: str) -> list[str]:
        """The recorded events of a unit (``start``, ``stop``), oldest first."""
        try:
            text = (self.state_dir / f"{name}.events").read_text()
        except FileNotFoundError:
            return []
        return [ln.split(" ", 1)[1] for ln in text.splitlines() if " " in ln]

    def log_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"

    def _parse(self, name: str) -> tuple[list[str], dict[str, str]]:
        text = self.read_unit(name)
        if text is None:
            raise InputError(f"unit {name} is not installed in {self.unit_dir}")
        argv: list[str] = []
        env: dict[str, str] = {}
        section = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section != "[Service]" or "=" not in line:
                continue
            key, value = (p.strip() for p in line.split("=", 1))
            if key == "ExecStart":
                argv = shlex.split(value.lstrip("-@:+!"))
            elif key == "Environment":
                for item in shlex.split(value):
                    k, _, v = item.partition("=")
                    env[k] = v
            elif key == "EnvironmentFile":
                optional = value.startswith("-")
                path = Path(value.lstrip("-"))
                try:
                    for ln in path.read_text().splitlines():
                        if "=" in ln and not ln.lstrip().startswith("#"):
                            k, _, v = ln.partition("=")
                            env[k.strip()] = v.strip().strip("\"'")
                except FileNotFoundError:
                    if not optional:
                        raise InputError(f"{name}: EnvironmentFile {path} is missing") from None
        if not argv:
            raise InputError(f"unit {name} has no ExecStart")
        return argv, env

    def _pid(self, name: str) -> int | None:
        try:
            pid = int(self._pidfile(name).read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return None
        except (OSError, IndexError):
            return None
        return pid

    def is_active(self, name: str) -> bool:
        return self._pid(name) is not None

    def is_enabled(self, name: str) -> bool:
        return (self.state_dir / f"{name}.enabled").exists()

    def enable(self, name: str) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / f"{name}.enabled").touch()

    def disable(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / f"{name}.enabled").unlink()

    def start(self, name: str) -> None:
        if self.is_active(name):
            return
        argv, env = self._parse(name)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        full_env = dict(os.environ)
        full_env.update(env)
        with open(self.log_path(name), "ab") as log:
            try:
                p = subprocess.Popen(  # noqa: S603 - argv from the unit file, no shell
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                    cwd="/",
                    start_new_session=True,
                )
            except OSError as exc:
                raise CommandError(argv, 127, f"cannot start {name}: {exc}") from None
        self._pidfile(name).write_text(f"{p.pid}\n")
        self._log(name, "start")

    def stop(self, name: str, timeout: float = 30) -> None:
        pid = self._pid(name)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._pid(name) is not None:
            time.sleep(0.1)
        if self._pid(name) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            time.sleep(0.2)
        with contextlib.suppress(FileNotFoundError):
            self._pidfile(name).unlink()
        self._log(name, "stop")

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)


def manager(kind: str = "auto", root: str | os.PathLike = "/") -> ServiceManager:
    """The service manager for ``kind`` (auto, systemd or processes)."""
    if kind == "auto":
        kind = (
            "systemd" if str(root) == "/" and os.path.isdir("/run/systemd/system") else "processes"
        )
    if kind == "systemd":
        return Systemd(root)
    if kind == "processes":
        return Processes(root)
    raise InputError(f"unknown service manager {kind!r}: use auto, systemd or processes")
