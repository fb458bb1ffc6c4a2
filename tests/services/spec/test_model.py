"""The cluster spec's text: schema, errors with their line and key, YAML read safely, output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flightdeck.services.spec import model as m

DOCS = Path(__file__).resolve().parents[3] / "docs" / "cluster-spec.schema.json"

GOOD = """\
version: 1
frontend:
  name: frontend-0-0-0
  ip: 137.110.119.118
  memory: 2048
computes:
  count: 4
  memory: 1024
  attributes: {kvm_autostart: "true"}
"""


def refused(text: str) -> str:
    with pytest.raises(m.SpecError) as err:
        m.parse_spec(text, "vc1.yaml")
    return err.value.message


def test_a_valid_spec_becomes_its_value() -> None:
    spec = m.parse_spec(GOOD, "vc1.yaml")
    assert spec.frontend.name == "frontend-0-0-0"
    assert spec.frontend.memory == 2048
    assert spec.computes is not None and spec.computes.count == 4
    assert spec.computes.attributes == {"kvm_autostart": "true"}


def test_an_unknown_key_is_named_with_its_line() -> None:
    text = GOOD.replace("  memory: 2048\n", "  memroy: 2048\n")
    msg = refused(text)
    assert msg.startswith("vc1.yaml line 5: frontend.memroy: unknown key 'memroy'"), msg
    assert "memory" in msg  # the keys it knows


def test_a_wrong_type_is_named_with_its_line() -> None:
    msg = refused(GOOD.replace("  count: 4", "  count: four"))
    assert msg == 'vc1.yaml line 7: computes.count: "four" is not of type integer', msg
    msg = refused(GOOD.replace('{kvm_autostart: "true"}', "{kvm_autostart: true}"))
    assert msg.startswith("vc1.yaml line 9: computes.attributes.kvm_autostart: true is not of "
                          "type string (quote it)"), msg  # fmt: skip


def test_an_impossible_value_is_named_with_its_line() -> None:
    msg = refused(GOOD.replace("  count: 4", "  count: -3"))
    assert msg == "vc1.yaml line 7: computes.count: -3 is less than the minimum of 0", msg
    msg = refused(GOOD.replace("memory: 2048", "memory: 0"))
    assert msg.startswith("vc1.yaml line 5: frontend.memory: 0 is less than the minimum"), msg
    msg = refused(GOOD + "vlan: 5000\n")
    assert msg.startswith("vc1.yaml line 10: vlan: 5000 is greater than the maximum"), msg


def test_a_node_deep_in_a_list_is_placed() -> None:
    text = GOOD.replace("  count: 4\n", "  nodes:\n  - {name: a}\n  - {name: b, cpus: 0}\n")
    msg = refused(text)
    assert msg.startswith("vc1.yaml line 9: computes.nodes[1].cpus: 0 is less than"), msg


def test_pairs_that_exclude_each_other() -> None:
    text = GOOD.replace("  count: 4\n", "  count: 2\n  nodes: [{name: a}]\n")
    assert refused(text) == "vc1.yaml line 8: computes.nodes: give count or nodes, not both"
    text = GOOD.replace("  memory: 2048\n", "  disk: 4\n  disks: [{spec: 'x', size: 1}]\n")
    assert "frontend.disks: give disk (one default disk) or disks" in refused(text)
    text = GOOD.replace("  count: 4\n", "  nodes: [{name: a}, {name: a}]\n")
    assert "computes.nodes[1].name: a is named twice" in refused(text)


def test_required_keys_and_version() -> None:
    assert "frontend: 'ip' is required" in refused("version: 1\nfrontend: {name: x}\n")
    assert "version" in refused(GOOD.replace("version: 1", "version: 2"))
    assert refused("") == "vc1.yaml: empty: a spec starts with 'version: 1'"


def test_yaml_is_read_safely_no_python_objects() -> None:
    """The attack: a YAML tag that an unsafe loader turns into a call. safe_load refuses it."""
    evil = GOOD + "extra: !!python/object/apply:os.system ['touch /tmp/fd-pwned']\n"
    msg = refused(evil)
    assert "not valid YAML" in msg and "line 10" in msg, msg
    assert not Path("/tmp/fd-pwned").exists()


def test_not_yaml_at_all() -> None:
    msg = refused("version: 1\nfrontend: [unclosed\n")
    assert msg.startswith("vc1.yaml line 3: not valid YAML"), msg


def test_json_is_read_too_with_its_line() -> None:
    data = m.to_data(m.parse_spec(GOOD))
    text = json.dumps(data, indent=2)
    assert m.parse_spec(text) == m.parse_spec(GOOD)
    bad = text.replace('"memory": 2048', '"memory": "lots"')
    msg = refused(bad)
    assert msg.startswith("vc1.yaml line 6: frontend.memory:"), msg
    assert refused("{").startswith("vc1.yaml line 1: not valid JSON")


def test_output_reads_back_as_the_same_spec() -> None:
    spec = m.parse_spec(GOOD)
    for fmt in ("yaml", "json"):
        assert m.parse_spec(m.render_spec(spec, fmt)) == spec


def test_nodes_print_one_per_line() -> None:
    spec = m.parse_spec(
        GOOD.replace("  count: 4\n", "  nodes:\n  - {name: a, container: c0}\n  - {name: b}\n")
    )
    text = m.render_spec(spec)
    assert "  - {name: a, container: c0}\n  - {name: b}\n" in text


def test_the_published_schema_is_the_one_used(regenerate_golden: bool) -> None:
    if regenerate_golden:
        DOCS.write_text(m.schema_text())
    assert DOCS.read_text() == m.schema_text(), (
        "docs/cluster-spec.schema.json is stale: run pytest --regenerate-golden "
        "tests/services/spec/test_model.py"
    )
    import jsonschema

    jsonschema.validators.validator_for(m.SCHEMA).check_schema(json.loads(DOCS.read_text()))


def test_too_large_a_spec_is_refused_before_it_is_parsed() -> None:
    big = "#" * (m.MAX_SPEC_BYTES + 1)
    assert "larger than" in refused(big)
