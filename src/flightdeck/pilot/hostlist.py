"""Slurm hostlists: `compute-0-[0-3,7]`, `c[1-2]-[0-1]`, `a,b,c` -> the names, in order.

What Slurm hands a `ResumeProgram`/`SuspendProgram` (and what `scontrol show hostnames`
expands); bounded, so a hostile list cannot make pilot build millions of names.
"""

from __future__ import annotations

import itertools
import re

from flightdeck.errors import UserError

#: Most names one hostlist may expand to.
MAX_NAMES = 4096
_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "[":
            depth += 1
            if depth > 1:
                raise UserError(f"hostlist {text!r}: brackets cannot nest")
        elif c == "]":
            depth -= 1
            if depth < 0:
                raise UserError(f"hostlist {text!r}: ']' without '['")
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise UserError(f"hostlist {text!r}: '[' without ']'")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _numbers(spec: str, text: str) -> list[str]:
    out: list[str] = []
    for item in spec.split(","):
        m = _RANGE.fullmatch(item.strip())
        if not m:
            raise UserError(f"hostlist {text!r}: [{spec}] must hold numbers and ranges (0-31)")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if int(hi) < int(lo) or int(hi) - int(lo) >= MAX_NAMES:
            raise UserError(f"hostlist {text!r}: range {item} is empty or too large")
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        out += [str(n).zfill(width) for n in range(int(lo), int(hi) + 1)]
    return out


def expand(text: str) -> list[str]:
    """The names of a hostlist, in order, without duplicates; `UserError` if malformed."""
    if len(text) > 65536:
        raise UserError("the hostlist is too long")
    names: list[str] = []
    for part in _split_top(text):
        pieces = re.split(r"(\[[^\]]*\])", part)
        choices: list[list[str]] = []
        for piece in pieces:
            if piece.startswith("["):
                choices.append(_numbers(piece[1:-1], text))
            elif piece:
                if not re.fullmatch(r"[A-Za-z0-9._:-]+", piece):
                    raise UserError(f"hostlist {text!r}: {piece!r} is not part of a host name")
                choices.append([piece])
        total = 1
        for c in choices:
            total *= len(c)
        if total + len(names) > MAX_NAMES:
            raise UserError(f"hostlist {text!r} names more than {MAX_NAMES} hosts")
        names += ["".join(combo) for combo in itertools.product(*choices)]
    if not names:
        raise UserError("the hostlist names no host")
    return list(dict.fromkeys(names))
