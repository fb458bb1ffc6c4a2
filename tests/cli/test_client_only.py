"""With only the client installed (`pip install flightdeck`), the server's commands say which
extra they need instead of a ModuleNotFoundError (issue 15).

Each program runs in a fresh interpreter whose import system refuses the server extra's
modules (sqlalchemy, libvirt, uvicorn, ...) as a client-only install would not have them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SERVER_ONLY = ("sqlalchemy", "alembic", "psycopg", "libvirt", "libvirtmod", "pyroute2",
               "starlette", "uvicorn", "wsproto", "yaml", "jsonschema")
CLIENT_ONLY = f"""
import runpy, sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SERVER_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Missing())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
SAYS = "this needs the server extra: pip install 'flightdeck[server]'"


def run(program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLIENT_ONLY, str(BIN / program), *args],
                          capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


@pytest.mark.parametrize("argv", [
    ("rocks", "list", "host"),
    ("rocks", "add", "cluster", "192.0.2.20", "2"),
    ("airboss", "serve"),
    ("insert-ethers",),
])
def test_server_commands_name_the_extra(argv: tuple[str, ...], tmp_path: Path) -> None:
    done = run(*argv, cwd=tmp_path)
    assert done.returncode != 0
    assert SAYS in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_the_client_commands_work(tmp_path: Path) -> None:
    done = run("pilot", "help", cwd=tmp_path)
    assert done.returncode == 0 and "pilot set host power" in done.stdout, done.stderr
    done = run("rocks", "create", "keys", "key=k.pem", "passphrase=no", cwd=tmp_path)
    assert done.returncode == 0 and "BEGIN PUBLIC KEY" in done.stdout, done.stderr
