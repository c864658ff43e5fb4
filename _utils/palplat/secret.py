"""The ``Secret`` value type used by the pillar model for every secret field."""

from __future__ import annotations

from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from palplat import redact
from palplat.provenance import PGP_HEADER, Decrypted, Sealed

# pydantic error type of a secret field given a mapping or list (its value is not shown)
SECRET_ERROR = "palplat_secret"
# ... given a sealed value outside a plan
SEALED_ERROR = "palplat_sealed"
# ... a value that holds a credential where none may be (a URL with user:password@)
CREDENTIAL_ERROR = "palplat_credential"
SECRET_ERRORS = frozenset({SECRET_ERROR, SEALED_ERROR, CREDENTIAL_ERROR})

# Values that must never be a secret: the example's placeholders and passwords the
# charts of the example platform publish as their defaults (anyone can look them up).
PLACEHOLDER_MARK = "change-me"
KNOWN_DEFAULTS = frozenset(
    {
        "prom-operator",  # kube-prometheus-stack: grafana.adminPassword
        "Harbor12345",  # harbor: harborAdminPassword
        "minio123",  # minio: rootPassword
        "minioadmin",  # minio: the server's own default user and password
        "console123",  # minio chart: the console user's password
        "r8sA8CPHD9!bt6d",  # forgejo/gitea chart: gitea.admin.password
        "changeme",
        "password",
    }
)
PLAINTEXT_HINT = (
    "is a secret field holding plain text: encrypt the value for the master's GPG key "
    "(make encrypt) in a pillar file that starts with '#!yaml|palplat', so that it never "
    "sits in the repository in clear and palplat knows it is a secret (a file rendered "
    "with Salt's own '#!yaml|gpg' gives palplat plain text: switch it to '#!yaml|palplat')"
)


def placeholder_problem(value: object) -> str | None:
    """Why ``value`` cannot be a real secret (None when it can)."""
    text = str(value)
    if PLACEHOLDER_MARK in text.lower():
        return (
            "is a placeholder (CHANGE-ME...): replace it with the real value, GPG-encrypted "
            "(make encrypt)"
        )
    if text.strip() in KNOWN_DEFAULTS:
        return (
            "is a published default password of the chart it configures: anyone can look "
            "it up; set a value of your own, GPG-encrypted (make encrypt)"
        )
    return None


class Secret(redact.Hidden):
    """A secret scalar. ``str()``/``repr()`` give ``<hidden>``; ``reveal()`` the value.

    Creating one registers the value with :mod:`palplat.redact`, so it is masked in
    every output of the process from then on. ``origin``: ``decrypted`` (the pillar's
    ``palplat`` renderer), ``sealed`` (a pull-request plan's ciphertext it did not
    decrypt: the value is a placeholder, see :attr:`sealed`), ``plain`` (plain text in
    the pillar, where the operator allowed it) or ``made`` (palplat or an API made it).
    """

    __slots__ = ("_value", "origin")

    def __init__(self, value: Any, origin: str = "made"):
        if isinstance(value, Secret):
            origin = value.origin
            value = value.reveal()
        self._value = value
        self.origin = origin
        redact.register([value])

    def reveal(self) -> Any:
        return self._value

    @property
    def sealed(self) -> bool:
        """True when the value is unknown: a pull-request plan did not decrypt it. A
        sealed credential is never sent anywhere."""
        return self.origin == "sealed"

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
        def to_secret(v: Any, info: core_schema.ValidationInfo) -> Secret:
            return secret_from(v, info.context)

        return core_schema.with_info_plain_validator_function(
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


STILL_ENCRYPTED = (
    "is still GPG-encrypted: the master could not decrypt it. Check that the pillar file "
    "starts with '#!yaml|palplat' and that the master's gpg_keydir holds the private key "
    "of the recipient it was encrypted for"
)


def secret_from(v: Any, context: Any = None) -> Secret:
    """The :class:`Secret` of one pillar value, by its origin (:mod:`palplat.provenance`).

    ``context`` (pydantic's validation context, from :func:`palplat.config.load`):
    ``plaintext_secrets`` (plain text allowed: tests, the sandbox), ``planning`` (a
    pull-request plan: sealed values allowed)."""
    ctx = context or {}
    if isinstance(v, Secret):
        return v
    if isinstance(v, Sealed):
        if not ctx.get("planning"):
            raise PydanticCustomError(
                SEALED_ERROR,
                "holds a sealed pull-request value: only a plan (test mode) can use it",
            )
        return Secret(v.placeholder, origin="sealed")
    if isinstance(v, Decrypted):
        origin, value = "decrypted", v.value
    else:
        origin, value = "plain", v
    if isinstance(value, str) and PGP_HEADER in value:
        raise PydanticCustomError(SECRET_ERROR, STILL_ENCRYPTED)
    if value is None or isinstance(value, (dict, list)):
        # its own error type: the pillar error must not show what was found here
        # (a key pasted one level too deep would be printed in the clear)
        raise PydanticCustomError(SECRET_ERROR, "expected a secret scalar (string or number)")
    if isinstance(value, bool):
        raise PydanticCustomError(SECRET_ERROR, "expected a secret scalar, not true/false")
    # placeholders and plain text are reported after validation (palplat.config), so
    # that they do not hide the pillar's other problems
    return Secret(value, origin=origin)


def problem_of(secret: Secret, plaintext_secrets: bool = True) -> str | None:
    """What is wrong with a validated secret's value or origin (None: nothing)."""
    if secret.sealed:
        return None
    problem = placeholder_problem(secret.reveal())
    if problem:
        return problem
    if secret.origin == "plain" and isinstance(secret.reveal(), str) and not plaintext_secrets:
        return PLAINTEXT_HINT  # a number may stay in clear (charts want one: an ID)
    return None


def secretize(tree: Any, context: Any = None, path: tuple[str, ...] = ()) -> Any:
    """Turn every scalar leaf of a nested dict/list into a :class:`Secret` (by origin:
    :func:`secret_from`); ``None`` and booleans stay as they are. A leaf's error carries
    its path below the tree (``ctx["subpath"]``, added to the pillar path)."""
    if isinstance(tree, dict):
        return {k: secretize(v, context, (*path, str(k))) for k, v in tree.items()}
    if isinstance(tree, list):
        return [secretize(v, context, (*path, str(i))) for i, v in enumerate(tree)]
    if tree is None or isinstance(tree, bool):
        return tree
    try:
        return secret_from(tree, context)
    except PydanticCustomError as exc:
        if not path:
            raise
        raise PydanticCustomError(exc.type, exc.message(), {"subpath": ":".join(path)}) from None


def reveal(tree: Any) -> Any:
    """Inverse of :func:`secretize`: the plain values (only for writing to 0600 files)."""
    if isinstance(tree, Secret):
        return tree.reveal()
    if isinstance(tree, dict):
        return {k: reveal(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [reveal(v) for v in tree]
    return tree
