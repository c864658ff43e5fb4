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


def yaml_block(
    armored: str, key: str = "secret", indent: int = 0, anchor: str | None = None
) -> str:
    """Format an armored message as a YAML block scalar: ``key: |\\n  -----BEGIN...``
    (``key: &anchor |`` with ``anchor``)."""
    pad = " " * indent
    body = textwrap.indent(armored.strip() + "\n", pad + "  ")
    mark = f"&{anchor} " if anchor else ""
    return f"{pad}{key}: {mark}|\n{body}"


# ------------------------------------------------------------------------ decryption


class DecryptError(PalplatError):
    """A ciphertext the key directory cannot decrypt (never shows the ciphertext)."""


def decrypt_tree(data, keydir: str, *, must_succeed: bool = True, where: str = ""):
    """What the ``palplat`` renderer does (``#!yaml|palplat``): every string holding a
    GPG message, decrypted with the keys in ``keydir``, wrapped as a decrypted value
    (:func:`palplat.provenance.wrap_decrypted`), so that palplat knows it is a secret
    wherever it lands. A ciphertext that cannot be decrypted raises
    :class:`DecryptError` (``must_succeed``) or stays as it is (the pillar check then
    says it is still encrypted)."""
    import gnupg

    from palplat import provenance

    gpg = gnupg.GPG(gnupghome=keydir)

    def walk(node, path):
        if isinstance(node, dict):
            return {k: walk(v, (*path, str(k))) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, str(i))) for i, v in enumerate(node)]
        if not provenance.is_ciphertext(node):
            return node
        got = gpg.decrypt(node.replace("\\n", "\n"))
        if not got.ok:
            at = ":".join(path)
            if must_succeed:
                raise DecryptError(
                    f"{where}{' ' if where else ''}{at}: cannot decrypt the GPG message "
                    f"({got.status or 'no secret key'}); encrypt it for the master's key "
                    f"(the private key must be in {keydir})"
                )
            return node
        value = str(got)
        if node.strip().startswith(provenance.PGP_HEADER):
            value = value.rstrip("\n")
        return provenance.wrap_decrypted(value)

    return walk(data, ())
