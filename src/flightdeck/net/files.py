"""Writing rendered network files on this machine, under a root directory (`/` by default).

A file is written only when its content or mode differs (atomically: a temporary file, then a
rename); a file the rendering marks absent is removed; files matching the rendering's owned
patterns that it no longer lists are removed. The result lists what changed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os

from flightdeck.errors import DriverError
from flightdeck.net.render import Rendering


def under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


Backup = dict[str, tuple[bytes, int] | None]


def _save(path: str, backup: Backup | None) -> None:
    if backup is None or path in backup:
        return
    try:
        with open(path, "rb") as f:
            backup[path] = (f.read(), os.stat(path).st_mode & 0o7777)
    except FileNotFoundError:
        backup[path] = None


def _write(path: str, content: str, mode: int, backup: Backup | None) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            same = f.read() == content
        if same and (os.stat(path).st_mode & 0o7777) == mode:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    _save(path, backup)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.fdnew"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def write_local(rendering: Rendering, root: str = "/", backup: Backup | None = None) -> list[str]:
    """Make the files under `root` match the rendering; the changes, as sentences.

    With `backup`, what each changed file held before is recorded there, for `restore`.
    """
    changes: list[str] = []
    keep: set[str] = set()
    try:
        for f in rendering.files:
            path = under(root, f.path)
            keep.add(path)
            if f.content is None:
                if os.path.lexists(path):
                    _save(path, backup)
                    os.remove(path)
                    changes.append(f"remove {path}")
            elif _write(path, f.content, f.mode, backup):
                changes.append(f"write {path}")
        for directory, pattern in rendering.owned:
            where = under(root, directory)
            with contextlib.suppress(FileNotFoundError):
                for name in sorted(os.listdir(where)):
                    path = os.path.join(where, name)
                    if fnmatch.fnmatch(name, pattern) and path not in keep:
                        _save(path, backup)
                        os.remove(path)
                        changes.append(f"remove {path}")
    except OSError as exc:
        raise DriverError(f"cannot write the network files under {root}: {exc}") from None
    return changes


def restore(backup: Backup) -> list[str]:
    """Put back what `write_local` changed; the problems, if any."""
    problems = []
    for path, old in backup.items():
        try:
            if old is None:
                if os.path.lexists(path):
                    os.remove(path)
            else:
                content, mode = old
                with open(path, "wb") as f:
                    f.write(content)
                os.chmod(path, mode)
        except OSError as exc:
            problems.append(f"could not restore {path}: {exc}")
    return problems
