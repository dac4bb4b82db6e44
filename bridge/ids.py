"""Helpdesk Ids as they enter the bridge (request bodies and queries, UserSigs, console sessions): each installed
connector may rewrite an Id of its own into the one form it is stored in (its optional `normalize_id`), so every
way of naming a ticket or a user finds the same group and IM account. Any other value is left as it is."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from connectors.base import load_connector_classes


@cache
def _rules() -> tuple[Callable[[str], str], ...]:
    # Installed connectors do not change while the process runs: found once.
    return tuple(rule for cls in load_connector_classes().values() if (rule := getattr(cls, "normalize_id", None)))


def normalize(value: str) -> str:
    for rule in _rules():
        value = rule(value)
    return value
