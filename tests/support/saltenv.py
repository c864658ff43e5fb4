"""Real Salt for tests: a master and minion (pytest-salt-factories) wired to this repo,
GPG keys generated at test time, and witnesses that search every output for secrets."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A minion pointed straight at this checkout (no sync): the loader module directories and
# ``utils_dirs``, which Salt puts on sys.path while it imports the modules (so they find
# the ``palplat`` library exactly as synced modules find ``extmods/utils``).
CHECKOUT_DIRS = {
    "module_dirs": [str(REPO / "_modules")],
    "states_dirs": [str(REPO / "_states")],
    "runner_dirs": [str(REPO / "_runners")],
    "utils_dirs": [str(REPO / "_utils")],
}


def master_overrides(pillar_dir: Path, gpg_keydir: Path | None = None, **extra) -> dict:
    """Classic deployment (mode b): file_roots hold the state tree and the repo root (for
    _modules, _states, _runners, _utils), synced with saltutil.sync_all."""
    cfg = {
        "file_roots": {"base": [str(REPO / "salt"), str(REPO)]},
        "pillar_roots": {"base": [str(pillar_dir)]},
        "log_level_logfile": "debug",
        "state_output": "full",
        "gpg_decrypt_must_succeed": False,
    }
    if gpg_keydir is not None:
        cfg["gpg_keydir"] = str(gpg_keydir)
    cfg.update(extra)
    return cfg


def minion_overrides(**extra) -> dict:
    cfg = {"log_level_logfile": "debug"}
    cfg.update(extra)
    return cfg


# --------------------------------------------------------------------------- GPG


def make_gpg_home(path: Path, name: str = "palplat test master") -> tuple[str, str]:
    """Create a keyring with a fresh passphrase-less key; return (gnupghome, fingerprint)."""
    import gnupg

    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    gpg = gnupg.GPG(gnupghome=str(path))
    params = gpg.gen_key_input(
        name_real=name,
        name_email=f"{name.replace(' ', '-')}@palplat.invalid",
        key_type="RSA",
        key_length=2048,
        no_protection=True,
        expire_date=0,
    )
    key = gpg.gen_key(params)
    assert key.fingerprint, f"gpg key generation failed: {key.stderr}"
    return str(path), key.fingerprint


# ---------------------------------------------------------------------- witnesses


class ArgvWatcher:
    """Samples /proc/*/cmdline while it runs and records every argv seen."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        raw = fh.read()
                except OSError:
                    continue
                if raw:
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def find_secrets(secrets: Iterable[str], **places) -> dict[str, list[str]]:
    """Return {place: [secrets found]} for every place (str, bytes, or JSON-able data)."""
    found: dict[str, list[str]] = {}
    for name, data in places.items():
        if isinstance(data, bytes):
            text = data.decode(errors="replace")
        elif isinstance(data, str):
            text = data
        else:
            text = json.dumps(data, default=str)
        hits = [s for s in secrets if s in text]
        if hits:
            found[name] = hits
    return found


def read(path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""
