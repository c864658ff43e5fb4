"""The one redaction mechanism: every secret value is shown as ``<hidden>``.

Secret values are registered once (from the validated pillar, by
:func:`palplat.config.load`) in a process-wide registry. Every state return, comment,
log line, event and plan report goes through :func:`mask`; :func:`install_log_filter`
puts the same masking in front of every log handler of the process, and
:func:`palplat.proc.run` refuses an argv that contains a registered secret.
"""

from __future__ import annotations

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


def register(values: Iterable[Any]) -> None:
    """Register secret values (strings, or scalars rendered as strings)."""
    global _ordered
    with _lock:
        for v in values:
            if v is None or isinstance(v, bool):
                continue
            s = v if isinstance(v, str) else str(v)
            if s.strip():
                _secrets.add(s)
                # multi-line secrets are also masked line by line (log lines, diffs)
                for line in s.splitlines():
                    if len(line.strip()) >= _MIN_SUBSTRING:
                        _secrets.add(line)
        _ordered = sorted(_secrets, key=len, reverse=True)


def registered() -> frozenset[str]:
    return frozenset(_secrets)


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
    """A logging filter that masks registered secrets in every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _ordered:
            return True
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record must still not leak
            msg = str(record.msg)
        masked = mask_text(msg)
        if masked != msg:
            record.msg = masked
            record.args = None
        return True


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
