"""The owner's default Airboss: environment, then /etc/flightdeck/client.env, never executed."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightdeck.pilot import settings
from flightdeck.pxe import identity


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "client.env"
    monkeypatch.setenv("FLIGHTDECK_CLIENT_ENV", str(path))
    for key in settings.KEYS:
        monkeypatch.delenv(key, raising=False)
    return path


def test_identity_file_round_trips(env_file: Path) -> None:
    env_file.write_text(
        "# comment\n"
        "FLIGHTDECK_AIRBOSS='https://fe.example.org:8677'\n"
        f"FLIGHTDECK_AIRBOSS_CA={identity.CA_PATH}\n"
    )
    got = settings.defaults()
    assert got == settings.Defaults("https://fe.example.org:8677", identity.CA_PATH)


def test_the_environment_wins_and_nothing_is_executed(
    env_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    env_file.write_text(
        f"FLIGHTDECK_AIRBOSS=$(touch {marker})\n"
        "OTHER=1\n"
        "FLIGHTDECK_AIRBOSS_CA='unterminated\n"
    )
    got = settings.defaults()
    assert got == settings.Defaults(None, None)  # not one word: ignored, and never run
    assert not marker.exists()
    monkeypatch.setenv("FLIGHTDECK_AIRBOSS", "localhost:9000")
    assert settings.defaults().airboss == "localhost:9000"


def test_no_file_means_no_defaults(env_file: Path) -> None:
    assert settings.defaults() == settings.Defaults(None, None)
