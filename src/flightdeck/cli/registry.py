"""Finding the command module for the words on the command line.

`rocks list host interface eth0` is looked up as the longest run of words that names a command
in the generated index (`flightdeck/commands/_index.py`): `list host interface`, then
`list host`, then `list`. Only the module that runs is imported. `iter_commands` walks the
package itself and is what the index is generated from. `pilot` looks up its words the same
way, in the owner commands only (`cli.program`).
"""

from __future__ import annotations

import importlib
import os

from flightdeck.cli.program import ROCKS, Program
from flightdeck.errors import UsageError

#: Not `typing.TYPE_CHECKING`: importing `typing` would cost `rocks help` ~6 ms of its ~20.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from flightdeck.cli.command import Command

#: A program with at most this many commands lists them all when a command is unknown.
LIST_ALL_BELOW = 20

ROOT = "flightdeck.commands"
#: The command package's directory (os.path, not pathlib: `rocks help` must stay cheap).
ROOT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "commands")


def index(program: Program = ROCKS) -> dict[str, tuple[str, str]]:
    """words -> (module, summary) of the commands `program` offers (from the generated index)."""
    from flightdeck.commands._index import COMMANDS, OWNER

    if program.owner_only:
        return {words: COMMANDS[words] for words in OWNER}
    return COMMANDS


def load(module_name: str, words: str, program: Program = ROCKS) -> type[Command]:
    from flightdeck.cli.command import Command

    module = importlib.import_module(module_name)
    cls = getattr(module, "Command", None)
    if not (isinstance(cls, type) and issubclass(cls, Command)):
        raise UsageError(
            f"'{program.name} {words}' is not available (module {module_name} has no Command)"
        )
    cls.words = words
    return cls


#: Rocks commands that have no place in Flightdeck, and the one line that says what to do instead.
_INSTALL = (
    "Flightdeck has no rolls or distributions: it is a Python package, installed on the frontend "
    "with pip install 'flightdeck[server]' (or bash scripts/demo.sh), and a VM container needs "
    "only libvirtd (rocks add host ... membership=\"VM Container\")"
)
NOT_IN_FLIGHTDECK: dict[str, str] = {
    **{
        f"{verb} roll": _INSTALL
        for verb in ("add", "enable", "disable", "remove", "list", "create", "run", "update")
    },
    **{f"{verb} distro": _INSTALL for verb in ("create", "list", "report")},
    "create mirror": _INSTALL,
    "list host profile": "Flightdeck installs no kickstart profiles: a node installs the boot "
    "action's kernel and initrd (rocks list bootaction, rocks create installer image)",
    "list host xml": "Flightdeck installs no kickstart profiles: a node installs the boot "
    "action's kernel and initrd (rocks list bootaction, rocks create installer image)",
    "sync config": "Flightdeck writes its configuration with rocks sync dhcp (DHCP/PXE) and "
    "rocks sync host network (VM containers); nothing else needs a sync",
}


def not_in_flightdeck(words: Sequence[str]) -> str | None:
    """The line for a Rocks command Flightdeck does not have (longest match of its words)."""
    for n in range(min(len(words), 3), 1, -1):
        key = " ".join(words[:n])
        if key in NOT_IN_FLIGHTDECK:
            return f"'rocks {key}' is a Rocks command: {NOT_IN_FLIGHTDECK[key]}"
    return None


def resolve(
    argv: Sequence[str], program: Program = ROCKS
) -> tuple[type[Command], list[str]]:
    """The command class for argv and the tokens that follow its words."""
    commands = index(program)
    words: list[str] = []
    for tok in argv[:6]:
        if "=" in tok:
            break
        words.append(tok.lower())
    instead = not_in_flightdeck(words)  # before `list host` takes `list host xml` as a listing
    if instead is not None:
        raise UsageError(instead)
    for n in range(len(words), 0, -1):
        key = " ".join(words[:n])
        if key in commands:
            return load(commands[key][0], key, program), list(argv[n:])
    typed = " ".join(words) or " ".join(argv[:3])
    import difflib

    close = difflib.get_close_matches(" ".join(words[:4]), list(commands), n=3, cutoff=0.6)
    if not close:
        # A mistyped verb with the right object ("lsit host"): compare word by word.
        close = difflib.get_close_matches(" ".join(words[:3]), list(commands), n=3, cutoff=0.5)
    prog = program.name
    hint = f"; did you mean {' or '.join(repr(prog + ' ' + c) for c in close)}?" if close else ""
    listed = ""
    if len(commands) < LIST_ALL_BELOW:
        listed = "; the commands are " + ", ".join(f"'{prog} {c}'" for c in sorted(commands))
    raise UsageError(f"unknown command '{prog} {typed}'{hint}{listed} (see '{prog} help')")


def iter_commands() -> Iterator[tuple[str, type[Command]]]:
    """Every command module, as (words, class), sorted by words (imports them all)."""
    from flightdeck.cli.command import Command

    found: list[tuple[str, type[Command]]] = []

    import pkgutil

    def walk(path: str, words: list[str]) -> None:
        for info in pkgutil.iter_modules([path]):
            if info.name.startswith("_"):
                continue
            sub = [*words, info.name.replace("_", "-")]
            module = importlib.import_module(".".join([ROOT, *(w.replace("-", "_") for w in sub)]))
            cls = getattr(module, "Command", None)
            if isinstance(cls, type) and issubclass(cls, Command):
                cls.words = " ".join(sub)
                found.append((cls.words, cls))
            if info.ispkg:
                walk(os.path.join(path, info.name), sub)

    walk(ROOT_DIR, [])
    found.sort(key=lambda item: item[0])
    return iter(found)
