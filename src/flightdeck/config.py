"""Where Flightdeck keeps its state, from the environment.

`FLIGHTDECK_HOME` moves the whole state directory (default `/var/lib/flightdeck`);
`FLIGHTDECK_DB` replaces the database URL (any SQLAlchemy URL: `sqlite:////path` or
`postgresql+psycopg://user:pw@host/db`).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "/var/lib/flightdeck"


def state_dir() -> Path:
    """The state directory; created on demand by whoever writes into it."""
    return Path(os.environ.get("FLIGHTDECK_HOME") or DEFAULT_HOME)


def database_url() -> str:
    """The database URL: FLIGHTDECK_DB, else an SQLite file in the state directory."""
    url = os.environ.get("FLIGHTDECK_DB")
    if url:
        return url
    return f"sqlite:///{state_dir() / 'flightdeck.db'}"


def debug() -> bool:
    """True when FLIGHTDECK_DEBUG asks for tracebacks."""
    return os.environ.get("FLIGHTDECK_DEBUG", "") not in ("", "0", "no", "false")
