"""From pydantic's errors to pillar problems, every one at once.

:func:`validate` validates the raw ``palplat`` mapping; on field errors it sets the entries
in error aside and validates again, so that :func:`palplat.config.load` can still run the
cross checks on the rest and report every problem in one round. Each problem names its
pillar path, what is wrong and the fix; what was found is shown masked, and never for a
secret field or a value that came from decryption.
"""

from __future__ import annotations

import copy
import difflib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from palplat import provenance, redact
from palplat.errors import PillarProblem
from palplat.model import PalplatPillar, Service, Services
from palplat.provenance import Decrypted, Sealed
from palplat.secret import PLACEHOLDER_MARK, SECRET_ERRORS, Secret, placeholder_problem
from palplat.secret import problem_of as secret_problem

ROOT = "palplat"


STRAY = (
    "holds a GPG-encrypted value, but this field is not secret: its value would be written "
    "and shown in clear (objects, URLs, configs, plans). Store the plain value here, or "
    "move the ciphertext to the secret field it belongs to"
)


def secret_problems(cfg: PalplatPillar, plaintext_secrets: bool) -> list[PillarProblem]:
    """Secrets whose value or origin is wrong, and decrypted (or sealed) values outside
    secret fields; never their values."""
    out = []
    for path, value in provenance.leaves(cfg):
        where = ":".join((ROOT, *path))
        if isinstance(value, Secret):
            problem = secret_problem(value, plaintext_secrets)
            if problem:
                out.append(PillarProblem(where, problem))
        else:
            out.append(PillarProblem(where, STRAY))
    return out


def placeholders(raw: Any, path: tuple[str, ...] = ()) -> list[PillarProblem]:
    """Plain strings that are placeholders, wherever they are (a secret field's are found
    again by :func:`_secret_problems`: the same problem, reported once)."""
    out: list[PillarProblem] = []
    stack = [(path, raw)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            if PLACEHOLDER_MARK in node.lower():
                out.append(PillarProblem(":".join((ROOT, *where)), placeholder_problem(node)))
        elif isinstance(node, dict):
            stack.extend(((*where, str(k)), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*where, str(i)), v) for i, v in enumerate(node))
    return sorted(out, key=lambda p: p.path)


def validate(
    raw: dict[str, Any], context: dict[str, Any]
) -> tuple[PalplatPillar | None, list[PillarProblem], list[tuple[str, ...]]]:
    """Validate; on field errors set the entries in error aside and validate again, so
    that the cross checks still run on the rest. ``(model or None, problems, the paths
    set aside)``."""
    data = raw  # copied before the first entry is set aside (the valid case copies nothing)
    problems: list[PillarProblem] = []
    dropped: list[tuple[str, ...]] = []
    for _ in range(25):
        try:
            return PalplatPillar.model_validate(data, context=context), problems, dropped
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        seen = {p.path for p in problems}
        for prob in _problems(errors):
            if prob.path not in seen and not _under(prob.path, dropped):
                problems.append(prob)
        progress = False
        if data is raw:
            data = copy.deepcopy(raw)
        for err in errors:
            gone = _drop(data, tuple(err["loc"]))
            if gone:
                dropped.append(gone)
                progress = True
        if not progress:
            break
    return None, problems, dropped


def _drop(data: dict[str, Any], loc: tuple) -> tuple[str, ...] | None:
    """Remove what ``loc`` points at from ``data``: its deepest part that exists (for a
    missing field, the entry that lacks it; for a list item, the whole list, so that the
    other items keep their indexes in later messages). The path removed, or None."""
    node: Any = data
    trail: list[tuple[Any, Any]] = []
    for item in loc:
        if isinstance(node, dict) and item in node:
            trail.append((node, item))
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            trail.append((node, item))
            node = node[item]
        else:
            break
    while trail and isinstance(trail[-1][0], list):
        trail.pop()
    if not trail:
        return None
    container, item = trail[-1]
    del container[item]
    return tuple(str(i) for _, i in trail)


def _under(path: str, dropped: list[tuple[str, ...]]) -> bool:
    return any(
        path == ":".join((ROOT, *d)) or path.startswith(":".join((ROOT, *d)) + ":") for d in dropped
    )


def set_aside(problem: PillarProblem, dropped: list[tuple[str, ...]]) -> bool:
    """A cross-check problem about an entry set aside (already reported), or one that
    names it (a release that needs a release in error is not 'undefined')."""
    if _under(problem.path, dropped):
        return True
    if any(":".join((ROOT, *d)).startswith(problem.path + ":") for d in dropped):
        return True  # about the entry whose field was set aside
    names = [d[-1] for d in dropped if d]
    if problem.found is not None and problem.found in {json.dumps(n) for n in names}:
        return True
    return any(f"'{n}'" in problem.message for n in names)


# ------------------------------------------------------------------ error rendering


def found(value: Any) -> str:
    text = json.dumps(redact.mask(value), default=str, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _path(loc: tuple, sub: str | None = None) -> str:
    parts = [ROOT]
    for item in loc:
        if item == "[key]":
            continue
        parts.append(str(item))
    if sub:
        parts.append(sub)
    return ":".join(parts)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated/Optional/Union down to the interesting type."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return _unwrap(models[0] if models else args[0])
    return tp


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the last element of ``loc``."""
    tp: Any = PalplatPillar
    for item in loc[:-1]:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _field_by_name(tp, item)
            if field is not None:
                tp = field.annotation
            elif tp is Services:
                tp = Service
            else:
                return None
        elif typing.get_origin(tp) in (dict, Mapping):
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _field_by_name(model: type[BaseModel], name: Any):
    for fname, field in model.model_fields.items():
        if name in (fname, field.alias):
            return field
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _problems(errors: list[dict[str, Any]]) -> list[PillarProblem]:
    out: list[PillarProblem] = []
    for err in errors:
        loc = tuple(err["loc"])
        typ = err["type"]
        if isinstance(err.get("input"), (Decrypted, Sealed)) and typ not in SECRET_ERRORS:
            # a ciphertext moved into a field that is not secret: never its value
            out.append(PillarProblem(_path(_field_loc(loc)), STRAY))
            continue
        # Errors in a Services entry also show up as a failed 'defaults'-less extra; the
        # loc is already precise, so no special casing is needed beyond the path.
        if typ == "extra_forbidden":
            key = str(loc[-1])
            model = _model_at(loc)
            allowed = _keys_of(model) if model else []
            guess = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"; did you mean '{guess[0]}'?" if guess else ""
            known = f" Known keys: {', '.join(sorted(allowed))}." if allowed else ""
            out.append(PillarProblem(_path(loc), f"unknown key{hint}{known}"))
            continue
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if typ == "missing":
            msg = "is required"
        elif typ.endswith("_type") or typ in ("model_type", "model_attributes_type"):
            msg = f"has the wrong type: {msg[0].lower() + msg[1:]}"
        elif typ == "literal_error":
            msg = msg.replace("Input should be", "must be")
        else:
            msg = msg.replace("Input should be", "must be").replace("String should", "must")
        # a secret field's input is never rendered (whatever it held)
        shown = None if typ == "missing" or typ in SECRET_ERRORS else found(err.get("input"))
        out.append(PillarProblem(_path(loc, (err.get("ctx") or {}).get("subpath")), msg, shown))
    return out


def _field_loc(loc: tuple) -> tuple:
    """``loc`` without the union/validator tags pydantic appends (``str``,
    ``function-after[...]``): the pillar path of the field."""
    return tuple(i for i in loc if isinstance(i, int) or "[" not in str(i) and i not in _TAGS)


_TAGS = {"str", "int", "float", "bool", "none", "constrained-str", "literal"}
