"""Structured Field parsing: strict, bounded, and never raising anything but SFVError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdeck.crypto import sfv
from flightdeck.crypto.sfv import InnerList, Item, SFVError, Token

# RFC 9421 Appendix B.2.6, with the RFC 8792 line wrapping undone.
B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)


# --- parsing what we use ---------------------------------------------------------------------


def test_parses_the_rfc9421_signature_input_and_serialises_it_back_identically() -> None:
    parsed = sfv.parse_dictionary(B26_INPUT)
    inner = parsed["sig-b26"]
    assert isinstance(inner, InnerList)
    assert [item.value for item in inner.items] == [
        "date",
        "@method",
        "@path",
        "@authority",
        "content-type",
        "content-length",
    ]
    assert inner.params == {"created": 1618884473, "keyid": "test-key-ed25519"}
    assert sfv.serialize_dictionary(parsed) == B26_INPUT


def test_parses_a_signature_byte_sequence() -> None:
    parsed = sfv.parse_dictionary("sig1=:AAEC/w==:")
    assert parsed == {"sig1": Item(b"\x00\x01\x02\xff")}


def test_parses_every_bare_item_type() -> None:
    parsed = sfv.parse_dictionary(
        'a=1, b=-42, c=1.5, d="x\\"y\\\\z", e=tok/en:1, f=:aGk=:, g=?0, h, i=(1 "2");p=*q',
        max_members=9,
    )
    assert parsed["a"] == Item(1)
    assert parsed["b"] == Item(-42)
    assert parsed["c"] == Item(1.5)
    assert parsed["d"] == Item('x"y\\z')
    assert parsed["e"] == Item(Token("tok/en:1"))
    assert parsed["f"] == Item(b"hi")
    assert parsed["g"] == Item(False)
    assert parsed["h"] == Item(True)
    assert parsed["i"] == InnerList([Item(1), Item("2")], {"p": Token("*q")})


def test_whitespace_rules() -> None:
    # Leading/trailing SP at top level and OWS (SP or HTAB) around commas are allowed.
    assert sfv.parse_dictionary("  a=1 ,\tb=2  ") == {"a": Item(1), "b": Item(2)}
    # Inside an inner list only SP separates items.
    assert sfv.parse_dictionary("a=( 1  2 )") == {"a": InnerList([Item(1), Item(2)])}
    with pytest.raises(SFVError):
        sfv.parse_dictionary("a=(1\t2)")


def test_empty_value_is_an_empty_dictionary() -> None:
    assert sfv.parse_dictionary("") == {}
    assert sfv.parse_dictionary("   ") == {}


def test_missing_padding_is_accepted_in_byte_sequences() -> None:
    assert sfv.parse_dictionary("a=:aGk:") == {"a": Item(b"hi")}


# --- strictness ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a=1,",  # trailing comma
        "a=1,,b=2",
        "a=1 b=2",  # missing comma
        "A=1",  # keys are lowercase
        "1a=1",
        "a=1, a=2",  # repeated key (RFC: last wins; we refuse)
        "a=1;p=1;p=2",  # repeated parameter
        'a="unterminated',
        'a="bad \\n escape"',
        'a="tab\there"',
        "a=(1 2",  # unclosed inner list
        "a=(1,2)",
        "a=:not base64!:",
        "a=:YQ=Y:",  # '=' inside
        "a=:abc",  # unclosed byte sequence
        "a=1234567890123456",  # 16-digit integer
        "a=1.2345",  # 4 fractional digits
        "a=1234567890123.5",  # 13 integer digits in a decimal
        "a=1.",
        "a=-",
        "a=?2",
        "a=@1659578233",  # RFC 9651 date: not supported
        'a=%"display"',  # RFC 9651 display string: not supported
        "a=é",
        "a=1;",  # parameter without key
        "a=1 ;p",
        "a=)",
    ],
)
def test_malformed_values_raise_sfverror(text: str) -> None:
    with pytest.raises(SFVError):
        sfv.parse_dictionary(text)


def test_refuses_more_than_the_member_bound() -> None:
    ok = ", ".join(f"s{i}=1" for i in range(sfv.MAX_MEMBERS))
    assert len(sfv.parse_dictionary(ok)) == sfv.MAX_MEMBERS
    with pytest.raises(SFVError, match="more than 8 dictionary members"):
        sfv.parse_dictionary(ok + ", extra=1")


def test_refuses_oversized_input_before_parsing() -> None:
    text = "a=" + '"' + "x" * sfv.MAX_FIELD_LENGTH + '"'
    with pytest.raises(SFVError, match="more than 8192"):
        sfv.parse_dictionary(text)


def test_refuses_too_many_inner_list_items_and_parameters() -> None:
    with pytest.raises(SFVError, match="items"):
        sfv.parse_dictionary("a=(" + " ".join(["1"] * (sfv.MAX_INNER_LIST_ITEMS + 1)) + ")")
    params = "".join(f";p{i}" for i in range(sfv.MAX_PARAMETERS + 1))
    with pytest.raises(SFVError, match="parameters"):
        sfv.parse_dictionary("a=1" + params)


def test_non_string_input_is_refused() -> None:
    with pytest.raises(SFVError):
        sfv.parse_dictionary(b"a=1")  # type: ignore[arg-type]


# --- serialisation ---------------------------------------------------------------------------


def test_serialises_inner_list_with_parameters_in_order() -> None:
    inner = InnerList([Item("@method"), Item("@path")], {"created": 1, "keyid": "k", "flag": True})
    assert sfv.serialize_inner_list(inner) == '("@method" "@path");created=1;keyid="k";flag'


def test_serialises_decimals_canonically() -> None:
    assert sfv.serialize_bare_item(1.5) == "1.5"
    assert sfv.serialize_bare_item(2.0) == "2.0"
    assert sfv.serialize_bare_item(-0.1234) == "-0.123"


@pytest.mark.parametrize(
    "value",
    ["new\nline", "é", 10**15, float("nan"), float("inf"), 1e13],
)
def test_serialisation_refuses_what_the_format_cannot_carry(value: sfv.BareItem) -> None:
    with pytest.raises(SFVError):
        sfv.serialize_bare_item(value)


def test_serialisation_refuses_bad_keys_and_tokens() -> None:
    with pytest.raises(SFVError):
        sfv.serialize_dictionary({"Bad": Item(1)})
    with pytest.raises(SFVError):
        Token("has space")


# --- fuzzing ---------------------------------------------------------------------------------

# Characters that matter to the grammar, so the fuzzer reaches deep into the parser.
_SFV_ALPHABET = st.sampled_from([*'abcxyz*AZ09-_.:;=,()"\\?@% \t/+!~é\x00\x7f', "sig1"])


@settings(max_examples=800)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text_only_raises_sfverror(text: str) -> None:
    with contextlib.suppress(SFVError):
        sfv.parse_dictionary(text)


@settings(max_examples=1500)
@given(st.lists(_SFV_ALPHABET, max_size=80).map("".join))
def test_fuzz_grammar_characters_only_raise_sfverror_and_round_trip(text: str) -> None:
    try:
        parsed = sfv.parse_dictionary(text)
    except SFVError:
        return
    # Whatever parses re-serialises to something that parses to the same thing.
    assert sfv.parse_dictionary(sfv.serialize_dictionary(parsed)) == parsed


_LC = "abcdefghijklmnopqrstuvwxyz"
_keys = st.builds(
    str.__add__, st.sampled_from(_LC + "*"), st.text(_LC + "0123456789_-.*", max_size=6)
)
_TCHAR = _LC + _LC.upper() + "0123456789!#$%&'*+-.^_`|~:/"
_bare = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    st.binary(max_size=40),
    st.builds(
        str.__add__, st.sampled_from(_LC + _LC.upper() + "*"), st.text(_TCHAR, max_size=8)
    ).map(Token),
)
_params = st.dictionaries(_keys, _bare, max_size=4)
_item = st.builds(Item, _bare, _params)
_member = st.one_of(_item, st.builds(InnerList, st.lists(_item, max_size=5), _params))


@settings(max_examples=200)
@given(st.dictionaries(_keys, _member, max_size=sfv.MAX_MEMBERS))
def test_fuzz_serialise_then_parse_is_identity(members: dict[str, sfv.Member]) -> None:
    text = sfv.serialize_dictionary(members)
    assert sfv.parse_dictionary(text, max_length=10**6) == members


# --- the fast path agrees with the exact parser ----------------------------------------------
#
# `parse_dictionary` first tries `sfv._parse_fast` (regular expressions, common shapes only) and
# falls back to `sfv._parse_exact` (the RFC algorithm, character by character). The fast path
# may only ever give up (None) or return exactly what the exact parser returns; refusals and
# their messages always come from the exact parser.


def _assert_fast_path_agrees(text: str, max_members: int = sfv.MAX_MEMBERS) -> None:
    fast = sfv._parse_fast(text, max_members)
    try:
        exact = sfv._parse_exact(text, max_members)
    except SFVError as exc:
        assert fast is None, f"the fast path accepted {text!r}, which is refused: {exc}"
        if text.isascii() and len(text) <= sfv.MAX_FIELD_LENGTH:
            with pytest.raises(SFVError) as info:
                sfv.parse_dictionary(text, max_members=max_members)
            assert str(info.value) == str(exc)
        return
    # repr, not ==: Item(1) == Item(True) == Item(1.0) in Python, and == ignores member order.
    if fast is not None:
        assert repr(fast) == repr(exact)
    if text.isascii() and len(text) <= sfv.MAX_FIELD_LENGTH:
        assert repr(sfv.parse_dictionary(text, max_members=max_members)) == repr(exact)


# Structure-aware text: dictionaries built by the grammar, each piece drawn mostly from valid
# spellings and sometimes from invalid ones, so that texts are close to valid and reach deep
# into both parsers: escapes, decimals, over-long numbers, unpadded and broken base64,
# parameters on inner list items, repeated keys, stray whitespace, non-ASCII and controls.


def _mostly(valid: list[str], invalid: list[str], weight: int = 8) -> st.SearchStrategy[str]:
    return st.sampled_from(valid * weight + invalid)


_g_key = _mostly(["a", "b", "sig1", "*k", "k-1.x_*", "created"], ["A", "1a", "", "é"])
_g_space = st.sampled_from(["", "", " ", "  ", "\t"])
_g_bare = _mostly(
    [
        *['"abc"', '""', '"a b~!"', '"a\\"b"', '"a\\\\b"', "0", "-0", "007", "-5", "1" * 15],
        *["1.5", "1.234", "-0.5", "1" * 12 + ".5", "tok", "*", "a:b/c", "T!#$%&'*+-.^_`|~"],
        *[":aGk=:", ":aGk:", "::", ":AAEC/w==:", "?0", "?1"],
    ],
    [
        *['"a\\b"', '"open', '"t\tb"', '"é"', "-", "1" * 16, "1.", "1.2345", "1" * 13 + ".5"],
        *["1..2", "x=y", ":YQ=Y:", ":a:", ":not base64:", ":abc", "?2", "?", "@1", '%"d"'],
        *["é", "\x00", "\x7f", "", "("],
    ],
    # Bare items are where the fast path has the most to get wrong: invalid ones more often.
    weight=2,
)
_g_parameter = st.builds(
    lambda sp, key, value: ";" + sp + key + value,
    _g_space,
    _g_key,
    st.one_of(st.just(""), _g_bare.map("=".__add__)),
)
_g_parameters = st.lists(_g_parameter, max_size=3).map("".join)
_g_item = st.builds(str.__add__, _g_bare, _g_parameters)
_g_inner_list = st.builds(
    lambda sp, items, sep, params: "(" + sp + sep.join(items) + sp + ")" + params,
    _g_space,
    st.lists(_g_bare, max_size=5) | st.lists(_g_item, max_size=3),
    _mostly([" ", "  "], ["", "\t", ","]),
    _g_parameters,
)
_g_member = st.builds(
    str.__add__,
    _g_key,
    _g_parameters | _g_item.map("=".__add__) | _g_inner_list.map("=".__add__),
)
_grammar_text = st.builds(
    lambda lead, members, sep, trail: lead + sep.join(members) + trail,
    _g_space,
    st.lists(_g_member, min_size=1, max_size=4),
    _mostly([", ", ",", " ,\t"], [",,", " ", ";"]),
    _mostly(["", " "], ["\t", ","]),
)

_floats = st.decimals(min_value=-(10**12) + 1, max_value=10**12 - 1, places=3).map(float)
_any_bare = st.one_of(_bare, _floats, st.text(st.sampled_from(' a"\\~'), max_size=6))
_any_params = st.dictionaries(_keys, _any_bare, max_size=3)
_any_item = st.builds(Item, _any_bare, _any_params)
_any_member = st.one_of(
    _any_item, st.builds(InnerList, st.lists(_any_item, max_size=4), _any_params)
)
_serialised = st.dictionaries(_keys, _any_member, max_size=sfv.MAX_MEMBERS).map(
    sfv.serialize_dictionary
)


@st.composite
def _edited(draw: st.DrawFn) -> str:
    """A valid serialisation with one character inserted, deleted or replaced."""
    text: str = draw(_serialised)
    position = draw(st.integers(min_value=0, max_value=len(text)))
    char: str = draw(st.sampled_from([*' \t,;=()"\\:?*-.0aA/é', "\x00"]))
    edit = draw(st.sampled_from(["insert", "delete", "replace"]))
    if edit == "insert":
        return text[:position] + char + text[position:]
    if edit == "delete":
        return text[:position] + text[position + 1 :]
    return text[:position] + char + text[position + 1 :]


_edges = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", "\x00", "\u00a0", "\u3000"])


@settings(max_examples=1000)
@given(text=st.one_of(_grammar_text, _serialised, _edited()), max_members=st.integers(0, 9))
def test_fast_path_agrees_with_the_exact_parser_on_grammar_text(
    text: str, max_members: int
) -> None:
    _assert_fast_path_agrees(text, max_members)


@settings(max_examples=1000)
@given(
    text=st.one_of(
        st.text(max_size=120),
        st.text(st.characters(codec="ascii"), max_size=120),
        st.builds(lambda a, t, b: a + t + b, _edges, _grammar_text, _edges),
    )
)
def test_fast_path_agrees_with_the_exact_parser_on_arbitrary_text(text: str) -> None:
    _assert_fast_path_agrees(text)


@pytest.mark.parametrize(
    "text",
    [
        B26_INPUT,
        "sig1=:AAEC/w==:",
        "sig1=:AAEC/w:",  # padding missing: decoded all the same
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:, sha-512=:aGk=:",
        'sig1=("@method" "@path" "@query" "content-digest");created=1;expires=61;nonce="n";'
        'keyid="SHA256:x/y+z";alg="ed25519";tag="flightdeck", sig2=( );a;b=?0;c=-7;d=t/k',
        "  a=1 ,\tb=( 1  2 ) , c;x  ",
        "a=()",
        "a=(" + " ".join(["1"] * sfv.MAX_INNER_LIST_ITEMS) + ")",
    ],
)
def test_fast_path_reads_what_requests_carry(text: str) -> None:
    # What signed requests carry must not fall back to the slow parser, or nothing is gained.
    assert sfv._parse_fast(text, sfv.MAX_MEMBERS) is not None
    _assert_fast_path_agrees(text)


@pytest.mark.parametrize(
    "text",
    [
        'a="x\\"y"',  # an escape
        "a=1.5",  # a decimal
        'a=("x";p)',  # parameters on an inner list item
        "a=1, a=2",  # a repeated key: refused, by the exact parser
        "a=1;p;p",
        "a=1,",
        "a=" + "1" * 16,
        "a=(" + " ".join(["1"] * (sfv.MAX_INNER_LIST_ITEMS + 1)) + ")",
        "a=1" + "".join(f";p{i}" for i in range(sfv.MAX_PARAMETERS + 1)),
        "a=:YQ=Y:",
        "a;ab=@",
        "a=?2",
        "a=:" + "A" * 2100 + ":",  # valid, but longer than any value a request carries
        "a;\tb",  # only SP after ';', only SP between inner list items, no tab first
        "a=(1\t2)",
        "\ta=1",
    ],
)
def test_fast_path_leaves_the_unusual_to_the_exact_parser(text: str) -> None:
    assert sfv._parse_fast(text, sfv.MAX_MEMBERS) is None
    _assert_fast_path_agrees(text)


@settings(max_examples=1000)
@given(st.text(max_size=60) | st.text(st.characters(codec="ascii"), max_size=60))
def test_string_serialisation_refuses_exactly_what_is_not_printable_ascii(text: str) -> None:
    # The reference is the per-character check the regular expression replaced.
    if all(" " <= c <= "~" for c in text):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        assert sfv.serialize_bare_item(text) == f'"{escaped}"'
    else:
        with pytest.raises(SFVError):
            sfv.serialize_bare_item(text)
