"""What the owner commands share: their Airboss parameters, their client, their targets.

The owner commands (`owner = True`: power, MACs, CD-ROM, consoles, keys) are the same modules
under `rocks` and `pilot`, clients of the Airboss through `pilot.client`. Under `rocks` on a
frontend, this machine's database supplies defaults as the original did (reference §2.5):

* a target without `:` is a host name, sent as its first MAC when this database knows the
  host (the MAC is what the physical side and a virtual frontend share); otherwise it is sent
  as given, and the Airboss takes it as a physical-side name;
* the Airboss is `airboss=` if given, else `FLIGHTDECK_AIRBOSS` or `/etc/flightdeck/client.env`
  (`pilot.settings`: what a virtual frontend's image install writes), else the `airboss`
  attribute (`localhost` after `rocks init frontend`), on port 8677; the CA likewise (`ca=`,
  then `FLIGHTDECK_AIRBOSS_CA` or the file).

Anyone may run these commands, so a database that cannot be read (none here, or not this
user's) means no defaults, not an error. `pilot` has no database: it sends what it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flightdeck.cli.params import Param
from flightdeck.errors import UserError

if TYPE_CHECKING:
    from flightdeck.cli.command import Command
    from flightdeck.cli.params import Parsed
    from flightdeck.pilot.client import AirbossClient

AIRBOSS_PARAMS = (
    Param("key", "your private key", default_text="~/.ssh/id_ed25519, then ~/.ssh/id_rsa"),
    Param(
        "token",
        "a capability token file instead of the key (pilot create token, pilot attenuate)",
    ),
    Param(
        "airboss",
        "where the Airboss listens: host:port or https://host:port",
        default_text="FLIGHTDECK_AIRBOSS or /etc/flightdeck/client.env, else rocks: attribute "
        "airboss; else localhost:8677",
    ),
    Param(
        "ca",
        "the site CA certificate, for an https:// Airboss",
        default_text="FLIGHTDECK_AIRBOSS_CA or /etc/flightdeck/client.env",
    ),
)


def _local(cmd: Command) -> Any | None:
    return cmd.ctx.local_db()


def airboss_address(cmd: Command, given: str | None) -> str:
    """`airboss=`, else this frontend's `airboss` attribute, else localhost (port 8677)."""
    from flightdeck.pilot.client import DEFAULT_ADDRESS, DEFAULT_PORT
    from flightdeck.pilot.settings import defaults

    if given:
        return given
    configured = defaults().airboss
    if configured:
        return configured
    db = _local(cmd)
    if db is not None:
        try:
            from flightdeck.services.airboss.local import airboss_attribute

            host = airboss_attribute(db)
        except Exception:  # a database this user may not read: no default from it
            host = None
        if host:
            return host if ":" in host else f"{host}:{DEFAULT_PORT}"
    return DEFAULT_ADDRESS


def client(cmd: Command, p: Parsed) -> AirbossClient:
    """The command's client: its key opened, its Airboss found."""
    from flightdeck.pilot.client import AirbossClient
    from flightdeck.pilot.keyfile import find_key, load_key
    from flightdeck.pilot.settings import defaults

    ca = p["ca"] or defaults().ca
    address = airboss_address(cmd, p["airboss"])
    if p["token"] is not None:
        from flightdeck.pilot.tokenfile import read_token

        if p["key"] is not None:
            raise UserError("give key= or token=, not both")
        return AirbossClient(None, address, cafile=ca, token=read_token(p["token"]))
    private = load_key(find_key(p["key"]))
    return AirbossClient(private, address, cafile=ca)


def targets(cmd: Command, names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """What to send for each target, and the host name each MAC stands for."""
    db = None if all(":" in n for n in names) else _local(cmd)
    sent: list[str] = []
    shown: dict[str, str] = {}
    for name in names:
        mac = None
        if ":" not in name and db is not None:
            try:
                from flightdeck.services.airboss.local import first_mac

                mac = first_mac(db, name)
            except Exception:  # as above: no default
                mac = None
        if mac:
            sent.append(mac)
            shown[mac] = name
        else:
            sent.append(name)
    return sent, shown


def target(cmd: Command, name: str) -> str:
    """What to send for one target."""
    (sent,), _shown = targets(cmd, [name])
    return sent


def is_this_frontend(cmd: Command, sent: str) -> bool:
    """Whether the target sent is this machine, a frontend (see `local.is_this_frontend`)."""
    db = _local(cmd)
    if db is None:
        return False
    try:
        from flightdeck.services.airboss.local import is_this_frontend as here

        return here(db, sent)
    except Exception:  # as above: no local knowledge
        return False


def mark_install(cmd: Command, sent: Sequence[str]) -> dict[int, str | None]:
    """Boot action `install` in this frontend's database for the targets it knows (by MAC).

    Only where this user may write the database (root on a frontend); anyone else's
    `power install` leaves it alone, as before. See `services.airboss.local.mark_install`.
    """
    db = _local(cmd)
    if db is None:
        return {}
    try:
        from flightdeck.services.airboss.local import mark_install as mark

        return mark(db, list(sent))
    except Exception:  # a database this user may read but not write: nothing to do here
        return {}


def restore_boot(cmd: Command, before: dict[int, str | None], refused: Sequence[str]) -> None:
    """Undo `mark_install` for the targets the Airboss refused."""
    db = _local(cmd)
    if db is None or not before or not refused:
        return
    from flightdeck.services.airboss.local import restore

    restore(db, before, list(refused))


def local_names(cmd: Command, macs: Sequence[str]) -> dict[str, str]:
    """MAC -> the host's name in this frontend's database (none without one)."""
    db = _local(cmd)
    if db is None:
        return {}
    try:
        from flightdeck.services.airboss.local import names_by_mac

        return names_by_mac(db, list(macs))
    except Exception:  # as above: no local knowledge
        return {}
