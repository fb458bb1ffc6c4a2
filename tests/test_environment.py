"""The test environment that scripts/test.sh prepares actually works.

- libvirt's test:///default driver (no daemon) opens and lists its domains;
- the real libvirtd named by FLIGHTDECK_TEST_LIBVIRT answers;
- the PostgreSQL server named by FLIGHTDECK_TEST_PG_URL runs a query.

The last two are skipped when their variable is unset (a bare `pytest`), and FAIL when it is set
but the service does not answer: a broken environment must not look like a green run.
"""

from __future__ import annotations

import os
import re

import libvirt
import psycopg
import pytest


def _without_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def test_libvirt_test_driver_lists_domains() -> None:
    conn = libvirt.open("test:///default")
    try:
        names = [dom.name() for dom in conn.listAllDomains()]
    finally:
        conn.close()
    # The test driver's default node always has one running domain named "test".
    assert "test" in names


@pytest.mark.libvirtd
def test_system_libvirtd_answers() -> None:
    uri = os.environ.get("FLIGHTDECK_TEST_LIBVIRT")
    if not uri:
        pytest.skip(
            "FLIGHTDECK_TEST_LIBVIRT is not set (scripts/test.sh sets it to qemu:///system)"
        )
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        pytest.fail(f"FLIGHTDECK_TEST_LIBVIRT={uri} is set but libvirtd does not answer: {exc}")
    try:
        version = conn.getVersion()
    finally:
        conn.close()
    assert version > 0


@pytest.mark.postgres
def test_postgres_answers() -> None:
    url = os.environ.get("FLIGHTDECK_TEST_PG_URL")
    if not url:
        pytest.skip("FLIGHTDECK_TEST_PG_URL is not set (scripts/test.sh starts a private server)")
    # SQLAlchemy URL -> libpq URI: drop the "+driver" part.
    conninfo = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            row = conn.execute("select 1").fetchone()
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"FLIGHTDECK_TEST_PG_URL={_without_password(url)} is set but PostgreSQL "
            f"does not answer: {exc}"
        )
    assert row == (1,)
