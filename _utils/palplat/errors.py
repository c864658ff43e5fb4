"""Exceptions raised by the palplat library.

Loader modules translate them: ``PillarError`` and ``InputError`` become
``SaltInvocationError``; every other ``PalplatError`` becomes ``CommandExecutionError``.
Messages never contain secret values: they are built from masked data.
"""

from __future__ import annotations

from dataclasses import dataclass


class PalplatError(Exception):
    """Base class of every error the library raises on purpose."""


class InputError(PalplatError):
    """A caller passed an argument that cannot work (not a pillar problem)."""


@dataclass(frozen=True)
class PillarProblem:
    """One problem in the pillar: where, what was found, what is expected."""

    path: str  # e.g. "palplat:services:pal-e-docs:port"
    message: str  # what is wrong and what to do about it
    found: str | None = None  # masked rendering of the value found, if any

    def __str__(self) -> str:
        found = f" (found: {self.found})" if self.found is not None else ""
        return f"{self.path}: {self.message}{found}"


class PillarError(PalplatError):
    """The pillar is invalid. Carries every problem found, not only the first."""

    def __init__(self, problems: list[PillarProblem]):
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.problems)
        head = f"the palplat pillar has {n} problem{'s' if n != 1 else ''}; nothing was changed:"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


class CommandError(PalplatError):
    """An external program (helm, nft, k3s, ...) failed. Output is already masked."""

    def __init__(self, argv: list[str], returncode: int, stderr: str, stdout: str = ""):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        super().__init__(f"{argv[0]} exited {returncode}: {(stderr or stdout).strip()[-2000:]}")


class TimeoutError_(PalplatError):  # noqa: N801 - avoid shadowing the builtin
    """A wait ran out of time. ``partial`` says what was and was not ready."""

    def __init__(self, message: str, partial: dict | None = None):
        self.partial = partial or {}
        super().__init__(message)


WaitTimeout = TimeoutError_
