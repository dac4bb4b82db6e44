"""The toy connector (tests/conformance/toy_connector), installed for a test the way a plugin is: a dist-info with its
entry point in a folder on sys.path."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance import toy_connector


@pytest.fixture
def toy_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a fresh desk of the installed toy helpdesk (TOY_DESK)."""
    monkeypatch.syspath_prepend(str(toy_connector.install(tmp_path / "site")))
    name = f"desk-{uuid.uuid4().hex[:8]}"
    toy_connector.DESKS[name] = toy_connector.Desk()
    yield name
    toy_connector.DESKS.pop(name, None)
