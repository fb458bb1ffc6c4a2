"""The two programs on the one command grammar: `rocks` (every command) and `pilot` (the owner's).

Both parse, dispatch, help and report errors the same way (`cli.main`, `cli.registry`,
`cli.params`, `cli.help`); they differ in which commands they offer and in what the machine
they run on knows:

* `rocks` runs on a frontend: every command, and the owner commands (`key=`) may read this
  machine's database for defaults (a host name's first MAC, the Airboss's address);
* `pilot` runs anywhere (a laptop, a batch scheduler's hook): only the owner commands
  (`owner = True` on the command class), no database at all, and host arguments are shown
  in its help as `host=`, as the guide's pilot.py wrote them.
"""

from __future__ import annotations

#: Words that ask for help, first or last on a command line (`rocks help`, `rocks list host
#: help`); `bin/rocks` runs help itself rather than through rocksd (cli.resident_client).
HELP_WORDS = ("help", "--help", "-h")


class Program:
    """One of the two programs. A plain class, not a dataclass: `rocks help` imports this
    module, and `dataclasses` (with `inspect`) would cost it ~14 ms of its ~20."""

    __slots__ = ("name", "owner_only")

    def __init__(self, name: str, owner_only: bool = False) -> None:
        self.name = name
        #: Only the owner commands, without any local database (pilot).
        self.owner_only = owner_only

    def __repr__(self) -> str:
        return f"Program({self.name!r}, owner_only={self.owner_only})"

    @property
    def named_args(self) -> bool:
        """Show a command's arguments as `name=value` in usage and errors."""
        return self.owner_only


ROCKS = Program("rocks")
PILOT = Program("pilot", owner_only=True)
