"""Encrypt pillar secrets for Salt's ``gpg`` renderer (python-gnupg, real GnuPG)."""

from __future__ import annotations

import textwrap

from palplat.errors import InputError, PalplatError


def encrypt(value: str, recipient: str, gnupghome: str | None = None) -> str:
    """Return the ASCII-armored PGP message of ``value`` for ``recipient``."""
    import gnupg

    if not value:
        raise InputError("nothing to encrypt: the value is empty")
    gpg = gnupg.GPG(gnupghome=gnupghome) if gnupghome else gnupg.GPG()
    keys = gpg.list_keys(keys=[recipient])
    if not keys:
        raise InputError(
            f"no public key for recipient {recipient!r} in "
            f"{gnupghome or 'the default keyring'}; import the master's public key first "
            "(gpg --homedir /etc/salt/gpgkeys --armor --export <id> | gpg --import)"
        )
    res = gpg.encrypt(value, [recipient], always_trust=True, armor=True)
    if not res.ok:
        raise PalplatError(f"gpg could not encrypt for {recipient!r}: {res.status}")
    return str(res)


def yaml_block(armored: str, key: str = "secret", indent: int = 0) -> str:
    """Format an armored message as a YAML block scalar: ``key: |\\n  -----BEGIN...``."""
    pad = " " * indent
    body = textwrap.indent(armored.strip() + "\n", pad + "  ")
    return f"{pad}{key}: |\n{body}"
