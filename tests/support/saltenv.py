"""Real Salt for tests: a master and minion (pytest-salt-factories) wired to this repo,
GPG keys generated at test time, and witnesses that search every output for secrets."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A master whose file_roots is this checkout must not walk the virtualenv, git, builds and
# sandbox data on every saltutil.sync_all (23,000 files under .venv alone: minutes on a
# loaded machine).
FILE_IGNORE_REGEX = [r"/\.venv/", r"/\.git/", r"/build/", r"/\.sandbox/", r"/docs/_build/",
                     r"/__pycache__/", r"/\.pytest_cache/", r"/\.ruff_cache/"]  # fmt: skip

# A minion pointed straight at this checkout (no sync): the loader module directories and
# ``utils_dirs``, which Salt puts on sys.path while it imports the modules (so they find
# the ``palplat`` library exactly as synced modules find ``extmods/utils``).
CHECKOUT_DIRS = {
    "module_dirs": [str(REPO / "_modules")],
    "states_dirs": [str(REPO / "_states")],
    "runner_dirs": [str(REPO / "_runners")],
    "render_dirs": [str(REPO / "_renderers")],
    "utils_dirs": [str(REPO / "_utils")],
}


def extension_root() -> Path:
    """A directory holding only links to the checkout's extension directories (every
    top-level ``_*``: _modules, _states, _runners, _output, _renderers, _utils), for a
    master's file_roots: the checkout itself would make every ``saltutil.sync_all`` walk
    the virtualenv, .git and sandbox data (file_ignore_regex filters what it lists, after
    the walk: minutes on a loaded machine). One per checkout; each link made atomically."""
    import hashlib
    import tempfile

    tag = hashlib.sha256(str(REPO).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"palplat-ext-{tag}"
    root.mkdir(exist_ok=True)
    for src in sorted(p for p in REPO.glob("_*") if p.is_dir() and p.name != "__pycache__"):
        link = root / src.name
        if link.is_symlink() and link.resolve() == src.resolve():
            continue
        tmp = root / f".{src.name}.{uuid.uuid4().hex[:8]}"
        tmp.symlink_to(src, target_is_directory=True)
        tmp.replace(link)
    return root


def master_overrides(pillar_dir: Path, gpg_keydir: Path | None = None, **extra) -> dict:
    """Classic deployment (mode b): file_roots hold the state tree and the extension
    directories (_modules, _states, _runners, _renderers, _utils; :func:`extension_root`),
    synced with saltutil.sync_all."""
    cfg = {
        "file_roots": {"base": [str(REPO / "salt"), str(extension_root())]},
        "pillar_roots": {"base": [str(pillar_dir)]},
        "log_level_logfile": "debug",
        "state_output": "full",
        "gpg_decrypt_must_succeed": False,
        "file_ignore_regex": FILE_IGNORE_REGEX,
        # the palplat renderer (#!yaml|palplat) before any sync: the pillar is compiled
        # on the master from the first minion start
        "render_dirs": CHECKOUT_DIRS["render_dirs"],
        "utils_dirs": CHECKOUT_DIRS["utils_dirs"],
    }
    if gpg_keydir is not None:
        cfg["gpg_keydir"] = str(gpg_keydir)
    cfg.update(extra)
    return cfg


def minion_overrides(**extra) -> dict:
    """A test minion's config. Its pillars may hold plain-text secrets
    (``palplat_plaintext_secrets``), as palplat refuses by default: tests that prove the
    refusal, or that use real GPG, pass ``palplat_plaintext_secrets=False``."""
    cfg = {"log_level_logfile": "debug", "palplat_plaintext_secrets": True}
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
