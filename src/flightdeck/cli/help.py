"""Help and usage text, generated from the command declarations."""

from __future__ import annotations

import textwrap

from flightdeck.cli.command import Command
from flightdeck.cli.params import OUTPUT_PARAMS
from flightdeck.cli.program import ROCKS, Program


def usage_line(cls: type[Command], program: Program = ROCKS) -> str:
    parts = [f"{program.name} {cls.words}"]
    if cls.args is not None:
        parts.append(cls.args.usage(program.named_args))
    for p in cls.params:
        word = f"{p.name}=<{p.kind.label}>"
        if p.positional:
            word = f"{{{p.name}}}" if p.required else f"[{p.name}]"
        elif not p.required:
            word = f"[{word}]"
        parts.append(word)
    return " ".join(parts)


def _default(p_default: object, text: str | None) -> str:
    if text is not None:
        return text
    if p_default is None:
        return "-"
    if isinstance(p_default, bool):
        return "yes" if p_default else "no"
    return str(p_default)


def _fields(cls: type[Command]) -> list[str]:
    """The records of output-format=json (and csv): each field's key, type and meaning."""
    what = f": {cls.records}" if cls.records else ""
    out = [f"Fields of output-format=json and csv{what}:"]
    width = max(len(f.key) for f in cls.fields)
    types = max(len(f.type_text) for f in cls.fields)
    for f in cls.fields:
        extra = f" (with {f.when}=yes)" if f.when else ""
        table = "" if f.column is not None else " (not in the table)"
        out.append(f"  {f.key:<{width}} {f.type_text:<{types}} {f.help}{extra}{table}")
    out.append("")
    return out


def command_help(cls: type[Command], program: Program = ROCKS) -> str:
    out = [usage_line(cls, program), ""]
    if cls.summary:
        out += [cls.summary, ""]
    if cls.description:
        out += [textwrap.dedent(cls.description).strip(), ""]
    if cls.args is not None:
        usage = cls.args.usage(program.named_args)
        out += ["Arguments:", f"  {usage:<24} {cls.args.help}", ""]
    if cls.params:
        out.append("Parameters:")
        for p in cls.params:
            default = _default(p.default_for(program.name), p.default_text)
            req = "required" if p.required else f"default {default}"
            out.append(f"  {p.name + '=':<24} {p.help} ({p.kind.label}, {req})")
        out.append("")
    out.append("Output parameters: " + ", ".join(f"{p.name}=" for p in OUTPUT_PARAMS))
    out.append("")
    if cls.fields:
        out += _fields(cls)
    if cls.examples:
        out.append("Examples:")
        for ex in cls.examples:
            command = ex.command
            if command.startswith("rocks ") and program is not ROCKS:
                command = f"{program.name} {command[len('rocks ') :]}"
            out += [f"  $ {command}", f"    {ex.explanation}"]
        out.append("")
    if not cls.writes:
        out.append("This command does not need root.")
    return "\n".join(out).rstrip() + "\n"
