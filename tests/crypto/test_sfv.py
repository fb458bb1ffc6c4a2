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
