"""The generated command index must match the command modules' declarations."""

from __future__ import annotations

import pytest

from flightdeck.cli import index


def test_index_is_up_to_date(regenerate_golden: bool) -> None:
    """Fails when a command was added, removed or re-summarised without regenerating the index.

    Regenerate on purpose with `pytest --regenerate-golden` or
    `python -m flightdeck.cli.index --write`.
    """
    fresh = index.render()
    if regenerate_golden:
        index.INDEX_PATH.write_text(fresh, encoding="utf-8")
    current = index.INDEX_PATH.read_text(encoding="utf-8")
    if current != fresh:
        pytest.fail("flightdeck/commands/_index.py is stale: run "
                    "'python -m flightdeck.cli.index --write' and commit it")


def test_every_indexed_command_loads() -> None:
    from flightdeck.cli.registry import index as commands
    from flightdeck.cli.registry import load

    for words, (module, summary) in commands().items():
        cls = load(module, words)
        assert cls.summary == summary
        assert cls.examples, f"rocks {words} declares no example"
