"""The log escaping helper: nothing a client sends can end a log line or grow it without bound."""

from __future__ import annotations

from flightdeck.logsafe import escape


def test_line_breaks_and_controls_are_escaped() -> None:
    hostile = "a\nb\rc\x00d\x1b[2Je\x7ff\x85g\u2028h\u2029i\x0bj\x0ck\x1cl"
    out = escape(hostile)
    assert out.splitlines() == [out]
    assert out == ("a\\x0ab\\x0dc\\x00d\\x1b[2Je\\x7ff\\x85g\\u2028h\\u2029i\\x0bj\\x0ck\\x1cl")


def test_backslash_is_doubled_so_every_escape_is_ours() -> None:
    assert escape("a\\x0ab") == "a\\\\x0ab"
    assert escape("a\nb") != escape("a\\x0ab")


def test_plain_text_and_unicode_are_kept() -> None:
    assert escape("GET /ipxe/52:54:00:00:05:05 ok") == "GET /ipxe/52:54:00:00:05:05 ok"
    assert escape("café ☕") == "café ☕"
    assert escape(42) == "42"


def test_long_values_are_cut() -> None:
    assert escape("x" * 1000, limit=10) == "xxxxxxx..."
    assert len(escape("\n" * 10_000)) == 512
    assert escape("abc", limit=3) == "abc"
