"""The pinned signing key of NVIDIA's container-toolkit apt repository.

apt trusts a repository through the keyring its ``signed-by`` option names. palplat
fetches the key (``palplat:gpu:toolkit_repo:key_url``), installs it only when its primary
key's fingerprint is the pinned ``key_fingerprint``, and writes it as a binary keyring
(what ``gpg --dearmor`` makes). Fingerprints are computed here from the OpenPGP packets
(RFC 4880 v4: SHA-1; RFC 9580 v6 and v5: SHA-256), so no gpg is needed on the node.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palplat.errors import PalplatError
from palplat.fetch import FetchSalt, fetch

PUBLIC_KEY, PUBLIC_SUBKEY = 6, 14


class KeyError_(PalplatError):  # noqa: N801 - avoid shadowing the builtin
    """A signing key is unreadable or is not the pinned one."""


def dearmor(data: bytes) -> bytes:
    """The binary packets of an ASCII-armored key (binary input is returned as is)."""
    if data[:1] and data[0] & 0x80:
        return data
    lines = data.decode("ascii", "replace").splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("-----BEGIN PGP"))
    except StopIteration:
        raise KeyError_("not an OpenPGP key: no '-----BEGIN PGP' armor line") from None
    body: list[str] = []
    in_headers = True
    for ln in lines[start + 1 :]:
        ln = ln.strip()
        if ln.startswith("-----END PGP"):
            break
        if in_headers:
            if not ln:
                in_headers = False
            elif ":" not in ln:  # armor without headers or blank line
                in_headers = False
                body.append(ln)
            continue
        if ln.startswith("="):  # CRC24 checksum
            break
        body.append(ln)
    try:
        return base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyError_(f"the key's armor is not valid base64: {exc}") from None


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of every OpenPGP packet in binary ``data``."""
    out = []
    i = 0
    while i < len(data):
        head = data[i]
        if not head & 0x80:
            raise KeyError_(f"not an OpenPGP packet at byte {i}")
        if head & 0x40:  # new format
            tag = head & 0x3F
            o1 = data[i + 1]
            if o1 < 192:
                length, i = o1, i + 2
            elif o1 < 224:
                length, i = ((o1 - 192) << 8) + data[i + 2] + 192, i + 3
            elif o1 == 255:
                length, i = int.from_bytes(data[i + 2 : i + 6], "big"), i + 6
            else:
                raise KeyError_("partial-length packets do not occur in keys")
        else:  # old format
            tag = (head >> 2) & 0x0F
            ltype = head & 0x03
            if ltype == 3:
                length, i = len(data) - i - 1, i + 1
            else:
                n = 1 << ltype
                length, i = int.from_bytes(data[i + 1 : i + 1 + n], "big"), i + 1 + n
        if i + length > len(data):
            raise KeyError_("truncated OpenPGP packet")
        out.append((tag, data[i : i + length]))
        i += length
    return out


def fingerprint(body: bytes) -> str:
    """The fingerprint of a public-key (or subkey) packet body."""
    version = body[0] if body else 0
    if version == 4:
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()  # noqa: S324
    if version in (5, 6):
        prefix = b"\x9a" if version == 5 else b"\x9b"
        return hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest().upper()
    raise KeyError_(f"unsupported OpenPGP key version {version}")


def primary_fingerprints(data: bytes) -> list[str]:
    """Fingerprints of the primary keys (not subkeys) in armored or binary ``data``."""
    return [fingerprint(body) for tag, body in packets(dearmor(data)) if tag == PUBLIC_KEY]


@dataclass
class KeyringPlan:
    path: Path
    want: str
    have: list[str] | None  # primary fingerprints of the keyring on disk (None: absent)
    new: bytes | None = None  # the verified binary keyring to write
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.have != [self.want]

    @property
    def changes(self) -> dict[str, Any]:
        if not self.changed:
            return {}
        return {
            "keyring": {
                "old": ", ".join(self.have) if self.have else None,
                "new": self.want,
                "path": str(self.path),
                "source": self.source,
            }
        }


def plan(path: Path, url: str, want: str, fetch_salt: FetchSalt | None = None) -> KeyringPlan:
    """Compare the keyring at ``path`` with the pinned fingerprint; when it differs, fetch
    the key from ``url`` and check it (the same in test mode: nothing is written)."""
    want = want.upper()
    try:
        have: list[str] | None = primary_fingerprints(path.read_bytes())
    except FileNotFoundError:
        have = None
    except KeyError_:
        have = ["unreadable"]
    p = KeyringPlan(path=path, want=want, have=have, source=url)
    if not p.changed:
        return p
    with tempfile.TemporaryDirectory(prefix="palplat-key-") as tmp:
        dest = Path(tmp) / "key"
        fetch(url, dest, fetch_salt=fetch_salt, timeout=60)
        raw = dest.read_bytes()
    got = primary_fingerprints(raw)
    if got != [want]:
        raise KeyError_(
            f"the signing key at {url} has fingerprint {', '.join(got) or 'none'}, not the "
            f"pinned {want}: it was not installed. If NVIDIA rotated its key, check the new "
            "fingerprint from a second source and set palplat:gpu:toolkit_repo:key_fingerprint"
        )
    p.new = dearmor(raw)
    return p


def apply(p: KeyringPlan) -> dict[str, Any]:
    """Write the verified keyring (0644) and re-read it."""
    if not p.changed:
        return {}
    if p.new is None:
        raise KeyError_("internal: apply() needs a plan made by plan()")
    p.path.parent.mkdir(parents=True, exist_ok=True)
    _write(p.path, p.new)
    if primary_fingerprints(p.path.read_bytes()) != [p.want]:
        raise KeyError_(f"verify failed: {p.path} does not hold the key {p.want} after writing")
    return p.changes


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.palplat-tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
