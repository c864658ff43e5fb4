"""The ``Secret`` value type used by the pillar model for every secret field."""

from __future__ import annotations

from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from palplat import redact

PGP_HEADER = "-----BEGIN PGP MESSAGE-----"
# pydantic error type of a secret field given a mapping or list (its value is not shown)
SECRET_ERROR = "palplat_secret"


class Secret(redact.Hidden):
    """A secret scalar. ``str()``/``repr()`` give ``<hidden>``; ``reveal()`` the value.

    Creating one registers the value with :mod:`palplat.redact`, so it is masked in
    every output of the process from then on.
    """

    __slots__ = ("_value",)

    def __init__(self, value: Any):
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = value
        redact.register([value])

    def reveal(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return redact.HIDDEN

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("palplat.Secret", self._value))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler):
        def to_secret(v: Any) -> Secret:
            if isinstance(v, Secret):
                return v
            if isinstance(v, str) and v.lstrip().startswith(PGP_HEADER):
                raise ValueError(
                    "is still GPG-encrypted: the master could not decrypt it. Check that "
                    "the pillar file starts with '#!yaml|gpg' and that the master's "
                    "gpg_keydir holds the private key of the recipient it was encrypted for"
                )
            if v is None or isinstance(v, (dict, list)):
                # its own error type: the pillar error must not show what was found here
                # (a key pasted one level too deep would be printed in the clear)
                raise PydanticCustomError(
                    SECRET_ERROR, "expected a secret scalar (string or number)"
                )
            return cls(v)

        return core_schema.no_info_plain_validator_function(
            to_secret,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: redact.HIDDEN),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: GetJsonSchemaHandler):
        return {
            "type": ["string", "number"],
            "writeOnly": True,
            "x-palplat-secret": True,
            "description": "Secret: put it in the GPG-encrypted pillar (make encrypt).",
        }


def secretize(tree: Any) -> Any:
    """Turn every scalar leaf of a nested dict/list into a :class:`Secret`."""
    if isinstance(tree, dict):
        return {k: secretize(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [secretize(v) for v in tree]
    if tree is None or isinstance(tree, bool) or isinstance(tree, Secret):
        return tree
    if isinstance(tree, str) and tree.lstrip().startswith(PGP_HEADER):
        raise ValueError(
            "holds a value that is still GPG-encrypted: the master could not decrypt it"
        )
    return Secret(tree)


def reveal(tree: Any) -> Any:
    """Inverse of :func:`secretize`: the plain values (only for writing to 0600 files)."""
    if isinstance(tree, Secret):
        return tree.reveal()
    if isinstance(tree, dict):
        return {k: reveal(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [reveal(v) for v in tree]
    return tree
