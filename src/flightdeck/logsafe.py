"""One log field from a string someone else chose: printable, on one line, bounded.

Our daemons write one line per decision, and a reader (an admin, `grep`, a log shipper) must be
able to trust that a line is one event written by us. A client controls many of the strings we
log (a request path, a completion body, a DHCP host name, an error message quoting them), and a
newline in one of them would start a forged line; an escape sequence would rewrite the admin's
terminal. `escape` makes any such string safe to put in a line:

- backslash becomes `\\\\`, so an escape in the output is always ours and the original can be
  recovered exactly;
- C0 controls, DEL, C1 controls and the Unicode line and paragraph separators become `\\xNN` or
  `\\uNNNN` (`\\x0a` for a newline), which no log reader takes for a line break;
- anything longer than `limit` characters (after escaping) is cut, with `...` at the end, so one
  field can never make a line megabytes long.

Pure standard library and no Flightdeck imports: the boot server, insert-ethers, the dnsmasq
hook and the Airboss can all use it.
"""

from __future__ import annotations

import re

#: Longest field, in characters after escaping; a request path is rarely longer than 100.
DEFAULT_LIMIT = 512

# Everything str.splitlines() breaks on, every other control character, and the backslash.
_UNSAFE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """`value` as text that stays on one line of a log and is at most `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    out = _UNSAFE.sub(_one, text[: limit * 4 + 1])  # an escape is at most 6 chars per char
    return out if len(out) <= limit else out[: max(limit - 3, 0)] + "..."
