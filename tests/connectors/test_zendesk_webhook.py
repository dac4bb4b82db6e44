"""Zendesk's webhook signature: the known-answer vector (tests/vectors) and a table of failure cases."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import SignatureError
from connectors.zendesk import webhook
from tests.conftest import VECTORS


def test_zendesk_vector_and_cases() -> None:
    v = VECTORS["zendesk_webhook"]
    ts, body, sig = v["X-Zendesk-Webhook-Signature-Timestamp"], v["body"].encode(), v["X-Zendesk-Webhook-Signature"]
    assert webhook.sign(v["secret"], ts, body) == sig
    moment = 1627207200  # 2021-07-25T10:00:00Z
    webhook.verify(v["secret"], sig, ts, body, now=moment + 299)
    cases: list[dict[str, Any]] = [
        dict(now=moment + 301),
        dict(signature=None),
        dict(timestamp="yesterday"),
        dict(body=b"{}"),
        dict(secret="other"),
        dict(timestamp="2021-07-25T10:00:00"),
    ]
    for bad in cases:
        args: dict[str, Any] = dict(secret=v["secret"], signature=sig, timestamp=ts, body=body, now=moment)
        args.update(bad)
        with pytest.raises(SignatureError):
            webhook.verify(**args)
