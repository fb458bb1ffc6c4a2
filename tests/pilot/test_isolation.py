"""`pip install flightdeck` without the server extra gives a working pilot.

The pilot path must import neither the database (SQLAlchemy, Alembic, psycopg), nor libvirt,
nor the HTTP server: each test runs a fresh interpreter in which those modules cannot be
imported at all (`sys.modules[name] = None` makes any import of them fail).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SERVER_ONLY = ("sqlalchemy", "alembic", "psycopg", "libvirt", "starlette", "uvicorn",
               "pyroute2", "schemathesis")

BLOCK = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in SERVER_ONLY)


def run(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-c", BLOCK + textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
    )


def imported(stderr: str) -> set[str]:
    """Top-level packages in `-X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_pilot_modules_import_without_server_packages() -> None:
    done = run("""
        import flightdeck.pilot.client, flightdeck.pilot.commands, flightdeck.pilot.keyfile
        import flightdeck.pilot.main
        print("ok")
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
    assert not imported(done.stderr) & set(SERVER_ONLY)


def test_pilot_runs_create_keys_and_help_without_server_packages(tmp_path: Path) -> None:
    done = run("""
        from flightdeck.pilot.main import main
        main(["create", "keys", "key=k.pem", "passphrase=no"])
    """, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert not imported(done.stderr) & set(SERVER_ONLY)
    done = run("from flightdeck.pilot.main import main\nmain(['help'])")
    assert done.returncode == 0 and "pilot set host power" in done.stdout


def test_pilot_signs_a_request_without_server_packages(tmp_path: Path) -> None:
    """Up to the socket: the request is signed, and an absent Airboss is reported plainly."""
    done = run("""
        from flightdeck.pilot.main import main
        main(["create", "keys", "key=k.pem", "passphrase=no"])
    """, cwd=tmp_path)
    assert done.returncode == 0
    done = run("""
        from flightdeck.pilot.main import main
        main(["set", "host", "power", "host=76:77:6e:40:00:02", "action=on", "key=k.pem",
              "airboss=127.0.0.1:1"])
    """, cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot reach the Airboss at http://127.0.0.1:1" in done.stderr
    assert "ssh -L 8677:localhost:8677" in done.stderr
    assert not imported(done.stderr) & set(SERVER_ONLY)


def test_base_install_needs_only_pure_python_wheels() -> None:
    """pyproject: the base dependencies are the client's (no libvirt, no database)."""
    import tomllib

    project = tomllib.loads(
        (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    for name in SERVER_ONLY:
        assert name not in base
    assert project["scripts"]["pilot"] == "flightdeck.pilot.main:main"
