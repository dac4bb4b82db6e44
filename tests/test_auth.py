"""Signature rules: the known-answer vectors (tests/vectors) and a table of failure cases for each scheme."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import auth
from bridge.errors import SignatureError
from tests.conftest import VECTORS

NOW = 1764158400


def test_signed_call_vector() -> None:
    v = VECTORS["signed_call"]
    assert (
        auth.call_signature(v["secret"], v["timestamp"], v["method"], v["target"], v["body"].encode())
        == v["X-Bridge-Signature"]
    )
    g = v["get_example"]
    assert (
        auth.call_signature(v["secret"], v["timestamp"], g["method"], g["target"], g["body"].encode())
        == g["X-Bridge-Signature"]
    )
    auth.signed_call_scope(
        {"callout": v["secret"]},
        str(v["timestamp"]),
        v["X-Bridge-Signature"],
        "POST",
        v["target"],
        v["body"].encode(),
        now=v["timestamp"],
    )


def _signed(**change: Any) -> dict[str, Any]:
    v = VECTORS["signed_call"]
    args: dict[str, Any] = dict(
        secrets={"callout": v["secret"]},
        timestamp=str(v["timestamp"]),
        signature=v["X-Bridge-Signature"],
        method="POST",
        target=v["target"],
        body=v["body"].encode(),
        now=v["timestamp"],
    )
    args.update(change)
    return args


@pytest.mark.parametrize(
    "change,valid",
    [
        ({}, True),
        ({"now": NOW + 299}, True),
        ({"now": NOW - 299}, True),
        ({"now": NOW + 301}, False),
        ({"now": NOW - 301}, False),
        ({"signature": None}, False),
        ({"timestamp": None}, False),
        ({"timestamp": "not-a-number"}, False),
        ({"secrets": {"callout": "wrong"}}, False),
        ({"target": "/leavegroup"}, False),
        ({"method": "PUT"}, False),
        ({"body": b'{"groupId":"x"}'}, False),
        ({"signature": "v1=" + "0" * 64}, False),
    ],
)
def test_signed_call_cases(change: dict[str, object], valid: bool) -> None:
    args = _signed(**change)
    if valid:
        assert auth.signed_call_scope(**args)[0] == "callout"
    else:
        with pytest.raises(SignatureError):
            auth.signed_call_scope(**args)


@given(
    secret=st.text(min_size=1),
    method=st.sampled_from(["GET", "POST"]),
    target=st.text(min_size=1),
    body=st.binary(max_size=200),
)
def test_signed_call_round_trip(secret: str, method: str, target: str, body: bytes) -> None:
    headers = auth.signed_call_headers(secret, method, target, body, now=NOW)
    auth.signed_call_scope(
        {"callout": secret},
        headers[auth.TIMESTAMP_HEADER],
        headers[auth.SIGNATURE_HEADER],
        method,
        target,
        body,
        now=NOW,
    )


def test_usersig_vectors() -> None:
    v = VECTORS["usersig"]
    for case in v["cases"]:
        if case["valid"]:
            assert (
                auth.verify_usersig(v["sdkappid"], v["key"], case["userId"], case["userSig"], now=v["now"]) > v["now"]
            )
        else:
            with pytest.raises(SignatureError):
                auth.verify_usersig(v["sdkappid"], v["key"], case["userId"], case["userSig"], now=v["now"])


@pytest.mark.parametrize(
    "case", ["valid", "wrong key", "wrong identifier", "wrong sdkappid", "expired", "garbage", "empty", "not zlib"]
)
def test_usersig_cases(case: str) -> None:
    key, sdkappid = "k" * 64, 1400000000
    sig = auth.gen_usersig(sdkappid, key, "alice", 60)
    args: dict[str, Any] = {"sdkappid": sdkappid, "key": key, "user_id": "alice", "usersig": sig, "now": None}
    reasons: dict[str, tuple[dict[str, Any], str]] = {
        "wrong key": ({"key": "x" * 64}, "not valid"),
        "wrong identifier": ({"user_id": "bob"}, "another userId"),
        "wrong sdkappid": ({"sdkappid": 1400000001}, "another IM application"),
        "expired": ({"now": 10**11}, "expired"),
        "garbage": ({"usersig": "garbage!"}, "malformed"),
        "empty": ({"usersig": ""}, "malformed"),
        "not zlib": ({"usersig": "aGVsbG8_"}, "malformed"),
    }
    if case == "valid":
        assert auth.verify_usersig(**args) > 0
        return
    change, reason = reasons[case]
    args.update(change)
    with pytest.raises(SignatureError, match=reason):
        auth.verify_usersig(**args)


@given(user=st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True), expire=st.integers(1, 10**7))
def test_usersig_round_trip(user: str, expire: int) -> None:
    sig = auth.gen_usersig(1400000000, "key", user, expire)
    assert auth.decode_usersig(sig)["TLS.identifier"] == user
    auth.verify_usersig(1400000000, "key", user, sig)


def test_im_callback_vector_and_cases() -> None:
    v = VECTORS["im_callback"]
    assert auth.im_callback_sign(v["token"], v["RequestTime"]) == v["Sign"]
    t = int(v["RequestTime"])
    auth.verify_im_callback(v["token"], v["Sign"].upper(), v["RequestTime"], now=t + 299)
    cases: list[dict[str, Any]] = [
        dict(now=t + 301),
        dict(sign=None),
        dict(request_time="abc"),
        dict(token="other"),
        dict(sign="0" * 64),
    ]
    for bad in cases:
        args: dict[str, Any] = dict(token=v["token"], sign=v["Sign"], request_time=v["RequestTime"], now=t)
        args.update(bad)
        with pytest.raises(SignatureError):
            auth.verify_im_callback(**args)


def test_canonical_signature_cases() -> None:
    digits = "0123456789abcdef" * 4
    canonical = "v1=" + digits
    for same in (canonical, "V1=" + digits.upper(), "v1=" + digits.upper(), f" {canonical}\t", f"\t{canonical}  "):
        assert auth.canonical_signature(same) == canonical, repr(same)
    for bad in (
        canonical + "\xa0",  # str.strip() would take these away
        canonical + "\x85",
        "\u3000" + canonical,
        canonical + "\n",
        "v1= " + digits,
        "v1=" + digits[:-1],
        "v1=" + digits + "0",
        "v1=" + digits[:-1] + "g",
        "v1=" + digits[:-1] + "\uff10",  # a fullwidth digit
        "v2=" + digits,
        digits,
        "",
    ):
        with pytest.raises(SignatureError) as refused:
            auth.canonical_signature(bad)
        assert refused.value.code == "malformed_signature", repr(bad)


def test_signed_call_scope_tells_the_secrets_apart() -> None:
    body, now = b"{}", float(NOW)
    secrets = {"callout": "full-key", "app": "narrow-key"}
    for scope, secret in secrets.items():
        headers = auth.signed_call_headers(secret, "POST", "/usersig", body, now=now)
        found = auth.signed_call_scope(
            secrets,
            headers[auth.TIMESTAMP_HEADER],
            headers[auth.SIGNATURE_HEADER].upper(),
            "POST",
            "/usersig",
            body,
            now,
        )
        assert found == (scope, headers[auth.SIGNATURE_HEADER])
    other = auth.signed_call_headers("another-key", "POST", "/usersig", body, now=now)
    with pytest.raises(SignatureError):
        auth.signed_call_scope(
            secrets, other[auth.TIMESTAMP_HEADER], other[auth.SIGNATURE_HEADER], "POST", "/usersig", body, now
        )
