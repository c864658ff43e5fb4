"""The errors of :mod:`palplat.kube`: every one is a :class:`KubeError` with a masked message."""

from __future__ import annotations

from palplat import redact
from palplat.errors import PalplatError


class KubeError(PalplatError):
    """The API server refused a request or could not be reached. Message is masked."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = ""):
        self.status = status
        self.reason = reason
        super().__init__(redact.mask_text(message))


class NotFound(KubeError):
    """404 from the API server."""


class UnknownKind(KubeError):
    """The API server does not serve this apiVersion/kind (CRD missing?)."""


class Unreachable(KubeError):
    """No answer from the API server (connection refused, TLS, timeout)."""


class ConvergeError(KubeError):
    """An object failed while converging; ``changes`` holds what was already done."""

    def __init__(self, message: str, changes: dict, cause: KubeError | None = None):
        self.changes = changes
        super().__init__(message, status=getattr(cause, "status", None))


class WaitFailed(KubeError):
    """The object reached a state it cannot recover from (a failed Job)."""
