"""Raw XML that administrators put into host attributes, parsed as XML fragments.

Several Rocks attributes carry libvirt XML verbatim: the part of `cpu_mode` after the colon
(`<model fallback='allow'>core2duo</model><feature policy='require' name='vmx'/>`),
`kvm_cpu_pinning` (a whole `<cputune>`), `kvm_device_N` (a `<hostdev>` or any other device) and
`HVM_Features` (`<acpi/><apic/><pae/>`). The original pasted these strings into the domain XML, so
one stray `<` surfaced only when libvirt rejected the whole generated document, with a position in
a document the admin never saw. Here each value is parsed on its own, as a sequence of elements,
and a bad one is reported against the attribute and host it came from before anything is started.

Parsing wraps the value in a synthetic root element, so:

- a value may hold any number of sibling elements, including none;
- a DOCTYPE (and with it any entity declaration) cannot appear: it is only legal before the root,
  and the root is ours. References to undefined entities are errors; only XML's five predefined
  entities and character references work;
- text outside elements (`acpi <apic/>`) is an error rather than silently dropped;
- comments and processing instructions are dropped (ElementTree's default).

Whitespace-only text between elements is removed, so the indentation an admin typed does not leak
into the generated XML (`ElementTree.indent` re-indents everything).

This module is pure: `xml.etree.ElementTree` only, no libvirt.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from xml.etree.ElementTree import Element
from xml.parsers import expat

from flightdeck.attrsubject import Subject, subject
from flightdeck.errors import UserError

__all__ = ["expect_root", "parse_fragment"]

# The synthetic root. Its name cannot clash with anything an admin writes in a way that matters: a
# stray `</flightdeck-fragment>` just makes the value malformed, which it was anyway.
_WRAPPER = "flightdeck-fragment"

_SURROGATE = re.compile("[\ud800-\udfff]")

# How much of an offending piece of text is quoted back in a message.
_QUOTE_MAX = 40


def parse_fragment(text: str, *, attribute: str, host: str | Subject) -> list[Element]:
    """Parse `text`, the value of `attribute` as resolved for `host`, into its top-level elements.

    `host` is a host name, or the `Subject` whose value it is (an appliance's, the global one).

    Returns the elements in document order (an empty list for an empty or blank value). Each call
    returns fresh elements; the caller may keep them in a domain model, which copies them again
    when it renders.

    Raises `UserError` naming the attribute, the host, what is wrong and where (line and column
    within the value), and how to fix it.
    """
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        # expat never sees these: encoding the value for it fails first. They come from bytes that
        # were not UTF-8 on the command line (Python decodes argv with surrogateescape).
        where = _position(text, surrogate.start())
        problem = f"character {surrogate.group()!r} is not allowed {where}"
        raise UserError(_invalid(attribute, host, problem))
    # The wrapper's tags sit on lines of their own, so expat's line numbers are the value's line
    # numbers plus one and its columns need no correction.
    wrapped = f"<{_WRAPPER}>\n{text}\n</{_WRAPPER}>"
    try:
        root = ET.fromstring(wrapped)
    except ET.ParseError as exc:
        raise UserError(_invalid(attribute, host, _describe(exc, text))) from None

    stray = _stray_text(root)
    if stray is not None:
        raise UserError(_invalid(attribute, host, f"text {_quote(stray)} is outside any element"))

    elements = list(root)
    for element in elements:
        _strip_blank_text(element)
        element.tail = None
    return elements


def expect_root(
    elements: Sequence[Element], tag: str, attribute: str, host: str | Subject
) -> Element:
    """Return the only element of a parsed fragment, checking that it is a `<tag>`.

    For attributes whose raw form must be exactly one element, e.g. `kvm_cpu_pinning`, which is
    either `pin_all` or a single `<cputune>...</cputune>`.
    """
    if len(elements) == 1 and elements[0].tag == tag:
        return elements[0]
    found = ", ".join(f"<{element.tag}>" for element in elements) if elements else "no element"
    who = subject(host)
    raise UserError(
        f"{who.attr(attribute)} must hold a single <{tag}> element, "
        f"not {found}; fix it with {who.fix(attribute)}"
    )


def _invalid(attribute: str, host: str | Subject, problem: str) -> str:
    who = subject(host)
    return f"{who.attr(attribute)} is not valid XML: {problem}; fix it with {who.fix(attribute)}"


def _describe(exc: ET.ParseError, text: str) -> str:
    """Expat's complaint, with its position translated back into the admin's value."""
    what = expat.ErrorString(exc.code) or str(exc)
    line, column = exc.position
    line -= 1  # the wrapper's opening tag is line 1
    lines = text.count("\n") + 1
    if line < 1 or line > lines:
        # At the wrapper's closing tag: something opened in the value was never closed.
        if exc.code == expat.errors.codes[expat.errors.XML_ERROR_TAG_MISMATCH]:
            return "an element is not closed by the end of the value"
        return f"{what} at the end of the value"
    return f"{what} {_at(line, column + 1, lines)}"


def _position(text: str, offset: int) -> str:
    """`at line L, column C` (1-based) for a character offset into `text`."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return _at(line, column, text.count("\n") + 1)


def _at(line: int, column: int, lines: int) -> str:
    return f"at column {column}" if lines == 1 else f"at line {line}, column {column}"


def _stray_text(root: Element) -> str | None:
    """The first non-blank text directly inside the wrapper, if any."""
    pieces = [root.text, *(child.tail for child in root)]
    for piece in pieces:
        if piece is not None and piece.strip():
            return piece.strip()
    return None


def _strip_blank_text(element: Element) -> None:
    """Drop whitespace-only text around child elements (indentation), keeping leaf text as is."""
    for child in element.iter():
        if len(child) and child.text is not None and not child.text.strip():
            child.text = None
        for grandchild in child:
            if grandchild.tail is not None and not grandchild.tail.strip():
                grandchild.tail = None


def _quote(text: str) -> str:
    if len(text) > _QUOTE_MAX:
        text = text[: _QUOTE_MAX - 3] + "..."
    return repr(text)
