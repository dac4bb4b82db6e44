"""Signed calls over HTTP: who may call what with which secret, the one canonical form of a signature, and a signed
call repeated within its window answered with the first call's answer (never run twice)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from bridge import auth
from bridge.config import ConfigError, load_settings
from bridge.sandbox.server import BackgroundServer
from bridge.store import sync_url
from tests.conftest import (
    APP_SECRET,
    CALLOUT_SECRET,
    IM_KEY,
    SDKAPPID,
    BridgeClient,
    BridgeFactory,
    group_settled,
    helpdesk_settings,
    im_call,
    im_state,
    make_group,
    members_of,
    set_faults,
)
from tests.test_convergence import wait_for


@pytest.fixture
def app_bridge(bridge_factory: BridgeFactory, zd_server: BackgroundServer) -> BridgeClient:
    """Zendesk enabled, and both secrets: the full callout key and the narrow app key."""
    return bridge_factory(**helpdesk_settings(zd_url=zd_server.url), bridge_app_secret=APP_SECRET)


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def send_signed(bridge: BridgeClient, target: str, raw: bytes, signature: str | bytes, timestamp: str) -> Answer:
    """POST with the signature header exactly as given (httpx refuses to send whitespace around a header value, which
    is what an attacker rewriting a captured call sends), over a plain socket."""
    value = signature if isinstance(signature, bytes) else signature.encode("latin-1")
    request = (
        f"POST {target} HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n{auth.TIMESTAMP_HEADER}: {timestamp}\r\n".encode()
        + auth.SIGNATURE_HEADER.encode()
        + b": "
        + value
        + b"\r\n\r\n"
        + raw
    )
    with socket.create_connection((bridge.server.host, bridge.server.port), timeout=30) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return Answer(int(status_line.split()[1]), headers, body.decode())


def im_calls(im_server: BackgroundServer, command: str) -> int:
    return len([r for r in im_state(im_server)["requests"] if r["Command"] == command])


# --- item 4: two secrets, and never the admin's UserSig -------------------------------------------------------------


def test_app_secret_opens_tickets_and_gets_customer_usersigs_only(
    app_bridge: BridgeClient, im_server: BackgroundServer
) -> None:
    ticket = {"userId": "cust-app", "caseInfo": {"subject": "From our backend"}}
    for target in ("/zendesk/createticket", "/createticket"):
        r = app_bridge.post(target, ticket, secret=APP_SECRET)
        assert r.status_code == 201, (target, r.text)
    group = r.json()["groupId"]
    sig = app_bridge.post("/usersig", {"userId": "cust-app"}, secret=APP_SECRET)
    assert sig.status_code == 200, sig.text
    auth.verify_usersig(SDKAPPID, IM_KEY, "cust-app", sig.json()["userSig"])

    for agent in ("zd_10001", "sf_005000000000001AAA"):  # agents' accounts are no customer's to ask for
        r = app_bridge.post("/usersig", {"userId": agent}, secret=APP_SECRET)
        assert r.status_code == 400 and r.json()["error"]["code"] == "reserved_user_id", r.text
        assert "userSig" not in r.json()
    refused: list[tuple[str, dict[str, Any]]] = [
        ("/joingroup", {"groupId": group, "userId": "intruder"}),
        ("/leavegroup", {"groupId": group, "userId": "cust-app"}),
        ("/assignment", {"groupId": group, "newOwnerId": "intruder"}),
        ("/deletegroup", {"groupId": group}),
        ("/salesforce/events", {"events": [{"type": "deleted", "caseId": "500000000000001AAA"}]}),
    ]
    group_settled(im_server.url, group)  # the greeting and the owner check, after the answer, are not counted
    requests_before = len(im_state(im_server)["requests"])
    for target, body in refused:
        r = app_bridge.post(target, body, secret=APP_SECRET)
        assert r.status_code == 403, (target, r.text)
        assert r.json()["error"]["code"] == "forbidden" and APP_SECRET not in r.text, target
    read = app_bridge.get(f"/links/{group.replace('#', '%23')}", secret=APP_SECRET)
    assert read.status_code == 403 and read.json()["error"]["code"] == "forbidden"
    assert len(im_state(im_server)["requests"]) == requests_before, "a refused call reached IM"
    assert members_of(im_server, group) == {"cust-app"}

    # The callout secret stays the full key.
    assert app_bridge.post("/joingroup", {"groupId": group, "userId": "agent-1"}).status_code == 200
    assert app_bridge.post("/usersig", {"userId": "zd_10001"}).status_code == 200


def test_no_usersig_for_the_admin_whoever_asks(app_bridge: BridgeClient) -> None:
    for secret in (CALLOUT_SECRET, APP_SECRET):
        r = app_bridge.post("/usersig", {"userId": "administrator", "expireSeconds": 180 * 86400}, secret=secret)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden" and "userSig" not in r.json()


def test_app_secret_is_checked_like_the_others(tmp_path: Any) -> None:
    base: dict[str, Any] = {"im_sdkappid": SDKAPPID, "im_secret_key": IM_KEY, "_env_file": None}
    for value in ("changeme", CALLOUT_SECRET):
        with pytest.raises(ConfigError, match="BRIDGE_APP_SECRET"):
            load_settings(**base, bridge_callout_secret=CALLOUT_SECRET, bridge_app_secret=value)
    assert load_settings(**base, bridge_app_secret=APP_SECRET).bridge_app_secret is not None


# --- item 5: one canonical form ------------------------------------------------------------------------------------


def test_a_signature_is_compared_in_one_canonical_form(bridge: BridgeClient, im_server: BackgroundServer) -> None:
    make_group(im_server, "G-canon", "cust1")
    raw = json.dumps({"groupId": "G-canon", "userId": "agent-c"}).encode()
    headers = auth.signed_call_headers(CALLOUT_SECRET, "POST", "/joingroup", raw)
    timestamp, signature = headers[auth.TIMESTAMP_HEADER], headers[auth.SIGNATURE_HEADER]
    digits = signature.removeprefix("v1=")
    # First sent in capitals: accepted, it is the same signature.
    first = send_signed(bridge, "/joingroup", raw, "V1=" + digits.upper(), timestamp)
    assert first.status_code == 200, first.text
    joins = im_calls(im_server, "add_group_member")
    # Rewritten forms of the same signature: the same call again, answered as before and not run again.
    for same in (signature, "v1=" + digits.upper(), signature + " ", signature + "\t", " " + signature):
        again = send_signed(bridge, "/joingroup", raw, same, timestamp)
        assert (again.status_code, again.json()) == (200, first.json()), repr(same)
    # Anything else is malformed: not the same call, and not a new one either.
    for bad in (
        signature.encode() + b"\xa0",
        signature.encode() + b"\x85",
        b"\xa0" + signature.encode(),
        "v1=" + digits[:32] + " " + digits[32:],
        signature[:-1],
        signature + "0",
        "v2=" + digits,
        "v1:" + digits,
        digits,
    ):
        r = send_signed(bridge, "/joingroup", raw, bad, timestamp)
        assert r.status_code == 401, (bad, r.text)
        assert r.json()["error"]["code"] == "malformed_signature", bad
    assert im_calls(im_server, "add_group_member") == joins


# --- item 5: a retry gets the first answer --------------------------------------------------------------------------


def test_a_retried_createticket_answers_as_the_first_and_opens_one_ticket(
    app_bridge: BridgeClient, zd_server: BackgroundServer
) -> None:
    raw = json.dumps({"userId": "cust-r", "caseInfo": {"subject": "Retried in the same second"}}).encode()
    headers = auth.signed_call_headers(APP_SECRET, "POST", "/zendesk/createticket", raw)
    args = ("/zendesk/createticket", raw, headers[auth.SIGNATURE_HEADER], headers[auth.TIMESTAMP_HEADER])
    first = send_signed(app_bridge, *args)
    again = send_signed(app_bridge, *args)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert len(httpx.get(zd_server.url + "/_emulator/state").json()["tickets"]) == 1
    # An error answer is an answer too: the same bad call gets the same 400.
    bad = json.dumps({"userId": "cust-r"}).encode()
    bad_headers = auth.signed_call_headers(APP_SECRET, "POST", "/zendesk/createticket", bad)
    bad_args = ("/zendesk/createticket", bad, bad_headers[auth.SIGNATURE_HEADER], bad_headers[auth.TIMESTAMP_HEADER])
    refused, refused_again = send_signed(app_bridge, *bad_args), send_signed(app_bridge, *bad_args)
    assert refused.status_code == refused_again.status_code == 400
    assert refused_again.json() == refused.json()


def seen_signatures(bridge: BridgeClient) -> list[dict[str, Any]]:
    engine = create_engine(sync_url(bridge.settings.bridge_database_url))
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text("SELECT signature, status FROM seensignature")).mappings()]
    finally:
        engine.dispose()


def test_a_retry_while_the_first_call_runs_is_409_then_gets_its_answer(
    bridge: BridgeClient, im_server: BackgroundServer
) -> None:
    make_group(im_server, "G-slow", "cust1")
    # An account IM knows: a join is then one add_group_member call, so two calls would mean two runs.
    im_call(im_server, "account_import", {"UserID": "agent-s"}, service="im_open_login_svc")
    raw = json.dumps({"groupId": "G-slow", "userId": "agent-s"}).encode()
    headers = auth.signed_call_headers(CALLOUT_SECRET, "POST", "/joingroup", raw)
    args = ("/joingroup", raw, headers[auth.SIGNATURE_HEADER], headers[auth.TIMESTAMP_HEADER])
    set_faults(im_server, latency=2.0, paths=["/v4/group_open_http_svc/add_group_member"])
    answers: list[Answer] = []
    first = threading.Thread(target=lambda: answers.append(send_signed(bridge, *args)))
    first.start()
    try:
        wait_for(lambda: any(row["status"] is None for row in seen_signatures(bridge)))  # the first call runs
        during = send_signed(bridge, *args)
    finally:
        first.join()
        set_faults(im_server)
    assert during.status_code == 409, during.text
    assert during.json()["error"]["code"] == "request_in_progress" and during.headers["retry-after"] == "1"
    assert answers[0].status_code == 200
    after = send_signed(bridge, *args)
    assert (after.status_code, after.json()) == (200, answers[0].json())
    assert im_calls(im_server, "add_group_member") == 1


def test_a_call_the_bridge_failed_may_be_retried(bridge: BridgeClient, im_server: BackgroundServer) -> None:
    make_group(im_server, "G-fail", "cust1")
    raw = json.dumps({"groupId": "G-fail", "userId": "agent-f"}).encode()
    headers = auth.signed_call_headers(CALLOUT_SECRET, "POST", "/joingroup", raw)
    args = ("/joingroup", raw, headers[auth.SIGNATURE_HEADER], headers[auth.TIMESTAMP_HEADER])
    set_faults(im_server, outage=True, status=400)
    failed = send_signed(bridge, *args)
    set_faults(im_server)
    assert failed.status_code == 502, failed.text
    retried = send_signed(bridge, *args)  # a 5xx answer is not kept: the identical call runs again
    assert retried.status_code == 200, retried.text
    assert members_of(im_server, "G-fail") == {"cust1", "agent-f"}


def test_reads_are_not_remembered(bridge: BridgeClient) -> None:
    headers = auth.signed_call_headers(CALLOUT_SECRET, "GET", "/links/G-none", b"")
    for _ in range(2):
        r = bridge.http.get("/links/G-none", headers=headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "link_not_found"
    engine = create_engine(sync_url(bridge.settings.bridge_database_url))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM seensignature")).scalar() == 0
    finally:
        engine.dispose()
