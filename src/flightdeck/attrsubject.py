"""Whose attribute a value is: a host's, an appliance's or the global one, for messages.

An attribute value is checked in two places: when a VM starts or a network is synced (the value
as resolved for one host) and when an administrator sets it (`rocks set host attr`, `set
appliance attr`, `set attr`). Both use the same validator, which names the attribute's owner
and the command that fixes it through a `Subject`, so a mistake reads the same either way.

Pure: no imports beyond the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Subject:
    """The owner of an attribute value: `kind` host, appliance or global, and its name."""

    kind: Literal["host", "appliance", "global"]
    name: str = ""

    def attr(self, attribute: str) -> str:
        """`attribute cpu_mode of host compute-0-0-0`, `global attribute cpu_mode`..."""
        if self.kind == "global":
            return f"global attribute {attribute}"
        return f"attribute {attribute} of {self.kind} {self.name}"

    def fix(self, attribute: str, value: str = "...") -> str:
        """The command that sets it again: `rocks set host attr compute-0-0-0 cpu_mode ...`."""
        if self.kind == "global":
            return f"rocks set attr {attribute} {value}"
        return f"rocks set {self.kind} attr {self.name} {attribute} {value}"


def subject(who: str | Subject) -> Subject:
    """A host name, or a Subject as it is."""
    return who if isinstance(who, Subject) else Subject("host", who)
