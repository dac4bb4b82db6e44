"""Salesforce Ids: the 15-character form of users, cases and queues becomes the 18-character one.

`normalize` is the connector's `normalize_id`, which the bridge applies wherever Ids enter it. Only Ids that look like
Salesforce Ids with a known key prefix are changed; every other ID is left alone, so a customer's `userId` such as
`user1` or a Zendesk ticket ID never changes.
"""

from __future__ import annotations

import re

KEY_PREFIXES = ("005", "500", "00G")
_ID15 = re.compile(r"^[A-Za-z0-9]{15}$")
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?$")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def checksum(id15: str) -> str:
    """The three characters Salesforce appends: one per five-character chunk, a bit per upper-case letter."""
    suffix = ""
    for start in (0, 5, 10):
        bits = 0
        for i, char in enumerate(id15[start : start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        suffix += _ALPHABET[bits]
    return suffix


def to_18(id15: str) -> str:
    """The 18-character form of any 15-character Salesforce Id."""
    if not _ID15.match(id15):
        raise ValueError(f"{id15!r} is not a 15-character Salesforce Id")
    return id15 + checksum(id15)


def normalize(value: str) -> str:
    """18-character form for a 15-character user, case or queue Id; anything else unchanged."""
    if _ID15.match(value) and value.startswith(KEY_PREFIXES):
        return to_18(value)
    return value


def canonical_id(value: str | None, prefix: str) -> str | None:
    """The 18-character form of a 15- or 18-character Id with this key prefix, else None.

    The checksum suffix is case-insensitive; an 18-character Id whose suffix does not match is refused.
    """
    if not value or not _ID.match(value) or not value.startswith(prefix):
        return None
    suffix = checksum(value[:15])
    if len(value) == 18 and value[15:].upper() != suffix:
        return None
    return value[:15] + suffix
