"""Progress for long operations: a bar on a terminal, nothing in scripts."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Callable as `progress(phase, done, total)`; draws on `stream` only if it is a terminal."""

    def __init__(self, stream: TextIO | None = None, *, min_total: int = 50) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.min_total = min_total
        self.start = time.monotonic()
        self.drawn = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled or total < self.min_total:
            return
        width = 30
        filled = int(width * done / total) if total else width
        elapsed = time.monotonic() - self.start
        self.stream.write(
            f"\r{phase:<12} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {elapsed:5.1f}s"
        )
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
