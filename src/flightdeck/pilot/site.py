"""The `rocks ... key=` commands' side of the client: defaults from the local database.

On a frontend (the physical one, or a virtual one running its own Flightdeck), the owner-side
`rocks` commands behave as the original (reference §2.5):

* a target without `:` is a host name, sent as its first MAC when this database knows the host
  (the MAC is what both sides share); otherwise it is sent as given, and the Airboss takes it
  as a physical-side name;
* the Airboss is `airboss=` if given, else the `airboss` attribute of this database
  (`localhost` after `rocks init frontend`), on port 8677.

Anyone may run these commands, so a database that cannot be opened (none here, or not
readable by this user) is not an error: the defaults apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flightdeck.errors import FlightdeckError
from flightdeck.pilot.client import DEFAULT_PORT, AirbossClient
from flightdeck.pilot.keyfile import find_key, load_key

DbOpener = Callable[[], Any]


def _database(open_db: DbOpener) -> Any | None:
    try:
        return open_db()
    except FlightdeckError:
        return None
    except Exception:  # e.g. a SQLite file this user may not read
        return None


def airboss_address(given: str | None, open_db: DbOpener) -> str:
    if given:
        return given
    db = _database(open_db)
    if db is not None:
        try:
            from flightdeck.db.attrs import global_value
            from flightdeck.services.base import reading

            with reading(db) as s:
                host = global_value(s, "airboss")
        except Exception:
            host = None
        if host:
            return host if ":" in host else f"{host}:{DEFAULT_PORT}"
    return f"localhost:{DEFAULT_PORT}"


def client(
    key: str | None, airboss: str | None, open_db: DbOpener, ca: str | None = None
) -> AirbossClient:
    """The client for a `rocks ... key=` command: its key opened, its Airboss found."""
    private = load_key(find_key(key))
    return AirbossClient(private, airboss_address(airboss, open_db), cafile=ca)


def targets(names: Sequence[str], open_db: DbOpener) -> tuple[list[str], dict[str, str]]:
    """What to send for each target, and the host name each MAC stands for."""
    db = None if all(":" in n for n in names) else _database(open_db)
    sent: list[str] = []
    shown: dict[str, str] = {}
    for name in names:
        mac = None
        if ":" not in name and db is not None:
            try:
                from flightdeck.services.airboss import first_mac

                mac = first_mac(db, name)
            except Exception:
                mac = None
        if mac:
            sent.append(mac)
            shown[mac] = name
        else:
            sent.append(name)
    return sent, shown
