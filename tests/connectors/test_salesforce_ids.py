"""Salesforce Id normalisation: the shared vectors and the rule as a property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.salesforce import ids
from tests.conftest import VECTORS

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def test_vectors() -> None:
    for case in VECTORS["salesforce_ids"]:
        assert ids.to_18(case["id15"]) == case["id18"]
        assert ids.canonical_id(case["id18"], case["id18"][:3]) == case["id18"]


@given(st.text(ALNUM, min_size=15, max_size=15))
def test_checksum_rule(id15: str) -> None:
    id18 = ids.to_18(id15)
    assert id18[:15] == id15 and ids.canonical_id(id18, id18[:3]) == id18
    # The suffix encodes the case of each letter: flipping one upper/lower letter changes it.
    letters = [i for i, c in enumerate(id15) if c.isalpha()]
    if letters:
        i = letters[0]
        flipped = id15[:i] + id15[i].swapcase() + id15[i + 1 :]
        assert ids.to_18(flipped)[15:] != id18[15:]


@given(st.text(ALNUM, min_size=12, max_size=12), st.sampled_from(["005", "500", "00G", "001", "a0X"]))
def test_normalize_only_known_prefixes(rest: str, prefix: str) -> None:
    value = prefix + rest
    normalized = ids.normalize(value)
    if prefix in ids.KEY_PREFIXES:
        assert normalized == ids.to_18(value)
    else:
        assert normalized == value


@pytest.mark.parametrize("value", ["user1", "ZENDESK#42", "42", "0055g00000XyZabAAF", "", "005" + "x" * 13])
def test_other_ids_unchanged(value: str) -> None:
    assert ids.normalize(value) == value
