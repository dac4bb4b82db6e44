"""The seed's group primitives over HTTP, against the IM emulator, on every database."""

from __future__ import annotations

import pytest

from connectors.salesforce import ids
from tests.conftest import BridgeClient, im_call, im_state, make_group, members_of, set_faults

AGENT15, AGENT18 = "0055g00000XyZab", "0055g00000XyZabAAF"


def test_join_imports_account_and_adds(bridge: BridgeClient, im_server) -> None:
    make_group(im_server, "G-join", "cust1")
    r = bridge.post("/joingroup", {"groupId": "G-join", "userId": AGENT15})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "ok": True,
        "groupId": "G-join",
        "userId": AGENT18,
        "ActionStatus": "OK",
        "ErrorCode": 0,
        "ErrorInfo": "",
    }
    assert members_of(im_server, "G-join") == {"cust1", AGENT18}
    again = bridge.post("/joingroup", {"groupId": "G-join", "userId": AGENT18})
    assert again.status_code == 200, "already a member is success"
    assert members_of(im_server, "G-join") == {"cust1", AGENT18}


def test_already_a_member_as_an_error_code_is_success(bridge: BridgeClient, im_server) -> None:
    """IM documents 10013 ("already a member") as a whole-call error as well as a per-member Result of 2."""
    make_group(im_server, "G-10013", "cust1")
    set_faults(im_server, error_rate=1.0, code=10013, count=1, paths=["/v4/group_open_http_svc/add_group_member"])
    r = bridge.post("/joingroup", {"groupId": "G-10013", "userId": AGENT18})
    assert r.status_code == 200, r.text


def test_leave_and_leave_again(bridge: BridgeClient, im_server) -> None:
    make_group(im_server, "G-leave", "cust1", AGENT18)
    assert bridge.post("/leavegroup", {"groupId": "G-leave", "userId": AGENT15}).status_code == 200
    assert members_of(im_server, "G-leave") == {"cust1"}
    assert bridge.post("/leavegroup", {"groupId": "G-leave", "userId": AGENT15}).status_code == 200


def test_delete_group_twice(bridge: BridgeClient, im_server) -> None:
    make_group(im_server, "G-del", "cust1")
    r = bridge.post("/deletegroup", {"groupId": "G-del"})
    assert r.status_code == 200 and r.json()["ok"] is True
    assert im_call(im_server, "get_group_info", {"GroupIdList": ["G-del"]})["GroupInfo"][0]["ErrorCode"] != 0
    assert bridge.post("/deletegroup", {"groupId": "G-del"}).status_code == 200, "already gone is success"


def test_unknown_group_is_404(bridge: BridgeClient) -> None:
    r = bridge.post("/joingroup", {"groupId": "no-such-group", "userId": "agent1"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "group_not_found"


@pytest.mark.parametrize(
    "body,message",
    [
        ({}, "groupId is required"),
        ({"groupId": "G"}, "userId is required"),
        ({"groupId": 5, "userId": "a"}, "groupId"),
        ({"groupId": "G", "userId": "has space"}, "userId must be"),
        ({"groupId": "G", "userId": "x" * 33}, "userId must be"),
        ({"groupId": "G" * 49, "userId": "a"}, "groupId must be"),
        ([1, 2], "JSON object"),
        ("just a string", "JSON object"),
    ],
)
def test_bad_bodies_are_400(bridge: BridgeClient, body: object, message: str) -> None:
    r = bridge.post("/joingroup", body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]


def test_malformed_json_is_400(bridge: BridgeClient) -> None:
    r = bridge.post("/joingroup", b'{"groupId": ')
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_body_over_64k_is_413(bridge: BridgeClient) -> None:
    r = bridge.post("/joingroup", {"groupId": "G", "userId": "a", "pad": "x" * 70000})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("path", ["/joingroup", "/leavegroup", "/deletegroup", "/assignment", "/usersig"])
def test_unsigned_and_badly_signed_are_401(bridge: BridgeClient, path: str) -> None:
    body = {"groupId": "G", "userId": "a"}
    assert bridge.http.post(path, json=body).status_code == 401
    assert bridge.post(path, body, secret="not-the-secret").status_code == 401
    assert bridge.post(path, body, now=__import__("time").time() - 301).status_code == 401
    r = bridge.post(path, body, headers={"X-Bridge-Signature": "v1=" + "0" * 64})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


def test_signature_of_one_path_fails_on_another(bridge: BridgeClient, im_server) -> None:
    make_group(im_server, "G-replay", "cust1", "agent1")
    import json as _json

    from bridge import auth

    raw = _json.dumps({"groupId": "G-replay", "userId": "agent1"}).encode()
    headers = auth.signed_call_headers("callout-secret-for-tests", "POST", "/joingroup", raw)
    r = bridge.http.post("/leavegroup", content=raw, headers=headers)
    assert r.status_code == 401
    assert members_of(im_server, "G-replay") == {"cust1", "agent1"}


def test_replay_has_no_second_effect(bridge: BridgeClient, im_server) -> None:
    make_group(im_server, "G-rep2", "cust1")
    import json as _json

    from bridge import auth

    raw = _json.dumps({"groupId": "G-rep2", "userId": "agent2"}).encode()
    headers = auth.signed_call_headers("callout-secret-for-tests", "POST", "/joingroup", raw)
    first = bridge.http.post("/joingroup", content=raw, headers=headers)
    assert first.status_code == 200
    calls_before = len(im_state(im_server)["requests"])
    replay = bridge.http.post("/joingroup", content=raw, headers=headers)
    # A retry of the same signed call: the first call's answer again, and nothing done twice.
    assert (replay.status_code, replay.json()) == (200, first.json())
    assert len(im_state(im_server)["requests"]) == calls_before


def test_im_failure_is_502_with_upstream_code(bridge: BridgeClient, im_server) -> None:
    make_group(im_server, "G-perm", "cust1")
    r = bridge.post("/joingroup", {"groupId": "G-perm", "userId": "administrator"})
    assert r.status_code in (200, 502)  # the admin may or may not be addable; either way no 500
    set_faults(im_server, outage=True, status=400)
    r = bridge.post("/joingroup", {"groupId": "G-perm", "userId": "agent9"})
    set_faults(im_server)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["upstream"] == "im"


def test_im_outage_queues_and_applies_later(bridge: BridgeClient, im_server) -> None:
    make_group(im_server, "G-out", "cust1")
    set_faults(im_server, outage=True, status=503)
    r = bridge.post("/joingroup", {"groupId": "G-out", "userId": "agent3"})
    assert r.status_code == 202, r.text
    assert r.json()["queued"] is True and r.json()["jobId"]
    set_faults(im_server)
    import time

    deadline = time.time() + 10
    while "agent3" not in members_of(im_server, "G-out"):
        assert time.time() < deadline, "the queued join was never applied"
        time.sleep(0.1)


def test_im_error_code_in_http_200_is_an_error(bridge: BridgeClient, im_server) -> None:
    set_faults(im_server, error_rate=1.0, count=100)
    r = bridge.post("/deletegroup", {"groupId": "G-any"})
    set_faults(im_server)
    assert r.status_code == 202, "an internal IM error is retriable: queued, not reported as done"


def test_usersig_endpoint(bridge: BridgeClient) -> None:
    from bridge import auth
    from tests.conftest import IM_KEY, SDKAPPID

    r = bridge.post("/usersig", {"userId": "cust-7", "expireSeconds": 600})
    assert r.status_code == 200
    body = r.json()
    assert body["userId"] == "cust-7" and body["sdkAppId"] == SDKAPPID
    assert auth.verify_usersig(SDKAPPID, IM_KEY, "cust-7", body["userSig"]) == pytest.approx(body["expiresAt"], abs=2)
    assert bridge.post("/usersig", {"userId": "cust-7", "expireSeconds": 0}).status_code == 400


def test_salesforce_events_need_salesforce_configured(bridge: BridgeClient) -> None:
    event = {"type": "deleted", "caseId": ids.to_18("5005g0000000006")}
    r = bridge.post("/salesforce/events", {"events": [event]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_connector", r.text
