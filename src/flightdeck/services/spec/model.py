"""A virtual cluster as a spec (clusters as code): its schema, reading and writing it.

`rocks report cluster` prints a cluster as a spec and `rocks apply cluster file=` makes the
database (and the containers) match one. This module is the spec's pure half: the JSON Schema
(published as docs/cluster-spec.schema.json, and what every spec is validated against), the
typed value a valid spec becomes (`ClusterSpec`), and text in and out (YAML or JSON).

YAML is read with PyYAML's `safe_load` only (plain data: no tags, no objects), JSON with the
standard library. A spec that does not validate is refused with its line and key named
(`cluster.yaml line 12: computes.nodes[3].memory: 0 is less than the minimum of 1`): the line
comes from a walk of the YAML node tree, done only when there is an error to place.

What a spec says and what it leaves alone: a key that is present is the truth (an attribute
map lists exactly the host's attributes, a key list exactly its keys, `count` exactly how many
computes); a key that is absent leaves that part of the cluster as it is (and gives the
defaults of `rocks add cluster` to what is created). Memory in MB (2^20 bytes), disks in GB
(10^9 bytes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flightdeck.errors import UserError

VERSION = 1
#: Largest spec read, in bytes (a 10,000-node spec with overrides is about 2 MB).
MAX_SPEC_BYTES = 16 * 1024 * 1024
BOOT_ACTIONS = ("install", "os", "run")
PLACEMENTS = ("round-robin", "capacity")
NAMINGS = ("rocks", "cluster")
#: The attribute-name rule of the database (`db.attrs.ATTR_NAME_RE`), as a schema pattern.
ATTR_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"

# The schema ------------------------------------------------------------------------------------

_NAME = {"type": "string", "minLength": 1, "maxLength": 253}
_TEXT = {"type": "string", "maxLength": 1024}
_ATTRS = {
    "type": "object",
    "description": "host attributes, exactly (name -> value, values as strings)",
    "propertyNames": {"pattern": ATTR_NAME},
    "additionalProperties": {"type": "string", "maxLength": 65536},
}
_VM = {
    "cpus": {"type": "integer", "minimum": 1, "maximum": 4096, "description": "vCPUs"},
    "memory": {
        "type": "integer",
        "minimum": 1,
        "maximum": 64 * 1024 * 1024,
        "description": "MB (2^20 bytes)",
    },
    "disk": {
        "type": "integer",
        "minimum": 1,
        "maximum": 1_000_000,
        "description": "GB (10^9 bytes) of its one default disk (<kvm_disk_dir>/<name>.vda)",
    },
    "disks": {
        "type": "array",
        "minItems": 1,
        "maxItems": 26,
        "description": "its disks, in the original's spec strings, when not the one default",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["spec", "size"],
            "properties": {
                "spec": {
                    "type": "string",
                    "maxLength": 1024,
                    "description": "<type>:<path>,<device>,<bus>",
                },
                "size": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            },
        },
    },
    "boot": {"enum": list(BOOT_ACTIONS), "description": "what it does at its next boot"},
    "install-action": {**_TEXT, "minLength": 1, "description": "boot action row of install"},
    "run-action": {**_TEXT, "minLength": 1, "description": "boot action row of run"},
    "cdrom": {
        "type": ["string", "null"],
        "maxLength": 1024,
        "description": "absolute path of an ISO on its container, or null",
    },
    "attributes": _ATTRS,
    "plugins": {
        "type": "object",
        "description": "attributes that installed plugins declare, by plugin",
        "additionalProperties": _ATTRS,
    },
    "keys": {
        "type": "array",
        "maxItems": 1024,
        "description": "owner public keys (Ed25519, RSA >= 2048), exactly",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["key"],
            "properties": {
                "key": {"type": "string", "minLength": 1, "maxLength": 16384},
                "description": {"type": ["string", "null"], "maxLength": 4096},
            },
        },
    },
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://flightdeck.invalid/schemas/cluster-spec-1.json",
    "title": "Flightdeck virtual cluster spec, version 1",
    "description": "What `rocks report cluster` prints and `rocks apply cluster file=` reads. "
    "A key that is present is applied exactly; a key that is absent leaves that part as it "
    "is. Memory in MB (2^20 bytes), disks in GB (10^9 bytes).",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "frontend"],
    "properties": {
        "version": {"const": VERSION},
        "frontend": {
            "type": "object",
            "additionalProperties": False,
            "required": ["ip"],
            "properties": {
                "name": {**_NAME, "description": "the frontend VM's name (default frontend-R-R-S)"},
                "fqdn": {**_NAME, "description": "its name on the public network"},
                "ip": {**_NAME, "description": "its public IPv4 address (names the cluster)"},
                "gateway": {**_NAME, "description": "its default gateway (on public)"},
                "container": {**_NAME, "description": "the physical host it runs on"},
                **_VM,
            },
        },
        "vlan": {"type": "integer", "minimum": 2, "maximum": 4094},
        "network": {**_NAME, "description": "the network its VLAN rides on (private)"},
        "computes": {
            "type": "object",
            "additionalProperties": False,
            "description": "count (how many, placed by the planner) or nodes (exactly these)",
            "properties": {
                "count": {"type": "integer", "minimum": 0, "maximum": 100_000},
                "cpus": _VM["cpus"],
                "memory": _VM["memory"],
                "disk": _VM["disk"],
                "containers": {
                    "type": "array",
                    "items": _NAME,
                    "maxItems": 10_000,
                    "description": "where new computes go, round robin in this order",
                },
                "placement": {"enum": list(PLACEMENTS)},
                "naming": {
                    "enum": list(NAMINGS),
                    "description": "rocks: hosted-vm-R-R-S; cluster: vm-<frontend>-<i>",
                },
                "attributes": {**_ATTRS, "description": "attributes of every compute"},
                "nodes": {
                    "type": "array",
                    "maxItems": 100_000,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {"name": _NAME, "container": _NAME, **_VM},
                    },
                },
            },
        },
    },
}


class SpecError(UserError):
    """A spec refused: its line and key named."""

    code = "invalid"


# The value -------------------------------------------------------------------------------------

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class DiskItem:
    spec: str
    size: int


@dataclass(frozen=True)
class KeyItem:
    key: str
    description: str | None = None


@dataclass(frozen=True)
class VMItem:
    """What a spec says about one VM; None: not said (left as it is, or the default)."""

    name: str | None = None
    container: str | None = None
    cpus: int | None = None
    memory: int | None = None
    disk: int | None = None
    disks: tuple[DiskItem, ...] | None = None
    boot: str | None = None
    install_action: str | None = None
    run_action: str | None = None
    #: The CD-ROM; `cdrom_given` tells an explicit null (empty drive) from "not said".
    cdrom: str | None = None
    cdrom_given: bool = False
    attributes: Mapping[str, str] | None = None
    plugins: Mapping[str, Mapping[str, str]] | None = None
    keys: tuple[KeyItem, ...] | None = None
    #: Where it is in the spec (("frontend",) or ("computes", "nodes", 3)).
    path: Path = ()


@dataclass(frozen=True)
class FrontendItem(VMItem):
    ip: str = ""
    fqdn: str | None = None
    gateway: str | None = None


@dataclass(frozen=True)
class ComputesItem:
    count: int | None = None
    nodes: tuple[VMItem, ...] | None = None
    cpus: int | None = None
    memory: int | None = None
    disk: int | None = None
    containers: tuple[str, ...] | None = None
    placement: str | None = None
    naming: str | None = None
    attributes: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ClusterSpec:
    frontend: FrontendItem
    vlan: int | None = None
    network: str | None = None
    computes: ComputesItem | None = None
    #: The text it was read from and its name, to place errors found later (`where`).
    source: str = field(default="", compare=False, repr=False)
    text: str = field(default="", compare=False, repr=False)

    def where(self, path: Path) -> str:
        """`<source> line N: a.b[3].c` for an error about `path` (the line when it is known)."""
        return locate(self.text, self.source, path)

    def refuse(self, path: Path, message: str) -> SpecError:
        return SpecError(f"{self.where(path)}: {message}")


# Reading ---------------------------------------------------------------------------------------


def dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _line_of(text: str, path: Sequence[str | int]) -> int | None:
    """The line (1-based) of `path` in the YAML (or JSON) text: a walk of its node tree."""
    import yaml

    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None if node is None else node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def locate(text: str, source: str, path: Sequence[str | int]) -> str:
    line = _line_of(text, path) if text else None
    where = f"{source} line {line}" if line is not None else source
    return f"{where}: {dotted(path)}"


def _validator() -> Any:
    import jsonschema

    global _VALIDATOR
    if _VALIDATOR is None:
        cls = jsonschema.validators.validator_for(SCHEMA)
        cls.check_schema(SCHEMA)
        _VALIDATOR = cls(SCHEMA)
    return _VALIDATOR


_VALIDATOR: Any = None


def _message(error: Any) -> tuple[Path, str]:
    """The path and a one-line message of a schema error, in the spec's own words."""
    path: Path = tuple(error.absolute_path)
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        unknown = extra[0] if extra else "?"
        hint = f" (known: {', '.join(allowed)})" if allowed else ""
        return (*path, unknown), f"unknown key {unknown!r}{hint}"
    if kind == "required":
        return path, error.message.replace("is a required property", "is required")
    if kind == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        got = (
            json.dumps(error.instance) if _plain(error.instance) else type(error.instance).__name__
        )
        hint = " (quote it)" if want == "string" and not isinstance(error.instance, dict) else ""
        return path, f"{got} is not of type {want}{hint}"
    if kind == "propertyNames":
        return path, f"invalid attribute name {error.instance!r}: letters, digits, _ . -"
    if kind == "pattern" and path == ():
        return path, error.message
    return path, error.message


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def parse_spec(text: str, source: str = "spec") -> ClusterSpec:
    """A spec from YAML or JSON text; `SpecError` (line and key named) when it is not valid."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: larger than {MAX_SPEC_BYTES // (1024 * 1024)} MB")
    data = _load(text, source)
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        # The most precise error: the deepest path, which is also the one a user fixes first.
        best = max(errors, key=lambda e: len(e.absolute_path))
        path, message = _message(best)
        raise SpecError(f"{locate(text, source, path)}: {message}")
    return _build(data, source, text)


def _load(text: str, source: str) -> Any:
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError as exc:
            line = getattr(exc, "lineno", None)
            where = f"{source} line {line}" if line else source
            raise SpecError(f"{where}: not valid JSON: {getattr(exc, 'msg', exc)}") from None
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source} line {mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        raise SpecError(f"{source}: empty: a spec starts with 'version: {VERSION}'")
    return data


def _vm(d: Mapping[str, Any], path: Path, cls: type[VMItem] = VMItem, **extra: Any) -> Any:
    disks = d.get("disks")
    keys = d.get("keys")
    plugins = d.get("plugins")
    return cls(
        name=d.get("name"),
        container=d.get("container"),
        cpus=d.get("cpus"),
        memory=d.get("memory"),
        disk=d.get("disk"),
        disks=None if disks is None else tuple(DiskItem(x["spec"], x["size"]) for x in disks),
        boot=d.get("boot"),
        install_action=d.get("install-action"),
        run_action=d.get("run-action"),
        cdrom=d.get("cdrom"),
        cdrom_given="cdrom" in d,
        attributes=d.get("attributes"),
        plugins=None if plugins is None else {p: dict(a) for p, a in plugins.items()},
        keys=None if keys is None else tuple(KeyItem(k["key"], k.get("description")) for k in keys),
        path=path,
        **extra,
    )


def _build(data: Mapping[str, Any], source: str, text: str) -> ClusterSpec:
    fe = data["frontend"]
    frontend = _vm(
        fe, ("frontend",), FrontendItem, ip=fe["ip"], fqdn=fe.get("fqdn"), gateway=fe.get("gateway")
    )
    computes = None
    c = data.get("computes")
    if c is not None:
        nodes = c.get("nodes")
        containers = c.get("containers")
        computes = ComputesItem(
            count=c.get("count"),
            nodes=None
            if nodes is None
            else tuple(_vm(n, ("computes", "nodes", i)) for i, n in enumerate(nodes)),
            cpus=c.get("cpus"),
            memory=c.get("memory"),
            disk=c.get("disk"),
            containers=None if containers is None else tuple(containers),
            placement=c.get("placement"),
            naming=c.get("naming"),
            attributes=c.get("attributes"),
        )
    spec = ClusterSpec(
        frontend, data.get("vlan"), data.get("network"), computes, source=source, text=text
    )
    _check(spec)
    return spec


def _check(spec: ClusterSpec) -> None:
    """What the schema cannot say: pairs that exclude each other, names given twice."""
    vms: list[VMItem] = [spec.frontend]
    c = spec.computes
    if c is not None:
        if c.count is not None and c.nodes is not None:
            raise spec.refuse(("computes", "nodes"), "give count or nodes, not both")
        vms += list(c.nodes or ())
    seen: dict[str, Path] = {}
    for vm in vms:
        if vm.disk is not None and vm.disks is not None:
            raise spec.refuse((*vm.path, "disks"), "give disk (one default disk) or disks")
        if vm.name is not None:
            if vm.name in seen:
                raise spec.refuse((*vm.path, "name"), f"{vm.name} is named twice")
            seen[vm.name] = vm.path


# Writing ---------------------------------------------------------------------------------------


def _vm_out(vm: VMItem) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (
        ("name", vm.name),
        ("container", vm.container),
        ("cpus", vm.cpus),
        ("memory", vm.memory),
        ("disk", vm.disk),
    ):
        if value is not None:
            out[key] = value
    if vm.disks is not None:
        out["disks"] = [{"spec": d.spec, "size": d.size} for d in vm.disks]
    for key, value in (
        ("boot", vm.boot),
        ("install-action", vm.install_action),
        ("run-action", vm.run_action),
    ):
        if value is not None:
            out[key] = value
    if vm.cdrom_given:
        out["cdrom"] = vm.cdrom
    if vm.attributes is not None:
        out["attributes"] = dict(vm.attributes)
    if vm.plugins:
        out["plugins"] = {p: dict(a) for p, a in vm.plugins.items()}
    if vm.keys is not None:
        out["keys"] = [
            {"key": k.key, **({"description": k.description} if k.description else {})}
            for k in vm.keys
        ]
    return out


def to_data(spec: ClusterSpec) -> dict[str, Any]:
    """The spec as plain JSON values, keys in a fixed order (what is printed)."""
    fe = spec.frontend
    front: dict[str, Any] = {"name": fe.name} if fe.name else {}
    for key, value in (("fqdn", fe.fqdn), ("ip", fe.ip), ("gateway", fe.gateway)):
        if value is not None:
            front[key] = value
    front.update({k: v for k, v in _vm_out(fe).items() if k != "name"})
    out: dict[str, Any] = {"version": VERSION, "frontend": front}
    if spec.vlan is not None:
        out["vlan"] = spec.vlan
    if spec.network is not None:
        out["network"] = spec.network
    c = spec.computes
    if c is not None:
        comp: dict[str, Any] = {}
        pairs: tuple[tuple[str, Any], ...] = (
            ("count", c.count),
            ("cpus", c.cpus),
            ("memory", c.memory),
            ("disk", c.disk),
            ("placement", c.placement),
            ("naming", c.naming),
        )
        for key, value in pairs:
            if value is not None:
                comp[key] = value
        if c.containers is not None:
            comp["containers"] = FlowList(c.containers)
        if c.attributes is not None:
            comp["attributes"] = dict(c.attributes)
        if c.nodes is not None:
            comp["nodes"] = [Flow(_vm_out(n)) for n in c.nodes]
        out["computes"] = comp
    return out


HEADER = (
    "# A Flightdeck virtual cluster (rocks report cluster): rocks apply cluster file=<this>\n"
    "# Schema: docs/cluster-spec.schema.json. Memory in MB, disks in GB.\n"
)


class Flow(dict[str, Any]):
    """A mapping printed on one line (a node of the computes: one line per node)."""


class FlowList(list[Any]):
    """A list printed on one line."""


def _dumper() -> Any:
    import yaml

    base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc, valid-type]
        pass

    def flow_map(d: Any, data: Flow) -> Any:
        return d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)

    def flow_list(d: Any, data: FlowList) -> Any:
        return d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)

    Dumper.add_representer(Flow, flow_map)
    Dumper.add_representer(FlowList, flow_list)
    return Dumper


def render_spec(spec: ClusterSpec, fmt: str = "yaml") -> str:
    """The spec as YAML (block style, a comment on top) or JSON (indented)."""
    data = to_data(spec)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt != "yaml":
        raise UserError(f"format={fmt!r}: use yaml or json")
    import yaml

    body: str = yaml.dump(
        data, Dumper=_dumper(), sort_keys=False, default_flow_style=False, width=100,
        allow_unicode=True,
    )  # fmt: skip
    return HEADER + body


def schema_text() -> str:
    """The JSON Schema as published (docs/cluster-spec.schema.json)."""
    return json.dumps(SCHEMA, indent=2) + "\n"
