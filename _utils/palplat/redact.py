"""The one redaction mechanism: every secret value is shown as ``<hidden>``.

Secret values are registered once (from the validated pillar, by
:func:`palplat.config.load`) in a process-wide registry. Every state return, comment,
log line, event and plan report goes through :func:`mask`; :func:`install_log_filter`
puts the same masking in front of every log handler of the process, and
:func:`palplat.proc.run` refuses an argv that contains a registered secret.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

HIDDEN = "<hidden>"

# Values shorter than this are not masked inside longer strings (only when they are the
# whole string), so that a secret like "1" does not blank out every digit in a log line.
_MIN_SUBSTRING = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_ordered: list[str] = []  # longest first, so overlapping secrets mask fully


class Hidden:
    """Marker base of values that always mask whole (``palplat.secret.Secret``)."""

    __slots__ = ()


# base64 forms shorter than this are not registered (they would match by chance)
_MIN_B64 = 8


def base64_forms(value: str) -> set[str]:
    """The base64 text a secret shows as wherever it is base64-encoded: on its own
    (a Kubernetes Secret's data), or inside a longer encoded string (a basic-auth header,
    a dockerconfig ``auth`` of ``user:password``). Inside, its encoding depends on its
    offset modulo 3, so each of the three alignments gives the run of characters that
    encode only the secret's own bytes."""
    raw = value.encode()
    out: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        out.add(whole)
        out.add(whole.rstrip("="))
        for pad in range(3):
            text = encode(b"\0" * pad + raw + b"\0\0").decode()
            first = -(-pad * 8 // 6)  # the first character made of the secret's bits only
            last = ((pad + len(raw)) * 8) // 6  # the first one with a bit after it
            core = text[first:last]
            if len(core) >= _MIN_B64:
                out.add(core)
    return {f for f in out if len(f) >= _MIN_B64}


def register(values: Iterable[Any]) -> None:
    """Register secret values (strings, or scalars rendered as strings), with their
    base64 forms (:func:`base64_forms`)."""
    global _ordered
    with _lock:
        before = len(_secrets)
        for v in values:
            if v is None or isinstance(v, bool):
                continue
            s = v if isinstance(v, str) else str(v)
            if not s.strip() or s in _secrets:
                continue
            _secrets.add(s)
            # multi-line secrets are also masked line by line (log lines, diffs)
            for line in s.splitlines():
                if len(line.strip()) >= _MIN_SUBSTRING:
                    _secrets.add(line)
            if len(s) >= _MIN_SUBSTRING:
                _secrets.update(base64_forms(s))
        if len(_secrets) != before:
            _ordered = sorted(_secrets, key=len, reverse=True)


def registered() -> frozenset[str]:
    return frozenset(_secrets)


def snapshot() -> frozenset[str]:
    """What is registered now (tests: :func:`restore` it after registering values that
    are not secrets, such as a sample pillar's)."""
    return frozenset(_secrets)


def restore(saved: frozenset[str]) -> None:
    global _ordered
    with _lock:
        _secrets.clear()
        _secrets.update(saved)
        _ordered = sorted(_secrets, key=len, reverse=True)


def clear() -> None:
    """Forget every registered secret (tests)."""
    global _ordered
    with _lock:
        _secrets.clear()
        _ordered = []


def contains_secret(text: str) -> bool:
    if not isinstance(text, str):
        return False
    for s in _ordered:
        if text == s or (len(s) >= _MIN_SUBSTRING and s in text):
            return True
    return False


def mask_text(text: str) -> str:
    if not isinstance(text, str) or not _ordered:
        return text
    if text in _secrets:
        return HIDDEN
    for s in _ordered:
        if len(s) >= _MIN_SUBSTRING and s in text:
            text = text.replace(s, HIDDEN)
    return text


def tail(text: str, limit: int) -> str:
    """The end of ``text`` (program output for an error), masked before it is cut."""
    return mask_text(str(text or "")).strip()[-limit:]


def mask(obj: Any) -> Any:
    """Return a copy of ``obj`` (nested dicts/lists/strings) with every secret masked."""
    if isinstance(obj, Hidden):
        return HIDDEN
    if isinstance(obj, str):
        return mask_text(obj)
    if isinstance(obj, Mapping):
        return {mask(k): mask(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        seq = [mask(v) for v in obj]
        return type(obj)(seq) if not isinstance(obj, set) else seq
    if isinstance(obj, (int, float)) and not isinstance(obj, bool) and _ordered:
        return HIDDEN if str(obj) in _secrets else obj
    return obj


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in every record it sees, its
    traceback (``exc_info``) and stack (``stack_info``) included: those are formatted
    here, masked, and kept as the record's text, so no handler formats them raw."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _ordered:
            return True
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record must still not leak
            msg = str(record.msg)
        extra = []
        if record.exc_info:
            extra.append(record.exc_text or _formatter.formatException(record.exc_info))
            record.exc_info = None
            record.exc_text = None
        if record.stack_info:
            extra.append(record.stack_info)
            record.stack_info = None
        if extra:
            msg = "\n".join([msg, *extra])
        masked = mask_text(msg)
        if masked != msg or extra:
            record.msg = masked
            record.args = None
        return True


_formatter = logging.Formatter()


_FILTER = RedactingFilter()


def install_log_filter() -> None:
    """Put the redacting filter on every handler of the root logger (idempotent).

    Handler filters run for records from every logger, including Salt's own, so a secret
    that reaches any log call in this process is masked before it is written.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)
