"""`rocks create keys` / `pilot create keys`, and opening keys for requests."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from flightdeck.cli.command import Context
from flightdeck.cli.main import run
from flightdeck.crypto import keys as ck
from flightdeck.errors import Conflict, NotFound, UserError
from flightdeck.pilot import keyfile


def rocks(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), Context(out=out, err=err))
    return code, out.getvalue(), err.getvalue()


class Asker:
    """A terminal that types the given answers, and remembers the prompts."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str = "") -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Any:
    def typing(*answers: str) -> Asker:
        asker = Asker(*answers)
        monkeypatch.setattr(keyfile.getpass, "getpass", asker)
        monkeypatch.setattr(keyfile, "_terminal", lambda: True)
        return asker

    return typing


def test_rocks_create_keys_asks_twice_and_encrypts(tmp_path: Path, terminal: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    asker = terminal("correct horse", "correct horse")
    code, out, err = rocks("create", "keys", "key=private.key")
    assert code == 0, err
    assert asker.prompts == ["Enter pass phrase for private.key: ",
                             "Verifying - Enter pass phrase for private.key: "]
    assert out.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert out.endswith("-----END PUBLIC KEY-----\n")
    path = tmp_path / "private.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    with pytest.raises(UserError, match="is encrypted: give its passphrase"):
        ck.load_private_key(data)
    key = ck.load_private_key(data, b"correct horse")
    assert ck.public_key_to_pem(key.public_key()) == out
    assert isinstance(key, type(ck.generate_private_key()))  # Ed25519 by default


def test_create_keys_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("precious")
    code, _out, err = rocks("create", "keys", f"key={path}", "passphrase=no")
    assert code == 1 and f"the key file '{path}' already exists" in err
    assert path.read_text() == "precious"
    # Nor through a symbolic link (not even a dangling one).
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Conflict):
        keyfile.create_key_file(str(link), passphrase=False)
    assert not (tmp_path / "elsewhere").exists()


def test_create_keys_mismatched_or_short_passphrase(tmp_path: Path, terminal: Any) -> None:
    terminal("one", "two")
    code, _o, err = rocks("create", "keys", f"key={tmp_path / 'a'}")
    assert code == 1 and "differ" in err and not (tmp_path / "a").exists()
    terminal("abc", "abc")
    code, _o, err = rocks("create", "keys", f"key={tmp_path / 'b'}")
    assert code == 1 and "too short" in err and not (tmp_path / "b").exists()


def test_create_keys_without_a_terminal_needs_passphrase_no(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.setattr(keyfile, "_terminal", lambda: False)
    code, _o, err = rocks("create", "keys", f"key={tmp_path / 'a'}")
    assert code == 1 and "passphrase=no" in err
    code, out, _e = rocks("create", "keys", f"key={tmp_path / 'a'}", "passphrase=no")
    assert code == 0
    ck.load_private_key(tmp_path / "a")  # no passphrase needed
    assert "BEGIN PUBLIC KEY" in out


def test_create_rsa_keys(tmp_path: Path) -> None:
    code, _out, _e = rocks("create", "keys", f"key={tmp_path / 'r'}", "passphrase=no",
                          "type=rsa")
    assert code == 0
    key = ck.load_private_key(tmp_path / "r")
    assert ck.describe_key(key.public_key()) == "RSA-3072"
    code, _o, err = rocks("create", "keys", f"key={tmp_path / 'weak'}", "passphrase=no",
                          "type=rsa", "bits=1024")
    assert code == 1 and "RSA keys under 2048 bits are refused" in err
    assert not (tmp_path / "weak").exists()
    code, _o, err = rocks("create", "keys", f"key={tmp_path / 'dsa'}", "type=dsa",
                          "passphrase=no")
    assert code == 1 and "not supported" in err


def test_create_keys_needs_no_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, _o, err = rocks("create", "keys", f"key={tmp_path / 'u'}", "passphrase=no")
    assert code == 0, err


def test_find_key_defaults_as_the_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(NotFound, match=r"id_ed25519 or .*id_rsa"):
        keyfile.find_key(None)
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    keyfile.create_key_file(str(ssh / "id_rsa"), passphrase=False, kind="rsa", bits=2048)
    assert keyfile.find_key(None) == ssh / "id_rsa"
    keyfile.create_key_file(str(ssh / "id_ed25519"), passphrase=False)
    assert keyfile.find_key(None) == ssh / "id_ed25519"
    assert keyfile.find_key(str(ssh / "id_rsa")) == ssh / "id_rsa"
    with pytest.raises(NotFound):
        keyfile.find_key(str(ssh / "missing"))


def test_opening_an_encrypted_key_asks_on_the_terminal(tmp_path: Path, terminal: Any) -> None:
    path = tmp_path / "k"
    terminal("s3cret pass", "s3cret pass")
    keyfile.create_key_file(str(path), passphrase=True)
    asker = terminal("s3cret pass")
    key = keyfile.load_key(path)
    assert asker.prompts == [f"Enter pass phrase for {path}: "]
    assert isinstance(key, type(ck.generate_private_key()))
    terminal("wrong")
    with pytest.raises(UserError, match="passphrase is wrong"):
        keyfile.load_key(path)
    with pytest.raises(UserError, match="no terminal"):
        keyfile.load_key(path, interactive=False)


def test_encrypted_openssh_keys_are_recognised() -> None:
    from cryptography.hazmat.primitives import serialization

    key = ck.generate_private_key()
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                              serialization.NoEncryption())
    secret = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                               serialization.BestAvailableEncryption(b"pass phrase"))
    assert not keyfile.is_encrypted(plain)
    assert keyfile.is_encrypted(secret)
