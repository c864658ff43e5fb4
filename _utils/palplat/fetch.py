"""Download pinned artifacts (k3s, helm) from http(s), file://, a path or salt://, and
verify them by sha256. Used by every stage that installs a binary."""

from __future__ import annotations

import hashlib
import platform
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from palplat.errors import PalplatError

# salt:// sources are fetched by the minion (cp.cache_file); the loader passes it in.
FetchSalt = Callable[[str], "str | None"]


ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def arch() -> str:
    """The machine's architecture as release artifacts name it (amd64, arm64, arm)."""
    a = ARCH.get(platform.machine().lower())
    if a is None:
        return "arm" if platform.machine().lower().startswith("arm") else "amd64"
    return a


class SourceError(PalplatError):
    """An artifact could not be downloaded (unreachable source, missing file)."""


class ChecksumError(PalplatError):
    """A downloaded artifact does not match its expected sha256 or version."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, dest: Path, fetch_salt: FetchSalt | None = None, timeout: float = 120) -> None:
    """Copy ``url`` to ``dest`` (http(s), file://, salt://, absolute path)."""
    try:
        if url.startswith("salt://"):
            if fetch_salt is None:
                raise SourceError(f"{url}: salt:// sources need a Salt minion (cp.cache_file)")
            local = fetch_salt(url)
            if not local:
                raise SourceError(
                    f"cannot fetch {url} from the Salt fileserver: the file is not in file_roots"
                )
            shutil.copyfile(local, dest)
        elif url.startswith(("file://", "/")):
            shutil.copyfile(urllib.parse.urlparse(url).path if "://" in url else url, dest)
        else:
            req = urllib.request.Request(url, headers={"User-Agent": "palplat"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:  # noqa: S310
                shutil.copyfileobj(resp, out, 1 << 20)
    except SourceError:
        raise
    except urllib.error.HTTPError as exc:
        raise SourceError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(f"cannot download {url}: {reason}") from None


def source_url(template: str, version: str | None) -> str:
    """A download URL from a pillar template with ``{version}`` and ``{arch}`` (the
    version quoted for http(s), e.g. k3s's ``+``)."""
    import urllib.parse

    version = version or ""
    if template.startswith(("http://", "https://")):
        version = urllib.parse.quote(version, safe="")
    return template.replace("{version}", version).replace("{arch}", arch())
