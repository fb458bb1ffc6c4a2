"""Undoing side effects outside the database when a later step fails.

The database rolls itself back; libvirt domains, volumes and network devices do not. Each step
that changes a host registers how to undo it; if the operation fails, the undo steps run in
reverse order (Incus's revert idiom). Errors while undoing are collected, never raised over the
original error.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType


class Reverter:
    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []
        self.failures: list[str] = []

    def add(self, what: str, undo: Callable[[], object]) -> None:
        self._steps.append((what, undo))

    def revert(self) -> None:
        while self._steps:
            what, undo = self._steps.pop()
            try:
                undo()
            except Exception as exc:  # keep undoing the rest
                self.failures.append(f"could not undo {what}: {exc}")

    def success(self) -> None:
        """The operation is complete: keep everything."""
        self._steps.clear()

    def __enter__(self) -> Reverter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.revert()
