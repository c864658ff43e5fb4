"""Where a pillar value came from, carried with the value.

palplat treats a value as a secret because of its origin, not only because of the field
it sits in (ARCHITECTURE.md, trust boundaries). Three markers travel in the raw pillar,
each a mapping with exactly one reserved key:

- ``{"__palplat_decrypted__": value}``: the ``palplat`` renderer (``#!yaml|palplat``)
  decrypted a GPG ciphertext into ``value`` (on the master, while compiling the pillar).
- ``{"__palplat_sealed__": digest}``: a pull-request plan met a ciphertext the applied
  pillar does not hold at the same path (new, changed or moved). It is never decrypted:
  the plan knows only that the value changes.
- ``{"__palplat_ref__": "k3s:token"}``: a pull-request plan met the very ciphertext the
  applied pillar holds at this path: the value is the applied pillar's, which the minion
  already has (decrypted) in its own pillar. The plan never carries a secret value.

:func:`unwrap` turns markers into :class:`Decrypted` / :class:`Sealed` objects (both
masked whole, their values registered with :mod:`palplat.redact` at once); the pillar
model accepts them only in secret fields (:mod:`palplat.secret`), and
:func:`leaves` finds them, and the ones that reached any other place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from palplat import redact

DECRYPTED = "__palplat_decrypted__"
SEALED = "__palplat_sealed__"
REF = "__palplat_ref__"
MARKERS = (DECRYPTED, SEALED, REF)
PGP_HEADER = "-----BEGIN PGP MESSAGE-----"

Resolve = Callable[[tuple[str, ...]], Any]


class Decrypted(redact.Hidden):
    """A value GPG decryption produced; masked whole, registered for masking."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value
        redact.register([value])

    def __repr__(self) -> str:
        return redact.HIDDEN

    __str__ = __repr__


class Sealed(redact.Hidden):
    """A ciphertext a pull-request plan did not decrypt: its value is unknown.

    ``placeholder`` stands in for it where a plan needs a value (a rendered chart, a
    fingerprint): a string that differs from every real value and is masked like one.
    """

    __slots__ = ("digest", "placeholder")

    def __init__(self, digest: str):
        self.digest = str(digest)
        self.placeholder = f"palplat-sealed-{self.digest}"
        redact.register([self.placeholder])

    def __repr__(self) -> str:
        return redact.HIDDEN

    __str__ = __repr__


def is_ciphertext(value: Any) -> bool:
    return isinstance(value, str) and PGP_HEADER in value


def digest_of(ciphertext: str) -> str:
    """A short, stable name of a ciphertext (never of a value)."""
    return hashlib.sha256(ciphertext.strip().encode()).hexdigest()[:16]


def wrap_decrypted(value: Any) -> dict[str, Any]:
    return {DECRYPTED: value}


def marker_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and len(obj) == 1:
        (key,) = obj.keys()
        if key in MARKERS:
            return key
    return None


def unwrap(tree: Any, resolve: Resolve | None = None, path: tuple[str, ...] = ()) -> Any:
    """``tree`` with every marker replaced by its :class:`Decrypted` / :class:`Sealed`
    object. ``resolve(path)`` gives the applied pillar's raw value of a reference (None
    when it has none: then the value counts as unknown, i.e. sealed)."""
    if isinstance(tree, (str, int, float, bool, type(None))):
        return tree
    kind = marker_of(tree)
    if kind == DECRYPTED:
        return Decrypted(tree[DECRYPTED])
    if kind == SEALED:
        return Sealed(tree[SEALED])
    if kind == REF:
        ref = tuple(str(tree[REF]).split(":"))
        got = resolve(ref) if resolve is not None else None
        if marker_of(got) == DECRYPTED:
            return Decrypted(got[DECRYPTED])
        return Sealed("ref-" + hashlib.sha256(str(tree[REF]).encode()).hexdigest()[:12])
    if isinstance(tree, dict):
        return {k: unwrap(v, resolve, (*path, str(k))) for k, v in tree.items()}
    if isinstance(tree, list):
        return [unwrap(v, resolve, (*path, str(i))) for i, v in enumerate(tree)]
    return tree


def lookup(tree: Any, path: Iterable[str]) -> Any:
    """The value at ``path`` (keys, list indexes as strings) or None."""
    node = tree
    for part in path:
        if isinstance(node, Mapping) and marker_of(node) is None:
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def seal(tree: Any, applied: Any, path: tuple[str, ...] = ()) -> Any:
    """A pull request's raw pillar (ciphertexts not decrypted) made safe to plan:
    each ciphertext becomes a reference when ``applied`` (the applied pillar, raw, at
    the same root) holds the very same ciphertext at the same path, else a sealed
    marker. Nothing here decrypts; the result holds no secret value."""
    if is_ciphertext(tree):
        same = lookup(applied, path)
        if is_ciphertext(same) and same.strip() == tree.strip():
            return {REF: ":".join(path)}
        return {SEALED: digest_of(tree)}
    if marker_of(tree) is not None:
        # a marker in a pull request's own text is not trusted: it is data to refuse
        return {SEALED: "forged-" + hashlib.sha256(repr(tree).encode()).hexdigest()[:12]}
    if isinstance(tree, Mapping):
        return {k: seal(v, applied, (*path, str(k))) for k, v in tree.items()}
    if isinstance(tree, list):
        return [seal(v, applied, (*path, str(i))) for i, v in enumerate(tree)]
    return tree


def sealed_paths(tree: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of the sealed markers of a sealed tree (what a plan cannot decrypt)."""
    if marker_of(tree) == SEALED:
        yield path
    elif isinstance(tree, Mapping) and marker_of(tree) is None:
        for k, v in tree.items():
            yield from sealed_paths(v, (*path, str(k)))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from sealed_paths(v, (*path, str(i)))


_SCALARS = (str, int, float, bool, type(None))


def leaves(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(path, value)`` of every :class:`palplat.redact.Hidden` value in a validated
    model (:class:`palplat.secret.Secret` in secret fields; a :class:`Decrypted` or
    :class:`Sealed` anywhere else is a stray: a ciphertext outside a secret field).
    Iterative, with scalars skipped first: it runs on every pillar load."""
    stack: list[tuple[tuple[str, ...], Any]] = [(path, obj)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, _SCALARS):
            continue
        if isinstance(node, redact.Hidden):
            yield where, node
        elif isinstance(node, BaseModel):
            for name, field in type(node).model_fields.items():
                value = getattr(node, name)
                if not isinstance(value, _SCALARS):
                    stack.append(((*where, field.alias or name), value))
            for key, value in (node.__pydantic_extra__ or {}).items():
                stack.append(((*where, str(key)), value))
        elif isinstance(node, Mapping):
            stack.extend(((*where, str(k)), v) for k, v in node.items()
                         if not isinstance(v, _SCALARS))  # fmt: skip
        elif isinstance(node, (list, tuple)):
            stack.extend(((*where, str(i)), v) for i, v in enumerate(node)
                         if not isinstance(v, _SCALARS))  # fmt: skip
