"""cli/params.py: the Rocks grammar (bare arguments, `name=value`, positional parameters)."""

from __future__ import annotations

import pytest

from flightdeck.cli.params import (
    BOOL,
    COUNT,
    HOSTS,
    INT,
    ONE_HOST,
    POSITIVE,
    SOME_HOSTS,
    Args,
    Param,
    parse,
    split_tokens,
    to_bool,
)
from flightdeck.errors import UsageError, UserError

# The declarations of real commands, copied so that these tests pin the grammar, not one command.
CLUSTER_PARAMS = (
    Param("ip", "public IP", required=True, positional=True),
    Param("num-computes", "computes", COUNT, required=True, positional=True),
    Param("vlan", "VLAN id", INT),
    Param("cluster-naming", "names", BOOL, default=False),
)
HOST_ATTR_PARAMS = (
    Param("attr", "attribute name", required=True, positional=True),
    Param("value", "value", required=True, positional=True),
)
ADD_HOST_PARAMS = (
    Param("membership", "appliance", required=True),
    Param("rack", "rack", COUNT, default=0),
    Param("cpus", "cpus", POSITIVE, default=1),
)


# split_tokens ---------------------------------------------------------------------------------


def test_name_value_tokens_are_parameters_and_the_rest_arguments() -> None:
    bare, named = split_tokens(["compute-0-0", "cpus=4", "Comment=a=b", "x y"])
    assert bare == ["compute-0-0", "x y"]
    # Names are case-insensitive; everything after the first '=' is the value.
    assert named == [("cpus", "4"), ("comment", "a=b")]


def test_select_text_is_an_argument_even_with_an_equals_sign() -> None:
    bare, named = split_tokens(["select * from hosts where id=1", "SELECT a=1"])
    assert bare == ["select * from hosts where id=1", "SELECT a=1"]
    assert named == []


def test_tokens_not_shaped_like_a_parameter_name_are_arguments() -> None:
    # Only [A-Za-z0-9_+-]+ before '=' makes a parameter (reference §2.1).
    tokens = ["%' OR 1=1 --", "<cpu mode='host-model'/>", "a b=c", "=x"]
    bare, named = split_tokens(tokens)
    assert bare == tokens
    assert named == []


def test_value_may_contain_newlines_and_be_empty() -> None:
    _, named = split_tokens(["comment=", "value=line1\nline2"])
    assert named == [("comment", ""), ("value", "line1\nline2")]


# Positional parameters ------------------------------------------------------------------------


def test_positional_parameters_fill_in_declared_order() -> None:
    p = parse(["1.2.3.4", "2"], None, CLUSTER_PARAMS, "add cluster")
    assert p.args == []
    assert p["ip"] == "1.2.3.4"
    assert p["num_computes"] == 2
    assert p.given == {"ip", "num-computes"}


def test_positional_and_named_forms_give_the_same_result() -> None:
    a = parse(["1.2.3.4", "2"], None, CLUSTER_PARAMS, "add cluster")
    b = parse(["ip=1.2.3.4", "num-computes=2"], None, CLUSTER_PARAMS, "add cluster")
    assert a.params == b.params


def test_a_named_parameter_leaves_the_bare_token_for_the_next_positional() -> None:
    p = parse(["2", "ip=1.2.3.4"], None, CLUSTER_PARAMS, "add cluster")
    assert p["ip"] == "1.2.3.4"
    assert p["num_computes"] == 2


def test_too_many_bare_tokens_for_a_command_without_arguments() -> None:
    with pytest.raises(UsageError, match=r"too many arguments.*extra"):
        parse(["1.2.3.4", "2", "extra"], None, CLUSTER_PARAMS, "add cluster")


def test_many_args_commands_take_positional_parameters_from_the_end() -> None:
    p = parse(["a", "b", "kvm", "true"], SOME_HOSTS, HOST_ATTR_PARAMS, "set host attr")
    assert p.args == ["a", "b"]
    assert p["attr"] == "kvm"
    assert p["value"] == "true"


def test_many_args_with_one_named_parameter_takes_one_from_the_end() -> None:
    p = parse(["a", "b", "kvm", "value=true"], SOME_HOSTS, HOST_ATTR_PARAMS, "set host attr")
    assert p.args == ["a", "b"]
    assert (p["attr"], p["value"]) == ("kvm", "true")


def test_many_args_keep_their_minimum_before_filling_parameters() -> None:
    # One host is the minimum: "a kvm" is host a and attr kvm, and value is then missing.
    with pytest.raises(UsageError, match="needs value="):
        parse(["a", "kvm"], SOME_HOSTS, HOST_ATTR_PARAMS, "set host attr")


def test_one_host_commands_fill_parameters_after_the_host() -> None:
    params = (Param("iface", "device", required=True, positional=True), Param("mac", "MAC"))
    p = parse(["compute-0-0", "eth0", "mac=52:54:00:00:00:01"], ONE_HOST, params, "x")
    assert p.args == ["compute-0-0"]
    assert p["iface"] == "eth0"
    assert p["mac"] == "52:54:00:00:00:01"


def test_xml_value_given_positionally_is_kept_verbatim() -> None:
    xml = "<cpu mode='host-passthrough'><feature policy='require' name='vmx'/></cpu>"
    p = parse(["compute-0-0", "cpu_mode", xml], SOME_HOSTS, HOST_ATTR_PARAMS, "set host attr")
    assert p["value"] == xml


# Arguments ------------------------------------------------------------------------------------


def test_arguments_below_the_minimum_are_a_usage_error() -> None:
    with pytest.raises(UsageError, match="needs"):
        parse([], SOME_HOSTS, (), "remove host")


def test_arguments_above_the_maximum_are_a_usage_error() -> None:
    args = Args("name", "the new host's name", min=1, max=1)
    with pytest.raises(UsageError, match="at most 1"):
        parse(["a", "b", "membership=Compute"], args, ADD_HOST_PARAMS, "add host")


def test_a_command_without_arguments_refuses_bare_tokens() -> None:
    with pytest.raises(UsageError, match="takes no arguments"):
        parse(["stray"], None, (), "list network")


def test_hosts_may_be_empty_and_keep_their_order() -> None:
    assert parse([], HOSTS, (), "list host").args == []
    assert parse(["b", "a", "b"], HOSTS, (), "list host").args == ["b", "a", "b"]


# Named parameters -----------------------------------------------------------------------------


def test_unknown_parameter_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(UsageError) as exc:
        parse(["x", "membership=Compute", "bogus=1"], ONE_HOST, ADD_HOST_PARAMS, "add host")
    assert "unknown parameter 'bogus'" in exc.value.message
    assert "membership, rack, cpus" in exc.value.message
    assert exc.value.exit_code == 2


def test_parameter_given_twice_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="given twice"):
        parse(["x", "membership=a", "MEMBERSHIP=b"], ONE_HOST, ADD_HOST_PARAMS, "add host")


def test_required_parameter_missing_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="needs membership="):
        parse(["x"], ONE_HOST, ADD_HOST_PARAMS, "add host")


def test_defaults_apply_and_given_lists_only_what_was_typed() -> None:
    p = parse(["x", "membership=Compute"], ONE_HOST, ADD_HOST_PARAMS, "add host")
    assert p["rack"] == 0
    assert p["cpus"] == 1
    assert p.given == {"membership"}
    # The output parameters every command accepts.
    assert p["output_header"] is True
    assert p["output_col"] is None
    assert p["output_format"] == "table"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("cpus=abc", "cpus='abc' must be an integer"),
        ("cpus=0", "cpus=0 must be a positive integer"),
        ("cpus=-2", "cpus=-2 must be a positive integer"),
        ("cpus=1.5", "must be an integer"),
        ("cpus=", "must be an integer"),
        ("rack=-1", "rack=-1 must be zero or a positive integer"),
        ("rack=x1", "must be an integer"),
    ],
)
def test_malformed_numbers_are_user_errors(token: str, message: str) -> None:
    with pytest.raises(UserError) as exc:
        parse(["x", "membership=Compute", token], ONE_HOST, ADD_HOST_PARAMS, "add host")
    assert message in exc.value.message


def test_numbers_accept_surrounding_space_and_zero() -> None:
    p = parse(["x", "membership=C", "rack= 0 ", "cpus=08"], ONE_HOST, ADD_HOST_PARAMS, "a")
    assert (p["rack"], p["cpus"]) == (0, 8)


# Booleans -------------------------------------------------------------------------------------

TRUE = ["yes", "YES", "y", "Y", "on", "On", "true", "TRUE", "1", " yes "]
FALSE = ["no", "NO", "n", "N", "off", "OFF", "false", "False", "0", " no "]


@pytest.mark.parametrize("word", TRUE)
def test_true_words(word: str) -> None:
    assert to_bool(word) is True
    assert (
        parse([f"cluster-naming={word}", "1.2.3.4", "0"], None, CLUSTER_PARAMS, "a")[
            "cluster_naming"
        ]
        is True
    )


@pytest.mark.parametrize("word", FALSE)
def test_false_words(word: str) -> None:
    assert to_bool(word) is False
    assert (
        parse([f"cluster-naming={word}", "1.2.3.4", "0"], None, CLUSTER_PARAMS, "a")[
            "cluster_naming"
        ]
        is False
    )


@pytest.mark.parametrize("word", ["", "maybe", "2", "-1", "yess", "nope", "t", "f", "ja", "none"])
def test_anything_else_is_not_a_boolean(word: str) -> None:
    with pytest.raises(UserError, match="is not a boolean"):
        to_bool(word, "cluster-naming")
    with pytest.raises(UserError, match=r"cluster-naming=.* is not a boolean"):
        parse([f"cluster-naming={word}", "1.2.3.4", "0"], None, CLUSTER_PARAMS, "add cluster")


def test_output_header_is_a_boolean_parameter_of_every_command() -> None:
    assert parse(["output-header=no"], None, (), "list network")["output_header"] is False
    with pytest.raises(UserError, match="not a boolean"):
        parse(["output-header=nah"], None, (), "list network")
