"""Raw XML from host attributes, parsed as fragments."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck.errors import UserError
from flightdeck.virt.fragments import expect_root, parse_fragment


def parse(text: str) -> list[ET.Element]:
    return parse_fragment(text, attribute="cpu_mode", host="compute-0-0-0")


def rendered(elements: list[ET.Element]) -> list[str]:
    return [ET.tostring(element, encoding="unicode") for element in elements]


def test_cpu_mode_children() -> None:
    elements = parse(
        "<model fallback='allow'>core2duo</model><feature policy='require' name='vmx'/>"
    )
    assert rendered(elements) == [
        '<model fallback="allow">core2duo</model>',
        '<feature policy="require" name="vmx" />',
    ]


def test_hvm_features() -> None:
    assert [e.tag for e in parse("<acpi/><apic/><pae/>")] == ["acpi", "apic", "pae"]


def test_cputune_with_indentation_loses_the_whitespace() -> None:
    text = """
        <cputune>
          <vcpupin vcpu='0' cpuset='0'/>
          <vcpupin vcpu='1' cpuset='1'/>
        </cputune>
    """
    (cputune,) = parse(text)
    assert rendered([cputune]) == [
        '<cputune><vcpupin vcpu="0" cpuset="0" /><vcpupin vcpu="1" cpuset="1" /></cputune>'
    ]


def test_hostdev_device() -> None:
    text = (
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0x0000' bus='0x06' slot='0x02' function='0x0'/></source></hostdev>"
    )
    (hostdev,) = parse(text)
    assert hostdev.tag == "hostdev"
    address = hostdev.find("source/address")
    assert address is not None
    assert address.get("bus") == "0x06"


def test_leaf_text_is_kept_and_entities_resolved() -> None:
    (cmdline,) = parse("<cmdline> a=&lt;1&gt; &amp; b=&#65; </cmdline>")
    assert cmdline.text == " a=<1> & b=A "


def test_blank_value_is_no_elements() -> None:
    assert parse("") == []
    assert parse("  \n\t ") == []


def test_comments_and_processing_instructions_are_dropped() -> None:
    assert [e.tag for e in parse("<!-- pinned --><acpi/><?foo bar?><apic/>")] == ["acpi", "apic"]


def test_each_call_returns_fresh_elements() -> None:
    first, second = parse("<acpi/>"), parse("<acpi/>")
    assert first[0] is not second[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<model>core2duo", "an element is not closed by the end of the value"),
        ("<model>core2duo</mode>", "mismatched tag at column 18"),
        ("<a x='1' x='2'/>", "duplicate attribute at column 10"),
        ("<acpi/>&nbsp;", "undefined entity at column 8"),
        ("<acpi/>\n<apic", "at the end of the value"),
        ("<acpi/>\n<apic/>\n<pae/ x>", "not well-formed (invalid token) at line 3, column 6"),
        ("\x00<acpi/>", "not well-formed (invalid token) at column 1"),
        ("<acpi/><model>\udcff</model>", "character '\\udcff' is not allowed at column 15"),
        ("<acpi/>\n <b>\ud800", "character '\\ud800' is not allowed at line 2, column 5"),
        ("<?xml version='1.0'?><acpi/>", "XML or text declaration not at start of entity"),
        ("acpi", "text 'acpi' is outside any element"),
        ("<acpi/> apic <pae/>", "text 'apic' is outside any element"),
        ("<acpi/>" + "x" * 100, "text 'xxxx"),
    ],
)
def test_malformed_value_names_attribute_host_problem_and_fix(text: str, problem: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_fragment(text, attribute="HVM_Features", host="hosted-vm-0-1-0")
    message = str(caught.value)
    assert message.startswith("attribute HVM_Features of host hosted-vm-0-1-0 is not valid XML: ")
    assert problem in message
    assert message.endswith("; fix it with rocks set host attr hosted-vm-0-1-0 HVM_Features ...")
    assert "\n" not in message
    assert "flightdeck-fragment" not in message


@pytest.mark.parametrize(
    "text",
    [
        # A DOCTYPE (and so any entity declaration) is only legal before the root, which is ours.
        "<!DOCTYPE d [<!ENTITY x 'boom'>]><acpi>&x;</acpi>",
        '<!DOCTYPE d SYSTEM "file:///etc/passwd"><acpi/>',
        "<!ENTITY x 'boom'><acpi/>",
        # Closing the synthetic root early leaves junk after it.
        "</flightdeck-fragment><acpi/><flightdeck-fragment>",
    ],
)
def test_doctype_entities_and_wrapper_escapes_are_impossible(text: str) -> None:
    with pytest.raises(UserError, match="is not valid XML"):
        parse(text)


def test_expect_root_returns_the_single_element() -> None:
    elements = parse_fragment(
        "<cputune><vcpupin vcpu='0' cpuset='0'/></cputune>",
        attribute="kvm_cpu_pinning",
        host="compute-0-0-0",
    )
    assert expect_root(elements, "cputune", "kvm_cpu_pinning", "compute-0-0-0") is elements[0]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("", "not no element"),
        ("<vcpupin vcpu='0' cpuset='0'/>", "not <vcpupin>"),
        ("<cputune/><cputune/>", "not <cputune>, <cputune>"),
    ],
)
def test_expect_root_rejects_anything_else(text: str, found: str) -> None:
    elements = parse_fragment(text, attribute="kvm_cpu_pinning", host="compute-0-0-0")
    with pytest.raises(UserError) as caught:
        expect_root(elements, "cputune", "kvm_cpu_pinning", "compute-0-0-0")
    assert str(caught.value) == (
        "attribute kvm_cpu_pinning of host compute-0-0-0 must hold a single <cputune> element, "
        f"{found}; fix it with rocks set host attr compute-0-0-0 kvm_cpu_pinning ..."
    )


# Any code point at all, lone surrogates included; markup-ish characters made likely.
admin_text = st.lists(
    st.one_of(
        st.sampled_from(list("<>/='\"&;!?- \n")),
        st.sampled_from(["<acpi/>", "<a>", "</a>", "&lt;", "&x;", "<!--", "-->", "<![CDATA["]),
        st.characters(exclude_categories=()),
    ),
    max_size=30,
).map("".join)


@given(admin_text)
def test_any_text_parses_or_is_a_user_error(text: str) -> None:
    """Whatever an admin types, the outcome is elements or a one-line UserError, nothing else."""
    try:
        elements = parse(text)
    except UserError as exc:
        assert str(exc).startswith("attribute cpu_mode of host compute-0-0-0 is not valid XML: ")
        assert "\n" not in str(exc)
    else:
        assert all(isinstance(element, ET.Element) for element in elements)
