"""The small pieces on their own: names, settings, limits, addresses, the remote ISO catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightdeck.airboss import config
from flightdeck.airboss.ratelimit import RateLimiter
from flightdeck.api import wire
from flightdeck.errors import UserError
from flightdeck.pilot.client import parse_address
from flightdeck.services.airboss import audit, media


@pytest.mark.parametrize(
    ("text", "name"),
    [("debian.iso", "debian.iso"), ("/isos/debian.iso", "debian.iso"),
     ("/isos/./debian.iso", "debian.iso"), ("a b.iso", "a b.iso")],
)
def test_iso_names_accepted(text: str, name: str) -> None:
    assert media.iso_name(text, "/isos") == name


@pytest.mark.parametrize(
    "text",
    ["", "..", ".", "../x.iso", "/isos/../etc/passwd", "/etc/passwd", "/isos/sub/x.iso",
     "sub/x.iso", "-x.iso", "x\n.iso", "x\x00.iso", "/isosx/a.iso", "a" * 256],
)
def test_iso_names_refused(text: str) -> None:
    with pytest.raises(UserError):
        media.iso_name(text, "/isos")


def test_clip_keeps_the_audit_log_bounded_and_printable() -> None:
    assert audit.clip("frontend-0-0-0", 255) == "frontend-0-0-0"
    assert audit.clip(None, 10) is None
    long = audit.clip("a" * 10_000, 255)
    assert long is not None and len(long) <= 255 and long.endswith("... (10000 characters)")
    assert audit.clip("a\nb\x00", 255) == "a\\x0ab\\x00"


@pytest.mark.parametrize(
    "target", ["76:77:6e:40:00:02", "hosted-vm-0-0-0", "vm-fe.example.org", "a_b"]
)
def test_targets_accepted(target: str) -> None:
    assert wire.check_target(target) == target


@pytest.mark.parametrize("target", ["", " x", "x y", "a/b", "a'b", "a;b", "%", "é", "a" * 254, 7])
def test_targets_refused(target: object) -> None:
    with pytest.raises(wire.InvalidTarget):
        wire.check_target(target)


def test_settings_and_listen_addresses(tmp_path: Path) -> None:
    assert config.parse_listen("127.0.0.1:8677") == ("127.0.0.1", 8677)
    assert config.parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8677", "host:", "host:99999", ":80"):
        with pytest.raises(UserError):
            config.parse_listen(bad)
    assert config.is_loopback("127.0.0.2") and config.is_loopback("::1")
    assert config.is_loopback("localhost") and not config.is_loopback("0.0.0.0")
    with pytest.raises(UserError, match="both tls_cert and tls_key"):
        config.Settings(tls_cert="/x")
    with pytest.raises(UserError, match="max_skew"):
        config.Settings(max_skew=3600)
    file = tmp_path / "airboss.toml"
    file.write_text('listen = "127.0.0.1:9000"\nrate = 2.5\n')
    loaded = config.load(str(file), burst=7)
    assert (loaded.listen, loaded.rate, loaded.burst) == ("127.0.0.1:9000", 2.5, 7)
    file.write_text("colour = 'red'\n")
    with pytest.raises(UserError, match="unknown setting 'colour'"):
        config.load(str(file))
    file.write_text("rate = 'fast'\n")
    with pytest.raises(UserError):
        config.load(str(file))
    with pytest.raises(UserError, match="does not exist"):
        config.load(str(tmp_path / "missing.toml"))


def test_rate_limiter_refills_and_forgets_idle_keys() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 2, max_keys=3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] += 0.5
    assert limiter.allow("a") == 0.0
    for key in ("b", "c", "d"):
        limiter.allow(key)
    assert len(limiter._buckets) == 3 and "a" not in limiter._buckets


@pytest.mark.parametrize(
    ("text", "scheme", "host", "port"),
    [(None, "http", "localhost", 8677), ("127.0.0.1:9", "http", "127.0.0.1", 9),
     ("https://fe.example.org", "https", "fe.example.org", 8677),
     ("[::1]:8677", "http", "::1", 8677)],
)
def test_client_addresses(text: str | None, scheme: str, host: str, port: int) -> None:
    a = parse_address(text)
    assert (a.scheme, a.host, a.port) == (scheme, host, port)


@pytest.mark.parametrize("text", ["ftp://x", "host:port", "http://x/path", "user@host:1"])
def test_client_addresses_refused(text: str) -> None:
    with pytest.raises(UserError):
        parse_address(text)


def test_remote_iso_catalogue_through_libvirt_storage(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote container's catalogue is its ISO directory's pool: file volumes only."""
    pytest.importorskip("libvirt")
    from flightdeck.virt import hypervisor as hv
    from flightdeck.virt import isos

    node = tmp_path / "remote.xml"
    node.write_text("<node/>\n")
    conn = hv.connect("remote-container", f"test://{node}")
    monkeypatch.setattr(isos, "is_local", lambda _uri: False)
    directory = str(tmp_path / "isos")
    assert isos.iso_catalogue(conn, directory) == {}
    conn.create_volume(f"{directory}/debian-12.iso", 1, "raw")
    assert isos.iso_catalogue(conn, directory) == {"debian-12.iso": f"{directory}/debian-12.iso"}
    assert isos.is_local.__name__ == "<lambda>"
    monkeypatch.undo()
    assert isos.is_local("qemu:///system") and not isos.is_local("qemu+ssh://root@c/system")


@pytest.mark.parametrize(("text", "value"), [("true", True), ("YES", True), ("0", False),
                                             ("no", False), ("false", False)])  # fmt: skip
def test_set_takes_a_flag_as_true_or_false(text: str, value: bool) -> None:
    assert config.parse_assignments([f"gate_on_loop={text}"]) == {"gate_on_loop": value}


@pytest.mark.parametrize("text", ["", "maybe", "2", "on-ish"])
def test_set_refuses_a_flag_that_is_neither(text: str) -> None:
    with pytest.raises(UserError, match="gate_on_loop takes true or false"):
        config.parse_assignments([f"gate_on_loop={text}"])


def test_a_flag_in_the_settings_file_must_be_a_boolean(tmp_path: Path) -> None:
    (tmp_path / "airboss.toml").write_text('gate_on_loop = "no"\n')
    with pytest.raises(UserError, match="gate_on_loop='no': give true or false"):
        config.load(str(tmp_path / "airboss.toml"))
    (tmp_path / "airboss.toml").write_text("gate_on_loop = false\n")
    assert config.load(str(tmp_path / "airboss.toml")).gate_on_loop is False
