"""Input built to break parsers, over HTTP: every answer is a 4xx with the JSON error body, never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib
from typing import Any

import pytest

from bridge import auth
from tests.conftest import IM_KEY, SDKAPPID, BridgeClient
from tests.test_im_callbacks import TOKEN, callback, cb_bridge, message  # noqa: F401  (cb_bridge is a fixture)

DEEP = b"[" * 30_000 + b"]" * 30_000  # 60 KB: under the size limit, far deeper than Python's recursion limit
HUGE_NUMBER = "9" * 400


def assert_json_error(r, status: int) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) >= {"code", "message"}


@pytest.mark.parametrize("path", ["/createticket", "/joingroup", "/salesforce/events", "/usersig"])
def test_deeply_nested_json_is_400(bridge: BridgeClient, path: str) -> None:
    assert_json_error(bridge.post(path, DEEP), 400)
    assert bridge.http.get("/healthz").status_code == 200  # and the connection is still good


def test_deeply_nested_json_without_auth_is_refused_cleanly(bridge: BridgeClient) -> None:
    r = bridge.http.post("/createticket", content=DEEP, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 401) and "error" in r.json()


@pytest.mark.parametrize("timestamp", [HUGE_NUMBER, "9" * 5000, "１２３", "²"])
def test_absurd_signed_call_timestamps_are_401(bridge: BridgeClient, timestamp: str) -> None:
    headers = {"X-Bridge-Timestamp": timestamp.encode()}  # bytes: httpx sends non-ASCII values only so
    r = bridge.post("/joingroup", {"groupId": "G", "userId": "a"}, headers=headers)  # type: ignore[dict-item]
    assert_json_error(r, 401)


def test_usersig_that_inflates_without_end_is_401(bridge: BridgeClient) -> None:
    bomb = base64.b64encode(zlib.compress(b"{" + b" " * 5_000_000 + b"}")).decode()
    body = {"userId": "user1", "caseInfo": {"subject": "Zip"}}
    r = bridge.http.post("/createticket", json=body, headers={"Authorization": f"UserSig {bomb}"})
    assert_json_error(r, 401)
    assert "malformed" in r.json()["error"]["message"]


def forged_usersig(user_id: str, **numbers: Any) -> str:
    """A UserSig signed with the right key whose TLS.time, TLS.expire or TLS.sdkappid is replaced (JSON, as Python
    reads it, allows Infinity and NaN)."""
    fields: dict[str, Any] = {
        "TLS.ver": "2.0",
        "TLS.identifier": user_id,
        "TLS.sdkappid": SDKAPPID,
        "TLS.time": int(time.time()),
        "TLS.expire": 3600,
        **numbers,
    }
    content = "".join(f"TLS.{k}:{fields['TLS.' + k]}\n" for k in ("identifier", "sdkappid", "time", "expire"))
    fields["TLS.sig"] = base64.b64encode(hmac.new(IM_KEY.encode(), content.encode(), hashlib.sha256).digest()).decode()
    raw = base64.b64encode(zlib.compress(json.dumps(fields).encode())).decode()
    return raw.replace("+", "*").replace("/", "-").replace("=", "_")


@pytest.mark.parametrize(
    "numbers",
    [
        {"TLS.time": float("inf")},
        {"TLS.expire": float("inf")},
        {"TLS.sdkappid": float("inf")},
        {"TLS.time": float("-inf")},
        {"TLS.expire": float("nan")},
        {"TLS.time": 1e400},
        {"TLS.expire": 10**30},
        {"TLS.time": True},
    ],
)
def test_usersig_numbers_that_are_not_integers_are_401(bridge: BridgeClient, numbers: dict[str, Any]) -> None:
    body = {"userId": "user1", "caseInfo": {"subject": "Numbers"}}
    r = bridge.http.post(
        "/createticket", json=body, headers={"Authorization": f"UserSig {forged_usersig('user1', **numbers)}"}
    )
    assert_json_error(r, 401)
    assert "malformed" in r.json()["error"]["message"]


def test_deeply_nested_usersig_is_401(bridge: BridgeClient) -> None:
    nested = base64.b64encode(zlib.compress(b"[" * 2000 + b"]" * 2000)).decode()
    r = bridge.http.post(
        "/createticket",
        json={"userId": "u", "caseInfo": {"subject": "s"}},
        headers={"Authorization": f"UserSig {nested}"},
    )
    assert_json_error(r, 401)


def test_absurd_callback_request_time_is_refused(cb_bridge: BridgeClient) -> None:  # noqa: F811
    query = {"RequestTime": HUGE_NUMBER, "Sign": auth.im_callback_sign(TOKEN, HUGE_NUMBER)}
    r = callback(cb_bridge, message("G1", "user1"), params=query)
    assert_json_error(r, 401)


def test_deeply_nested_callback_is_answered_ok(cb_bridge: BridgeClient) -> None:  # noqa: F811
    r = callback(cb_bridge, None, raw=DEEP)  # authenticated: IM callbacks always get OK, and nothing is queued
    assert (r.status_code, r.json()) == (200, {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""})


def test_signature_exactly_at_the_window_edge_is_accepted() -> None:
    body, now = b"{}", 1_764_158_400.9  # a fractional clock must not push a 300 s old call outside
    headers = auth.signed_call_headers("s", "POST", "/joingroup", body, now=now - 300)
    auth.signed_call_scope(
        {"callout": "s"},
        headers[auth.TIMESTAMP_HEADER],
        headers[auth.SIGNATURE_HEADER],
        "POST",
        "/joingroup",
        body,
        now=now,
    )
    with pytest.raises(auth.SignatureError):
        auth.signed_call_scope(
            {"callout": "s"},
            headers[auth.TIMESTAMP_HEADER],
            headers[auth.SIGNATURE_HEADER],
            "POST",
            "/joingroup",
            body,
            now=now + 1,
        )


@pytest.mark.parametrize(
    "target",
    [
        "/links/%00",
        "/links/ZENDESK%2342%00",
        "/links/%1b%5b2J",
        "/links/" + "A" * 49,
        "/links?provider=zendesk&ticketId=%00",
        "/links?provider=zen%00desk&ticketId=42",
    ],
)
def test_link_ids_no_group_can_have_are_400(bridge: BridgeClient, target: str) -> None:
    # On PostgreSQL a NUL reached the query and came back as 503 database_unavailable.
    r = bridge.get(target)
    assert_json_error(r, 400)
    assert r.json()["error"]["code"] == "invalid_request"


def test_callback_group_id_with_nul_is_400(cb_bridge: BridgeClient) -> None:  # noqa: F811
    r = callback(cb_bridge, message("ZENDESK#1\x00", "user1"))
    assert_json_error(r, 400)
    assert "GroupId" in r.json()["error"]["message"]
