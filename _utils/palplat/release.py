"""Install a pinned release artifact (helm, tailscale, k3s): one download-verify-install path.

:func:`install` downloads the archive or bare binary (:func:`palplat.fetch.fetch`: http(s),
file://, a path, salt://) into a work directory beside the first target, checks its
sha256 against the pillar's pin or the checksum file published with it, extracts the
named members (by file name) from a tarball, checks each new binary's version, and only
then renames each over its target (mode 0755) and reads the installed version back. Any
failure before the rename leaves the installed files in place, and its error says what
failed, the URL, expected vs got, where the expected value came from and the pillar path
to fix.
"""

from __future__ import annotations

import contextlib
import gzip
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from palplat.errors import PalplatError
from palplat.fetch import ChecksumError, FetchSalt, SourceError, fetch, sha256_file

SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Artifact:
    """A file to download and where its expected sha256 comes from."""

    url: str
    pillar: str  # the pillar section that sets url (and sha256): errors say to check it
    sha256: str | None = None  # pinned at <pillar>:sha256; wins over sums_url
    sums_url: str | None = None  # else this checksum file
    name: str | None = None  # its line in the checksum file; default: the url's file name
    pinnable: bool = True  # <pillar>:sha256 can pin this file (k3s: not its air-gap images)

    @property
    def file_name(self) -> str:
        return self.name or posixpath.basename(urllib.parse.unquote(self.url.split("?")[0]))


def sha256_from_sums(text: str, name: str) -> str | None:
    """The sha256 for ``name`` in a checksum file: the ``<sha>  <name>`` line (sha256sum's
    format; ``*name`` and a path ending in ``/name`` too), else the file's only sha256 (a
    bare ``<sha>`` as ``<url>.sha256`` holds, or one line for another name); None when a
    file with several lines has none for ``name``."""
    found: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        parts = line.split(maxsplit=1)
        if parts and SHA256_RE.match(parts[0]):
            file = parts[1].strip().lstrip("*") if len(parts) > 1 else None
            found.append((parts[0].lower(), file))
    for sha, file in found:
        if file is not None and posixpath.basename(file) == name:
            return sha
    return found[0][0] if len(found) == 1 else None


def expected_sha256(art: Artifact, work: Path, fetch_salt: FetchSalt | None) -> tuple[str, str]:
    """(sha256, where it came from): the pinned value and its pillar path, else the
    checksum file (downloaded into ``work``) and its URL."""
    pin = f"{art.pillar}:sha256"
    if art.sha256:
        return art.sha256.lower(), pin
    hint = f"; pin {pin}" if art.pinnable else f"; check {art.pillar}:url"
    if not art.sums_url:
        raise SourceError(f"no sha256 to check {art.url} against{hint}")
    sums = work / "sha256sums"
    fetch(art.sums_url, sums, fetch_salt)
    want = sha256_from_sums(sums.read_text(errors="replace"), art.file_name)
    if want is None:
        raise SourceError(f"{art.sums_url} lists no sha256 for {art.file_name}{hint}")
    return want, art.sums_url


def _unpack(archive: Path, names: set[str], out: Path) -> tuple[dict[str, Path], str | None]:
    """The first regular file of each name in the tarball, written under ``out``; and why
    the archive could not be read, if it could not."""
    files: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar:
                base = posixpath.basename(m.name)
                if m.isfile() and base in names and base not in files:
                    src = tar.extractfile(m)
                    with src, open(out / base, "wb") as dest:
                        shutil.copyfileobj(src, dest, 1 << 20)
                    files[base] = out / base
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
        return files, f"{type(exc).__name__}: {exc}"
    return files, None


def _replace(new: Path, target: Path, mode: int) -> None:
    """Rename ``new`` over ``target``; via a temporary file beside it across filesystems."""
    os.chmod(new, mode)
    if new.stat().st_dev == target.parent.stat().st_dev:
        os.replace(new, target)
        return
    tmp = target.with_name(f".{target.name}.palplat-tmp")
    try:
        shutil.copyfile(new, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def install(
    art: Artifact,
    targets: Mapping[str, str | Path],
    *,
    what: str,
    version: str | None,
    version_of: Callable[[Path], str | None] | None = None,
    current: str | None = None,
    unpack: bool = True,
    mode: int = 0o755,
    fetch_salt: FetchSalt | None = None,
    progress=None,
    timeout: float = 120,
) -> None:
    """Download ``art``, verify its sha256, and install it: ``targets`` maps each member's
    file name in the tarball (``unpack``), or the one bare file's name, to its installed
    path. ``version_of(path)`` (when given) must say ``version`` for each new file before
    anything is replaced and for each installed one after. ``what`` and ``current`` (the
    installed version) are for messages."""
    paths = {name: Path(t) for name, t in targets.items()}
    if not paths or (not unpack and len(paths) != 1):
        raise ValueError("install: one target for a bare file, at least one for an archive")
    first = next(iter(paths.values()))
    for target in paths.values():
        target.parent.mkdir(parents=True, exist_ok=True)
    kept = f"the installed {what} ({current or 'none'}) was left in place"
    url = art.url
    work = Path(tempfile.mkdtemp(prefix=f".palplat-{first.name}-", dir=first.parent))
    try:
        if progress:
            progress("download", f"downloading {what} {version} from {url}")
        download = work / "download"
        fetch(url, download, fetch_salt, timeout=timeout)
        want, where = expected_sha256(art, work, fetch_salt)
        got = sha256_file(download)
        if got != want:
            fix = f"{art.pillar} (url, sha256)" if art.pinnable else f"{art.pillar}:url"
            raise ChecksumError(
                f"checksum mismatch for {url}: sha256 {got}, expected {want} (from {where}); "
                f"{kept}. Check {fix} and the files the source serves"
            )
        if unpack:
            (work / "unpacked").mkdir()
            new, broken = _unpack(download, set(paths), work / "unpacked")
            missing = sorted(set(paths) - set(new))
            if missing:
                why = f" ({broken})" if broken else ""
                raise ChecksumError(
                    f"{url} is not a {what} release archive: it has no {', '.join(missing)}"
                    f"{why}; {kept}. Check {art.pillar}:url"
                )
        else:
            new = {next(iter(paths)): download}
        for name, file in new.items():
            os.chmod(file, mode)
            got_version = version_of(file) if version_of else version
            if got_version != version:
                raise ChecksumError(
                    f"{url} holds {name} {got_version}, not {version}; {kept}. Check "
                    f"{art.pillar}:url"
                )
        for name, target in paths.items():
            _replace(new[name], target, mode)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(work)
    for target in paths.values() if version_of else ():
        back = version_of(target)
        if back != version:
            raise PalplatError(f"verify: {target} reports {back} after install, not {version}")
