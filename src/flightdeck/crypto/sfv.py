"""The small part of RFC 8941 / RFC 9651 Structured Field Values that request signing needs.

`Signature-Input`, `Signature` (RFC 9421) and `Content-Digest` (RFC 9530) are all Structured
Field *Dictionaries*: members whose values are Items (a bare value plus parameters) or Inner Lists
of Items. This module parses and serialises exactly that, following the algorithms of RFC 8941 §4
step by step, because a lax parser in front of a signature check is an attack surface: two parsers
that disagree about one header is how signature-wrapping bugs are born.

Deliberate differences from the RFC, all in the direction of refusing more:

* Inputs are bounded (`MAX_FIELD_LENGTH` characters, `MAX_MEMBERS` dictionary members,
  `MAX_INNER_LIST_ITEMS` items per inner list, `MAX_PARAMETERS` parameters per item) so that
  parsing cost is small and fixed before any cryptography runs.
* A key repeated within one dictionary or one parameter list is an error. RFC 8941 says the
  last one wins; for a signature header that silently drops what the signer may have meant, and
  the request is refused instead.
* RFC 9651 Dates (`@`) and Display Strings (`%"`) are not supported: nothing we sign uses them.

Every malformed input raises `SFVError` and nothing else (the fuzz tests hold us to that); the
request verifier turns it into a `PermissionDenied`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "MAX_FIELD_LENGTH",
    "MAX_INNER_LIST_ITEMS",
    "MAX_MEMBERS",
    "MAX_PARAMETERS",
    "BareItem",
    "InnerList",
    "Item",
    "Member",
    "Parameters",
    "SFVError",
    "Token",
    "parse_dictionary",
    "serialize_bare_item",
    "serialize_dictionary",
    "serialize_inner_list",
    "serialize_item",
    "serialize_parameters",
]

#: Longest field value we parse. Generous for a few signatures (an RSA-16384 signature is about
#: 2.8 KiB of base64) yet small enough that parsing is never the expensive part of a request.
MAX_FIELD_LENGTH = 8192
#: Most members in one dictionary, i.e. most signature labels in one request.
MAX_MEMBERS = 8
#: Most items in one inner list (covered components of one signature).
MAX_INNER_LIST_ITEMS = 32
#: Most parameters on one item or inner list.
MAX_PARAMETERS = 16

_INTEGER_LIMIT = 999_999_999_999_999
_LCALPHA = frozenset("abcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")
_ALPHA = _LCALPHA | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_KEY_FIRST = _LCALPHA | {"*"}
_KEY_REST = _LCALPHA | _DIGITS | frozenset("_-.*")
# RFC 9110 tchar, plus ":" and "/" which RFC 8941 allows inside tokens.
_TCHAR = _ALPHA | _DIGITS | frozenset("!#$%&'*+-.^_`|~")
_TOKEN_REST = _TCHAR | {":", "/"}
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_KEY_RE = re.compile(r"[a-z*][a-z0-9_\-.*]*\Z")
_TOKEN_RE = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*\Z")
#: Printable ASCII, SP to '~': what a String may hold (and what `httpsig` requires of a path and
#: a query). One match rather than a loop per character.
PRINTABLE = re.compile(r"[ -~]*")


class SFVError(ValueError):
    """A field value is not a valid Structured Field (or exceeds our bounds).

    A `ValueError` rather than a `FlightdeckError`: the caller decides what it means (the
    request verifier turns it into a refused signature).
    """


@dataclass(frozen=True, slots=True)
class Token:
    """An RFC 8941 Token: an unquoted word such as `sha-256` or `foo/bar`.

    A class of its own, not a `str`, so that a token can never be mistaken for a String when
    a signature parameter's type is checked.
    """

    value: str

    def __post_init__(self) -> None:
        if not _TOKEN_RE.match(self.value):
            raise SFVError(f"{self.value!r} is not a valid token")


BareItem = bool | int | float | str | bytes | Token
Parameters = dict[str, BareItem]


@dataclass(frozen=True, slots=True)
class Item:
    """A bare value with its parameters."""

    value: BareItem
    params: Parameters = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InnerList:
    """A parenthesised list of Items with parameters on the list itself."""

    items: list[Item]
    params: Parameters = field(default_factory=dict)


Member = Item | InnerList


# --------------------------------------------------------------------------------------------
# Parsing (RFC 8941 §4.2)
# --------------------------------------------------------------------------------------------


class _Parser:
    """A cursor over one field value; each method is one algorithm of RFC 8941 §4.2."""

    __slots__ = ("i", "s")

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, what: str) -> SFVError:
        return SFVError(f"{what} at character {self.i}")

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def skip_sp(self) -> None:
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def skip_ows(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def dictionary(self, max_members: int) -> dict[str, Member]:
        result: dict[str, Member] = {}
        while not self.at_end():
            key = self.key()
            if key in result:
                raise self.fail(f"dictionary key {key!r} repeated")
            if len(result) >= max_members:
                raise self.fail(f"more than {max_members} dictionary members")
            if self.peek() == "=":
                self.i += 1
                member = self.item_or_inner_list()
            else:
                member = Item(True, self.parameters())
            result[key] = member
            self.skip_ows()
            if self.at_end():
                return result
            if self.peek() != ",":
                raise self.fail("expected ',' between dictionary members")
            self.i += 1
            self.skip_ows()
            if self.at_end():
                raise self.fail("trailing ',' in dictionary")
        return result

    def item_or_inner_list(self) -> Member:
        if self.peek() == "(":
            return self.inner_list()
        return self.item()

    def inner_list(self) -> InnerList:
        self.i += 1  # "("
        items: list[Item] = []
        while not self.at_end():
            self.skip_sp()
            if self.peek() == ")":
                self.i += 1
                return InnerList(items, self.parameters())
            if len(items) >= MAX_INNER_LIST_ITEMS:
                raise self.fail(f"more than {MAX_INNER_LIST_ITEMS} items in an inner list")
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise self.fail("expected ' ' or ')' in inner list")
        raise self.fail("inner list not closed")

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.parameters())

    def parameters(self) -> Parameters:
        params: Parameters = {}
        while self.peek() == ";":
            self.i += 1
            self.skip_sp()
            key = self.key()
            if key in params:
                raise self.fail(f"parameter {key!r} repeated")
            if len(params) >= MAX_PARAMETERS:
                raise self.fail(f"more than {MAX_PARAMETERS} parameters")
            value: BareItem = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare_item()
            params[key] = value
        return params

    def key(self) -> str:
        if self.peek() not in _KEY_FIRST or self.at_end():
            raise self.fail("expected a key (lowercase letter or '*')")
        start = self.i
        self.i += 1
        while self.i < len(self.s) and self.s[self.i] in _KEY_REST:
            self.i += 1
        return self.s[start : self.i]

    def bare_item(self) -> BareItem:
        c = self.peek()
        if c == "-" or (c and c in _DIGITS):
            return self.number()
        if c == '"':
            return self.string()
        if c == ":":
            return self.byte_sequence()
        if c == "?":
            return self.boolean()
        if c and (c in _ALPHA or c == "*"):
            return self.token()
        raise self.fail("expected an item")

    def number(self) -> int | float:
        sign = 1
        if self.peek() == "-":
            sign = -1
            self.i += 1
        if self.peek() not in _DIGITS or self.at_end():
            raise self.fail("expected a digit")
        digits_start = self.i
        is_decimal = False
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in _DIGITS:
                self.i += 1
            elif c == "." and not is_decimal:
                if self.i - digits_start > 12:
                    raise self.fail("decimal has more than 12 integer digits")
                is_decimal = True
                self.i += 1
            else:
                break
            if not is_decimal and self.i - digits_start > 15:
                raise self.fail("integer has more than 15 digits")
            if is_decimal and self.i - digits_start > 16:
                raise self.fail("decimal is too long")
        text = self.s[digits_start : self.i]
        if not is_decimal:
            return sign * int(text)
        if text.endswith("."):
            raise self.fail("decimal ends with '.'")
        if len(text) - text.index(".") - 1 > 3:
            raise self.fail("decimal has more than 3 fractional digits")
        return sign * float(text)

    def string(self) -> str:
        self.i += 1  # opening quote
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            if c == "\\":
                if self.at_end():
                    raise self.fail("string ends inside an escape")
                nxt = self.s[self.i]
                self.i += 1
                if nxt not in ('"', "\\"):
                    raise self.fail('only \\" and \\\\ may be escaped in a string')
                out.append(nxt)
            elif c == '"':
                return "".join(out)
            elif not (" " <= c <= "~"):
                raise self.fail("string holds a character outside printable ASCII")
            else:
                out.append(c)
        raise self.fail("string not closed")

    def token(self) -> Token:
        start = self.i
        self.i += 1
        while self.i < len(self.s) and self.s[self.i] in _TOKEN_REST:
            self.i += 1
        return Token(self.s[start : self.i])

    def byte_sequence(self) -> bytes:
        self.i += 1  # opening ":"
        end = self.s.find(":", self.i)
        if end < 0:
            raise self.fail("byte sequence not closed")
        body = self.s[self.i : end]
        if not set(body) <= _BASE64_CHARS:
            raise self.fail("byte sequence holds a character outside base64")
        self.i = end + 1
        # RFC 8941 §4.2.7: parsers SHOULD NOT fail when '=' padding is missing.
        body += "=" * (-len(body) % 4)
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail("byte sequence is not valid base64") from None

    def boolean(self) -> bool:
        self.i += 1  # "?"
        c = self.peek()
        if c == "1":
            self.i += 1
            return True
        if c == "0":
            self.i += 1
            return False
        raise self.fail("boolean must be ?0 or ?1")


def _parse_exact(text: str, max_members: int) -> dict[str, Member]:
    """The exact RFC 8941 algorithm (`_Parser`): the reference every refusal comes from."""
    parser = _Parser(text)
    parser.skip_sp()
    result = parser.dictionary(max_members)
    parser.skip_sp()
    if not parser.at_end():
        raise parser.fail("unexpected characters after the dictionary")
    return result


# --------------------------------------------------------------------------------------------
# Fast path for the common shapes
# --------------------------------------------------------------------------------------------
#
# Every signed request carries the same few shapes: a key, an inner list of plain quoted names,
# parameters that are integers, plain strings or tokens, a byte sequence. The `_fast_*`
# functions read exactly those with a few precompiled regular expressions instead of a Python
# loop per character. They never refuse anything: on whatever they do not know (an escape in a
# string, a decimal, an inner list item with parameters, a repeated key, a bound reached, any
# syntax error) they give up (`_Unusual`), and `_Parser` parses the whole value again from its
# first character, so every refusal and its message still come from the exact algorithm. What
# they do return must be exactly what `_Parser` returns for the same text:
# tests/crypto/test_sfv.py compares the two on random input.
#
# A value the fast path gives up on is parsed twice, so junk costs a little more than before;
# `_FAST_MAX_LENGTH` bounds that extra, and longer values (never seen in a normal request) go
# straight to `_Parser`: the worst case, a junk value of `MAX_FIELD_LENGTH`, costs what it did.

#: Longest value the fast path tries: an RSA-8192 `Signature` (1,368 base64 characters) fits.
_FAST_MAX_LENGTH = 2048

# One alternative per bare item type, each starting with the characters `_Parser.bare_item`
# dispatches on, so at most one can match: a string without escapes (printable ASCII but '"'
# and '\\'), an integer of at most 15 digits not followed by a digit or '.' (a decimal is left
# to `_Parser`), a token, a byte sequence (base64 characters up to the next ':'), a boolean.
# A group per type holds the delimiters too, so a matched group is never empty (`_fast_value`).
_FAST_BARE_FORMS = (
    r'"[ !#-\[\]-~]*"',
    r"-?[0-9]{1,15}(?![0-9.])",
    r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*",
    r":[A-Za-z0-9+/=]*:",
    r"\?[01]",
)
_FAST_BARE = "|".join(f"({form})" for form in _FAST_BARE_FORMS)
_FAST_BARE_ITEM = re.compile(_FAST_BARE)
# A key, and only the longest one: the lookahead stops a shorter key from being tried when
# what follows does not match.
_FAST_KEY = r"[a-z*][a-z0-9_\-.*]*(?![a-z0-9_\-.*])"
_FAST_MEMBER_KEY = re.compile(_FAST_KEY)
# `;key` or `;key=value` in one match; a key followed by '=' and no usable value is no match.
_FAST_PARAMETER = re.compile(f"; *({_FAST_KEY})(?:=(?:{_FAST_BARE})|(?!=))")
# An inner list from its '(' to its ')' whose items have no parameters (covered components never
# have any): at most `MAX_INNER_LIST_ITEMS` items (so that a long list fails after that many),
# each followed by ' ' or ')', as `_Parser.inner_list` requires. Group 1 is the items, which
# `_FAST_BARE_ITEM.findall` then reads one by one (spaces start no bare item). No groups inside
# the repetition: only the last repetition's would be kept.
_FAST_INNER_ITEM = r" *(?:" + "|".join(_FAST_BARE_FORMS) + r")(?=[ )])"
_FAST_INNER_LIST = re.compile(rf"\(((?:{_FAST_INNER_ITEM}){{0,{MAX_INNER_LIST_ITEMS}}}) *\)")


class _Unusual(Exception):
    """Raised by the fast path only: this value is for the exact parser to judge."""


def _fast_value(groups: Sequence[str | None]) -> BareItem:
    """The bare item from the groups of one `_FAST_BARE` match, as `_Parser.bare_item` reads it.

    Unmatched groups are None (`match.groups()`) or empty (`findall`); none matched is a
    parameter without a value, which is Boolean true.
    """
    string, integer, token, raw, boolean = groups
    if string:
        return string[1:-1]
    if integer:
        return int(integer)
    if token:
        return Token(token)
    if raw:
        # As `_Parser.byte_sequence`: padding may be missing, anything else is refused.
        body = raw[1:-1]
        try:
            return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _Unusual from None
    if boolean:
        return boolean == "?1"
    return True


def _fast_parameters(s: str, i: int) -> tuple[Parameters, int]:
    params: Parameters = {}
    while (match := _FAST_PARAMETER.match(s, i)) is not None:
        groups = match.groups()
        key = groups[0]
        if key in params or len(params) >= MAX_PARAMETERS:
            raise _Unusual
        params[key] = _fast_value(groups[1:])
        i = match.end()
    if s.startswith(";", i):
        raise _Unusual
    return params, i


def _fast_item(s: str, i: int) -> tuple[Item, int]:
    match = _FAST_BARE_ITEM.match(s, i)
    if match is None:
        raise _Unusual
    value = _fast_value(match.groups())
    params, i = _fast_parameters(s, match.end())
    return Item(value, params), i


def _fast_inner_list(s: str, i: int) -> tuple[InnerList, int]:
    match = _FAST_INNER_LIST.match(s, i)
    if match is None:
        raise _Unusual
    items = [Item(_fast_value(groups)) for groups in _FAST_BARE_ITEM.findall(match[1])]
    params, i = _fast_parameters(s, match.end())
    return InnerList(items, params), i


def _fast_dictionary(s: str, max_members: int) -> dict[str, Member]:
    end = len(s)
    i = end - len(s.lstrip(" "))
    result: dict[str, Member] = {}
    while i < end:
        match = _FAST_MEMBER_KEY.match(s, i)
        if match is None:
            raise _Unusual
        key = match[0]
        if key in result or len(result) >= max_members:
            raise _Unusual
        i = match.end()
        member: Member
        if s.startswith("=(", i):
            member, i = _fast_inner_list(s, i + 1)
        elif s.startswith("=", i):
            member, i = _fast_item(s, i + 1)
        else:
            params, i = _fast_parameters(s, i)
            member = Item(True, params)
        result[key] = member
        while i < end and s[i] in " \t":
            i += 1
        if i == end:
            return result
        if s[i] != ",":
            raise _Unusual
        i += 1
        while i < end and s[i] in " \t":
            i += 1
        if i == end:
            raise _Unusual
    return result


def _parse_fast(text: str, max_members: int) -> dict[str, Member] | None:
    """What `_parse_exact` returns for `text`, or None where only it can tell (and refuse)."""
    if len(text) > _FAST_MAX_LENGTH:
        return None
    try:
        return _fast_dictionary(text, max_members)
    except _Unusual:
        return None


def parse_dictionary(
    text: str, *, max_length: int = MAX_FIELD_LENGTH, max_members: int = MAX_MEMBERS
) -> dict[str, Member]:
    """Parse a Dictionary field value (RFC 8941 §4.2, top level for type "dictionary").

    `text` is the field value with all field lines already combined (joined with ", "). An empty
    value is an empty dictionary. Raises `SFVError` for anything malformed or over the bounds.
    """
    if not isinstance(text, str):
        raise SFVError("field value must be a string")
    if len(text) > max_length:
        raise SFVError(f"field value is {len(text)} characters, more than {max_length}")
    if not text.isascii():
        raise SFVError("field value holds non-ASCII characters")
    result = _parse_fast(text, max_members)
    return result if result is not None else _parse_exact(text, max_members)


# --------------------------------------------------------------------------------------------
# Serialisation (RFC 8941 §4.1)
# --------------------------------------------------------------------------------------------


def _serialize_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise SFVError(f"{key!r} is not a valid key")
    return key


def serialize_bare_item(value: BareItem) -> str:
    """Serialise one bare item; raises `SFVError` for values the format cannot carry."""
    # str first, the common case: no class derives from both str and int, float or bytes (their
    # layouts conflict), so a str is none of those and the order does not matter to it.
    if isinstance(value, str):
        if PRINTABLE.fullmatch(value) is None:
            raise SFVError("a string may hold only printable ASCII characters")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    # bool before int: in Python a bool is also an int.
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if not -_INTEGER_LIMIT <= value <= _INTEGER_LIMIT:
            raise SFVError(f"integer {value} is out of range")
        return str(value)
    if isinstance(value, float):
        rounded = round(value, 3)
        if not math.isfinite(rounded) or abs(rounded) >= 10**12:
            raise SFVError(f"decimal {value} is out of range")
        text = f"{rounded:.3f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    if isinstance(value, Token):
        return value.value
    raise SFVError(f"cannot serialise a {type(value).__name__}")


def serialize_parameters(params: Parameters) -> str:
    """Serialise parameters in their insertion order (`;key` for true, `;key=value` else)."""
    out: list[str] = []
    for key, value in params.items():
        out.append(";" + _serialize_key(key))
        if value is not True:
            out.append("=" + serialize_bare_item(value))
    return "".join(out)


def serialize_item(item: Item) -> str:
    """Serialise an Item: its bare value then its parameters."""
    if not item.params:  # covered components: skip building an empty string
        return serialize_bare_item(item.value)
    return serialize_bare_item(item.value) + serialize_parameters(item.params)


def serialize_inner_list(inner: InnerList) -> str:
    """Serialise an Inner List, e.g. `("@method" "@path");created=1`."""
    body = " ".join([serialize_item(item) for item in inner.items])
    return "(" + body + ")" + serialize_parameters(inner.params)


def serialize_dictionary(members: dict[str, Member]) -> str:
    """Serialise a Dictionary; a member whose value is bare `True` is written as `key;params`."""
    out: list[str] = []
    for key, member in members.items():
        text = _serialize_key(key)
        if isinstance(member, InnerList):
            text += "=" + serialize_inner_list(member)
        elif member.value is True:
            text += serialize_parameters(member.params)
        else:
            text += "=" + serialize_item(member)
        out.append(text)
    return ", ".join(out)
