"""Retry-After, read one way for every upstream: delay-seconds or an HTTP date (RFC 9110, 10.2.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bridge.errors import parse_retry_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), ("0", 0.0), (" 12 ", 12.0), ("-3", 0.0), ("", None), (None, None), ("soon", None)]
    + [("inf", None), ("nan", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_seconds_dates_and_nonsense(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_a_date_ahead_is_the_seconds_until_it() -> None:
    ahead = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 80 <= (parse_retry_after(ahead) or 0) <= 90
