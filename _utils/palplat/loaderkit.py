"""Glue shared by the thin loader modules: state returns, error translation, events.

Everything here takes explicit arguments (no loader globals) so loader modules stay a few
lines each and every return goes through the one redaction mechanism.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from palplat import redact
from palplat.errors import InputError, PalplatError, PillarError

log = logging.getLogger("palplat")

EVENT_PREFIX = "palplat"

Fire = Callable[[Mapping[str, Any], str], Any]


def salt_exception(exc: Exception) -> Exception:
    """Translate a library error into the Salt exception a loader module should raise."""
    from salt.exceptions import CommandExecutionError, SaltInvocationError

    msg = redact.mask_text(str(exc))
    if isinstance(exc, (PillarError, InputError)):
        return SaltInvocationError(msg)
    if isinstance(exc, PalplatError):
        return CommandExecutionError(msg)
    return exc


def state_ret(
    name: str,
    changes: Mapping[str, Any] | None = None,
    result: bool | None = True,
    comment: str | list[str] = "",
) -> dict[str, Any]:
    """A masked state return dict."""
    if isinstance(comment, list):
        comment = "\n".join(c for c in comment if c)
    return {
        "name": name,
        "changes": redact.mask(dict(changes or {})),
        "result": result,
        "comment": redact.mask_text(comment),
    }


def failed(name: str, exc: Exception, changes: Mapping[str, Any] | None = None) -> dict:
    if isinstance(exc, PillarError):
        return state_ret(name, changes, False, str(exc))
    return state_ret(name, changes, False, f"{type(exc).__name__}: {exc}")


def salt_fire(salt_funcs: Mapping[str, Callable], opts: Mapping[str, Any]) -> Fire | None:
    """The ``fire(data, tag)`` for a minion: to the master's event bus when there is a
    master (so ``salt-run state.event`` shows progress), else the local bus."""
    local = (
        opts.get("file_client") == "local"
        or opts.get("master_type") == "disabled"
        or opts.get("local")
    )
    send = salt_funcs.get("event.send")
    if not local and send is not None:
        return lambda data, tag: send(tag, data=dict(data))
    return salt_funcs.get("event.fire")


class Progress:
    """Logs progress of a long wait and fires it as a Salt event (both masked).

    Tag: ``palplat/<topic>/<phase>``. ``every`` throttles repeated 'waiting' messages.
    """

    def __init__(self, fire: Fire | None, topic: str, every: float = 5.0):
        self.fire = fire
        self.topic = topic
        self.every = every
        self._last = 0.0

    def __call__(self, phase: str, message: str, force: bool = False, **data: Any) -> None:
        now = time.monotonic()
        if phase == "waiting" and not force and now - self._last < self.every:
            return
        self._last = now
        message = redact.mask_text(message)
        log.info("palplat %s: %s", self.topic, message)
        if self.fire is not None:
            payload = redact.mask({"message": message, **data})
            try:
                self.fire(payload, f"{EVENT_PREFIX}/{self.topic}/{phase}")
            except Exception:  # noqa: BLE001 - an event bus hiccup must not fail a state
                log.debug("could not fire palplat event", exc_info=True)
