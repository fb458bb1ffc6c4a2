"""pilot on Windows and macOS (the guide §3.5): nothing POSIX-only is imported unless a serial
console is attached to a POSIX terminal.

Each check runs pilot in a fresh interpreter whose import system refuses the modules Windows
lacks (termios, fcntl, tty, pty, resource, grp, pwd), as ImportError, the way they are missing
there; the commands must work, and none of those modules may have been imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flightdeck.errors import UserError
from flightdeck.pilot.console import raw_terminal

POSIX_ONLY = ("termios", "fcntl", "tty", "pty", "resource", "grp", "pwd")

WITHOUT_POSIX = f"""
import sys
BLOCKED = {POSIX_ONLY!r}
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Missing())
for name in BLOCKED:
    sys.modules.pop(name, None)
sys.argv = ["pilot", *sys.argv[1:]]
from flightdeck.pilot.main import main
try:
    main()
finally:
    loaded = sorted(set(BLOCKED) & set(sys.modules))
    sys.stderr.write(f"POSIX-ONLY LOADED: {{loaded}}\\n")
"""


def pilot_without_posix(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_POSIX, *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=cwd)


def test_pilot_runs_without_posix_modules(site: Any, alice: Any, tmp_path: Path) -> None:
    srv = site.server()
    done = pilot_without_posix("help", cwd=tmp_path)
    assert done.returncode == 0 and "pilot set host power" in done.stdout, done.stderr
    assert "POSIX-ONLY LOADED: []" in done.stderr
    done = pilot_without_posix("create", "keys", "key=mine.key", "passphrase=no", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "POSIX-ONLY LOADED: []" in done.stderr
    (tmp_path / "mine.pem").write_text(done.stdout)  # the public key it printed
    site.rocks.ok("add", "host", "key", site.cluster_a[0], f"key={tmp_path / 'mine.pem'}")
    fe = site.mac(site.cluster_a[0])
    done = pilot_without_posix("list", "host", "macs", f"host={fe}", "key=mine.key",
                               f"airboss={srv.address}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {site.mac(h) for h in site.cluster_a} <= set(done.stdout.split())
    assert "POSIX-ONLY LOADED: []" in done.stderr
    done = pilot_without_posix("set", "host", "power", f"host={site.mac(site.cluster_a[1])}",
                               "action=on", "key=mine.key", f"airboss={srv.address}",
                               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "POSIX-ONLY LOADED: []" in done.stderr


def test_a_terminal_without_termios_or_msvcrt_is_explained(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    for name in ("termios", "tty", "msvcrt"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
    with pytest.raises(UserError, match="neither with termios nor with msvcrt"):
        raw_terminal(0)
