"""Renderer ``palplat``: Salt's ``gpg`` renderer, for palplat's pillar (on the master)::

    #!yaml|palplat
    palplat:
      k3s:
        token: |
          -----BEGIN PGP MESSAGE-----
          ...

Each GPG message is decrypted with the master's key directory (``gpg_keydir``, default
``<config_dir>/gpgkeys``, as the ``gpg`` renderer) and kept with a mark that it came from
decryption, so that palplat masks it wherever it lands and refuses it in a field that is
not secret (palplat/provenance.py). A message that cannot be decrypted fails the render
when ``gpg_decrypt_must_succeed`` is set (Salt's default), else stays encrypted and the
pillar check names its path. Unlike ``gpg``, it never logs a ciphertext.
"""

import importlib
import os
import sys


def _library():
    """``palplat.gpgtool``. Salt's render loader, unlike the others, does not put the
    ``utils`` module directories on ``sys.path`` while a renderer runs, so a master that
    runs palplat from ``saltutil.sync_all`` (``extension_modules/utils/palplat``) or a
    checkout (``utils_dirs``) gets them added here; a pip install needs nothing."""
    try:
        return importlib.import_module("palplat.gpgtool")
    except ImportError:
        dirs = list(__opts__.get("utils_dirs") or [])
        if __opts__.get("extension_modules"):
            dirs.append(os.path.join(__opts__["extension_modules"], "utils"))
        for d in dirs:
            if os.path.isdir(os.path.join(d, "palplat")) and d not in sys.path:
                sys.path.append(d)
        return importlib.import_module("palplat.gpgtool")


def _keydir():
    keydir = None
    if "config.get" in __salt__:
        keydir = __salt__["config.get"]("gpg_keydir")
    if not keydir:
        keydir = __opts__.get(
            "gpg_keydir",
            os.path.join(
                __opts__.get("config_dir", os.path.dirname(__opts__.get("conf_file", ""))),
                "gpgkeys",
            ),
        )
    return keydir


def render(data, saltenv="base", sls="", argline="", **kwargs):
    """Decrypt every GPG message in ``data`` (the YAML renderer's output)."""
    from salt.exceptions import SaltRenderError

    if not isinstance(data, (dict, list)):
        return data
    gpgtool = _library()
    try:
        return gpgtool.decrypt_tree(
            data,
            _keydir(),
            must_succeed=bool(__opts__.get("gpg_decrypt_must_succeed", True)),
            where=f"pillar {sls or '?'} ({saltenv}):",
        )
    except gpgtool.DecryptError as exc:
        raise SaltRenderError(str(exc)) from None
