"""Ids entering the bridge take the form their connector stores them in (its normalize_id); other values stay."""

from __future__ import annotations

import pytest

from bridge import ids
from connectors.salesforce.ids import to_18


def test_an_installed_connectors_ids_are_normalised() -> None:
    assert ids.normalize("500000000000077") == to_18("500000000000077")
    assert ids.normalize("0055g00000XyZac") == to_18("0055g00000XyZac")


@pytest.mark.parametrize("value", ["user1", "ZENDESK#42", "42", "0055g00000XyZabAAF", "", "001000000000001"])
def test_other_values_unchanged(value: str) -> None:
    assert ids.normalize(value) == value
