"""Suite-wide pytest options and fixtures."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regenerate-golden",
        action="store_true",
        default=False,
        help="rewrite golden files from the current output instead of comparing with them",
    )


@pytest.fixture
def regenerate_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden files (`--regenerate-golden`)."""
    return bool(request.config.getoption("--regenerate-golden"))
