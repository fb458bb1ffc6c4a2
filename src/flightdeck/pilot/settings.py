"""Where the owner's commands find the Airboss when `airboss=` and `ca=` are not given.

In this order: the environment (`FLIGHTDECK_AIRBOSS`, `FLIGHTDECK_AIRBOSS_CA`), then the file
`/etc/flightdeck/client.env` (`FLIGHTDECK_CLIENT_ENV` moves it), which a virtual frontend's image
install writes from its identity: the physical frontend's Airboss through the guide's tunnel
(`localhost:8677`) or over TLS (`https://<physical frontend>:8677` with the site CA). Only these
two keys are read from the file, as `KEY=value` lines with shell quoting; it is never executed.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

CLIENT_ENV = Path("/etc/flightdeck/client.env")
KEYS = ("FLIGHTDECK_AIRBOSS", "FLIGHTDECK_AIRBOSS_CA")
#: The file is a few lines; anything longer is not read whole.
MAX_BYTES = 16 * 1024


@dataclass(frozen=True)
class Defaults:
    airboss: str | None = None
    ca: str | None = None


def _file_values(path: Path) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(MAX_BYTES)
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        if key not in KEYS:
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        if len(words) == 1:
            found[key] = words[0]
    return found


def defaults() -> Defaults:
    """The Airboss address and CA to use when the command line gives none (None: none set)."""
    path = Path(os.environ.get("FLIGHTDECK_CLIENT_ENV", str(CLIENT_ENV)))
    values = _file_values(path)
    values.update({k: os.environ[k] for k in KEYS if os.environ.get(k)})
    return Defaults(values.get("FLIGHTDECK_AIRBOSS"), values.get("FLIGHTDECK_AIRBOSS_CA"))
