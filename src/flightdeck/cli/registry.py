"""Finding the command module for the words on the command line.

`rocks list host interface eth0` is looked up as the longest module path that exists:
`flightdeck.commands.list.host.interface`, then `...list.host`, then `...list`. Hyphens in
words become underscores. Only the module that is run gets imported; `rocks help` imports
them all (each is small and imports nothing heavy at module level).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from flightdeck.cli.command import Command
from flightdeck.errors import UsageError

ROOT = "flightdeck.commands"
ROOT_DIR = Path(__file__).resolve().parent.parent / "commands"


def _module_name(words: Sequence[str]) -> str:
    return ".".join([ROOT, *(w.replace("-", "_").lower() for w in words)])


def _valid_word(word: str) -> bool:
    return word.replace("-", "_").isidentifier() and not word.startswith("_")


def _load(words: Sequence[str]) -> type[Command] | None:
    name = _module_name(words)
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except ModuleNotFoundError:
        return None
    module = importlib.import_module(name)
    cls = getattr(module, "Command", None)
    if isinstance(cls, type) and issubclass(cls, Command):
        cls.words = " ".join(w.lower() for w in words)
        return cls
    return None


def resolve(argv: Sequence[str]) -> tuple[type[Command], list[str]]:
    """The command class for argv and the tokens that follow its words."""
    words: list[str] = []
    for tok in argv:
        if not _valid_word(tok) or "=" in tok:
            break
        words.append(tok)
    for n in range(len(words), 0, -1):
        cls = _load(words[:n])
        if cls is not None:
            return cls, list(argv[n:])
    typed = " ".join(words) or " ".join(argv[:3])
    all_words = [w for w, _ in iter_commands()]
    close = difflib.get_close_matches(" ".join(words[:4]), all_words, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr('rocks ' + c) for c in close)}?" if close else ""
    raise UsageError(f"unknown command 'rocks {typed}'{hint} (see 'rocks help')")


def iter_commands() -> Iterator[tuple[str, type[Command]]]:
    """Every command, as (words, class), in alphabetical order of the words."""
    found: list[tuple[str, type[Command]]] = []

    def walk(path: Path, words: list[str]) -> None:
        for info in pkgutil.iter_modules([str(path)]):
            if info.name.startswith("_"):
                continue
            sub = [*words, info.name.replace("_", "-")]
            cls = _load(sub)
            if cls is not None:
                found.append((cls.words, cls))
            if info.ispkg:
                walk(path / info.name, sub)

    walk(ROOT_DIR, [])
    found.sort(key=lambda item: item[0])
    return iter(found)
