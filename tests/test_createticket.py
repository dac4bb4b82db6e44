"""POST /createticket end to end: the real connectors against the helpdesk emulators, the IM emulator, a database."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bridge.states import JobKind
from connectors.salesforce import ids
from tests.conftest import (
    BridgeClient,
    BridgeFactory,
    greetings,
    helpdesk_settings,
    im_call,
    im_state,
    members_of,
    set_faults,
)

CASE = {"subject": "Printer on fire", "desc": "It smokes", "name": "Jane", "email": "jane@example.com"}


def emulator_state(server) -> dict:
    return httpx.get(server.url + "/_emulator/state").json()


def test_zendesk_ticket_group_greeting_link(helpdesk_bridge: BridgeClient, im_server, zd_server, zd_admin) -> None:
    r = helpdesk_bridge.post("/zendesk/createticket", {"userId": "user1", "caseInfo": CASE})
    assert r.status_code == 201, r.text
    body = r.json()
    ticket_id = body["ticketId"]
    assert body == {
        "provider": "zendesk",
        "ticketId": ticket_id,
        "groupId": f"ZENDESK#{ticket_id}",
        "ActionStatus": "OK",
        "ErrorCode": 0,
        "ErrorInfo": "",
        "GroupId": f"ZENDESK#{ticket_id}",
    }
    ticket = zd_admin.ticket(ticket_id)
    assert ticket["subject"] == "Printer on fire"
    requester = zd_admin.http.get(f"/users/{ticket['requester_id']}.json").json()["user"]
    assert requester["name"] == "Jane" and requester["email"] == "jane@example.com"
    group = im_state(im_server)["groups"][f"ZENDESK#{ticket_id}"]
    # Only the bridge's admin adds members: nobody may ask to join, members of a Public group cannot invite, no owner.
    assert (group["Type"], group["ApplyJoinOption"], group["Owner_Account"]) == ("Public", "DisableApply", "")
    assert group["Name"] == f"Support ticket {ticket_id}"  # IM shows a Public group's name to anyone: no subject
    assert members_of(im_server, f"ZENDESK#{ticket_id}") == {"user1"}
    assert greetings(im_server, f"ZENDESK#{ticket_id}") == ["We're assigning an agent to your subject, please wait..."]
    link = helpdesk_bridge.get(f"/links/ZENDESK%23{ticket_id}")
    assert link.status_code == 200 and link.json()["requesterId"] == "user1" and link.json()["state"] == "open"
    by_ticket = helpdesk_bridge.get(f"/links?provider=zendesk&ticketId={ticket_id}")
    assert by_ticket.json()["groupId"] == f"ZENDESK#{ticket_id}"


def test_salesforce_case_group(helpdesk_bridge: BridgeClient, im_server, sf_server, sf_admin) -> None:
    r = helpdesk_bridge.post("/salesforce/createticket", {"userId": "user2", "caseInfo": CASE})
    assert r.status_code == 201, r.text
    case_id = r.json()["ticketId"]
    assert len(case_id) == 18 and case_id.startswith("500") and r.json()["groupId"] == case_id
    for short in (f"/links/{case_id[:15]}", f"/links?provider=salesforce&ticketId={case_id[:15]}"):
        assert helpdesk_bridge.get(short).json()["groupId"] == case_id  # the 15-character form finds it too
    case = sf_admin.case(case_id)
    assert (case["Subject"], case["Description"], case["SuppliedName"], case["SuppliedEmail"], case["Origin"]) == (
        "Printer on fire",
        "It smokes",
        "Jane",
        "jane@example.com",
        "Chat",
    )
    assert members_of(im_server, case_id) == {"user2"}


def test_end_user_usersig_auth(helpdesk_bridge: BridgeClient) -> None:
    body = {"userId": "user3", "caseInfo": {"subject": "Hi"}}
    ok = helpdesk_bridge.http.post(
        "/zendesk/createticket", json=body, headers={"Authorization": f"UserSig {helpdesk_bridge.usersig('user3')}"}
    )
    assert ok.status_code == 201, ok.text
    other = helpdesk_bridge.http.post(
        "/zendesk/createticket", json=body, headers={"Authorization": f"UserSig {helpdesk_bridge.usersig('someone')}"}
    )
    assert other.status_code == 401
    assert helpdesk_bridge.http.post("/zendesk/createticket", json=body).status_code == 401
    garbage = helpdesk_bridge.http.post(
        "/zendesk/createticket", content=b"{oops", headers={"Authorization": "UserSig nope"}
    )
    assert garbage.status_code == 401


def test_usersig_of_either_form_of_a_salesforce_user_id(helpdesk_bridge: BridgeClient, im_server) -> None:
    """The IM account of a 15-character Salesforce Id is its 18-character form: a UserSig for either is accepted."""
    short = "0055g00000XyZab"
    full = ids.to_18(short)
    for n, signed_for in enumerate((short, full)):
        body = {"userId": short, "caseInfo": {"subject": f"Either {n}"}}
        headers = {"Authorization": f"UserSig {helpdesk_bridge.usersig(signed_for)}"}
        r = helpdesk_bridge.http.post("/zendesk/createticket", json=body, headers=headers)
        assert r.status_code == 201, r.text
        assert members_of(im_server, r.json()["groupId"]) == {full}
    other = {"Authorization": f"UserSig {helpdesk_bridge.usersig(ids.to_18('0055g00000XyZac'))}"}
    body = {"userId": short, "caseInfo": {"subject": "Not mine"}}
    assert helpdesk_bridge.http.post("/zendesk/createticket", json=body, headers=other).status_code == 401


def test_default_connector(bridge_factory: BridgeFactory, zd_server, sf_server) -> None:
    only_zendesk = bridge_factory(**helpdesk_settings(zd_url=zd_server.url))
    r = only_zendesk.post("/createticket", {"userId": "u4", "caseInfo": {"subject": "S"}})
    assert r.status_code == 201 and r.json()["provider"] == "zendesk"
    both = bridge_factory(**helpdesk_settings(sf_server.url, zd_server.url))
    r = both.post("/createticket", {"userId": "u4", "caseInfo": {"subject": "S"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_default_connector"
    chosen = bridge_factory(**helpdesk_settings(sf_server.url, zd_server.url), bridge_default_connector="salesforce")
    assert (
        chosen.post("/createticket", {"userId": "u4", "caseInfo": {"subject": "S"}}).json()["provider"] == "salesforce"
    )


@pytest.mark.parametrize(
    "body,message",
    [
        ({"caseInfo": {"subject": "x"}}, "userId is required"),
        ({"userId": "u"}, "caseInfo is required"),
        ({"userId": "u", "caseInfo": {}}, "caseInfo.subject is required"),
        ({"userId": "u", "caseInfo": {"subject": ""}}, "caseInfo.subject"),
        ({"userId": "u", "caseInfo": {"subject": "x", "email": "not-an-email"}}, "email is not a well-formed address"),
        ({"userId": "u", "caseInfo": "text"}, "caseInfo"),
    ],
)
def test_bad_input_is_400_and_creates_nothing(
    helpdesk_bridge: BridgeClient, zd_server, body, message, zd_admin
) -> None:
    r = helpdesk_bridge.post("/zendesk/createticket", body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]
    assert emulator_state(zd_server)["tickets"] == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Printer\x00on fire"),
        ("subject", "Printer\non fire"),
        ("subject", "\x1b[31mred"),
        ("name", "Jane\tDoe"),
        ("name", "Jane\x85Doe"),
        ("email", "jane\x00@example.com"),
        ("desc", "It smokes\x00"),
        ("desc", "It \x07 beeps"),
        ("desc", "del\x7f"),
    ],
)
def test_control_characters_are_400_and_create_nothing(
    helpdesk_bridge: BridgeClient, zd_server, field: str, value: str
) -> None:
    # On PostgreSQL a NUL let the ticket be created and then failed storing its link (409, retried for days).
    r = helpdesk_bridge.post("/zendesk/createticket", {"userId": "u1", "caseInfo": {"subject": "Help", field: value}})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request"
    assert f"caseInfo.{field}: must not contain control characters" in r.json()["error"]["message"]
    assert emulator_state(zd_server)["tickets"] == {}


def test_description_keeps_line_breaks_and_tabs(helpdesk_bridge: BridgeClient, zd_admin) -> None:
    desc = "First line\nSecond line\r\n\tindented"
    r = helpdesk_bridge.post("/zendesk/createticket", {"userId": "u1", "caseInfo": {"subject": "Help", "desc": desc}})
    assert r.status_code == 201, r.text
    assert desc in zd_admin.comments(r.json()["ticketId"])[0]["body"]


def test_unknown_connector_is_404(helpdesk_bridge: BridgeClient) -> None:
    r = helpdesk_bridge.post("/freshdesk/createticket", {"userId": "u", "caseInfo": {"subject": "x"}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_connector"


def test_idempotency_key(helpdesk_bridge: BridgeClient, zd_server, im_server, zd_admin) -> None:
    body = {"userId": "user5", "caseInfo": {"subject": "Once"}}
    first = helpdesk_bridge.post("/zendesk/createticket", body, headers={"Idempotency-Key": "abc-1"})
    again = helpdesk_bridge.post("/zendesk/createticket", body, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert len(emulator_state(zd_server)["tickets"]) == 1
    assert len(greetings(im_server, first.json()["groupId"])) == 1
    other = helpdesk_bridge.post(
        "/zendesk/createticket", {**body, "caseInfo": {"subject": "Twice"}}, headers={"Idempotency-Key": "abc-1"}
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


def test_idempotency_keys_are_the_callers_own(bridge_factory: BridgeFactory, zd_server, im_server, zd_admin) -> None:
    """A key another customer used first is no obstacle: keys are scoped by the end user, or by the signing secret."""
    from tests.conftest import APP_SECRET
    from tests.test_webhooks import jobs

    bridge = bridge_factory(**helpdesk_settings(zd_url=zd_server.url), bridge_app_secret=APP_SECRET)
    key = {"Idempotency-Key": "order-1"}

    def as_user(user: str, subject: str) -> httpx.Response:
        body = {"userId": user, "caseInfo": {"subject": subject}}
        headers = {**key, "Authorization": f"UserSig {bridge.usersig(user)}"}
        return bridge.http.post("/zendesk/createticket", json=body, headers=headers)

    squatter = as_user("mallory", "Claimed your key first")
    victim = as_user("alice", "My own ticket")
    victim_again = as_user("alice", "My own ticket")
    assert squatter.status_code == victim.status_code == victim_again.status_code == 201, victim.text
    assert victim.json()["ticketId"] != squatter.json()["ticketId"]
    assert victim_again.json() == victim.json()
    body = {"userId": "alice", "caseInfo": {"subject": "From a backend"}}
    by_app = bridge.post("/zendesk/createticket", body, headers=key, secret=APP_SECRET)
    by_callout = bridge.post("/zendesk/createticket", body, headers=key)
    assert by_app.status_code == by_callout.status_code == 201
    assert len({r.json()["ticketId"] for r in (squatter, victim, by_app, by_callout)}) == 4
    assert len(emulator_state(zd_server)["tickets"]) == 4
    callers = sorted(json.loads(j["payload_json"])["caller"] for j in jobs(bridge, JobKind.CREATE_TICKET))
    assert callers == ["app", "callout", "user:alice", "user:mallory"]


def test_helpdesk_refusal_is_502_and_leaves_nothing(helpdesk_bridge: BridgeClient, zd_server, im_server) -> None:
    set_faults(zd_server, outage=True, status=503)
    r = helpdesk_bridge.post("/zendesk/createticket", {"userId": "user6", "caseInfo": {"subject": "x"}})
    set_faults(zd_server)
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
    assert im_state(im_server)["groups"] == {}


def test_salesforce_invalid_email_is_502_with_message(helpdesk_bridge: BridgeClient, im_server) -> None:
    # Passes the bridge's own check, refused by Salesforce's stricter rule: the caller reads Salesforce's reason.
    r = helpdesk_bridge.post(
        "/salesforce/createticket", {"userId": "user7", "caseInfo": {"subject": "x", "email": "jane@example.c"}}
    )
    assert r.status_code == 502, r.text
    assert r.json()["error"]["upstream"] == "salesforce" and "email" in r.json()["error"]["message"].lower()
    assert im_state(im_server)["groups"] == {}


def test_im_down_answers_202_then_finishes(helpdesk_bridge: BridgeClient, im_server, zd_server) -> None:
    set_faults(im_server, outage=True, status=503)
    r = helpdesk_bridge.post("/zendesk/createticket", {"userId": "user8", "caseInfo": {"subject": "Later"}})
    assert r.status_code == 202, r.text
    group_id = r.json()["groupId"]
    assert group_id == f"ZENDESK#{r.json()['ticketId']}" and r.json()["GroupId"] == group_id
    set_faults(im_server)
    import time

    deadline = time.time() + 15
    while group_id not in im_state(im_server)["groups"]:
        assert time.time() < deadline, "the queued group was never created"
        time.sleep(0.1)
    assert members_of(im_server, group_id) == {"user8"}
    assert len(greetings(im_server, group_id)) == 1
    deadline = time.time() + 5
    while helpdesk_bridge.get(f"/links/{group_id.replace('#', '%23')}").json()["state"] != "open":
        assert time.time() < deadline
        time.sleep(0.1)


def test_retried_group_create_meeting_10021_never_adopts_the_group(
    helpdesk_bridge: BridgeClient, im_server, zd_server
) -> None:
    """IM answers the create 10021, "used by someone else", for a group that is already there. Whoever made it, the
    bridge never adopts it: it dismisses it and creates the ticket's own, with the customer in, greeted once."""
    ticket_id = emulator_state(zd_server)["next_id"]["ticket"]
    group_id = f"ZENDESK#{ticket_id}"
    im_call(im_server, "account_import", {"UserID": "user11"}, service="im_open_login_svc")
    im_call(im_server, "create_group", {"Type": "Public", "GroupId": group_id, "Name": "Lost answer"})
    set_faults(im_server, error_rate=1.0, code=10021, count=1, paths=["/v4/group_open_http_svc/create_group"])
    r = helpdesk_bridge.post("/zendesk/createticket", {"userId": "user11", "caseInfo": {"subject": "Lost answer"}})
    assert r.status_code == 201, r.text
    assert r.json()["groupId"] == group_id
    assert members_of(im_server, group_id) == {"user11"}
    group = im_state(im_server)["groups"][group_id]
    assert (group["Name"], group["ApplyJoinOption"]) == (f"Support ticket {ticket_id}", "DisableApply")
    requests = im_state(im_server)["requests"]
    commands = [r["Command"] for r in requests if r["Command"] in ("create_group", "destroy_group")]
    # The earlier group, the create IM refused with 10021, then that group dismissed and the ticket's created.
    assert commands == ["create_group", "create_group", "destroy_group", "create_group"]
    assert greetings(im_server, group_id) == ["We're assigning an agent to your subject, please wait..."]


def test_long_subject_is_cut_for_the_group_name(bridge_factory: BridgeFactory, zd_server, im_server) -> None:
    client = bridge_factory(**helpdesk_settings(zd_url=zd_server.url), bridge_group_name="{subject}")
    subject = "Ünïcödé " * 20
    r = client.post("/zendesk/createticket", {"userId": "user9", "caseInfo": {"subject": subject}})
    assert r.status_code == 201, r.text
    name = im_state(im_server)["groups"][r.json()["groupId"]]["Name"]
    assert len(name.encode()) <= 30 and subject.startswith(name)


def test_helpdesk_rate_limit_is_waited_out(bridge_factory: BridgeFactory, zd_server, im_server) -> None:
    client = bridge_factory(**helpdesk_settings(zd_url=zd_server.url), bridge_create_patience_seconds=10)
    httpx.post(zd_server.url + "/_emulator/rate_limit", json={"count": 2, "retry_after": 1}).raise_for_status()
    r = client.post(
        "/createticket",
        {"userId": "user10", "caseInfo": {"subject": "Busy day"}},
        headers={"Idempotency-Key": "busy-1"},
    )
    assert r.status_code == 201, r.text
    assert len(emulator_state(zd_server)["tickets"]) == 1


@pytest.mark.parametrize("own_limit", [180, 0])
def test_own_helpdesk_budget_keeps_a_burst_under_zendesks_limit(
    bridge_factory: BridgeFactory, zd_server, im_server, own_limit: int
) -> None:
    """ZENDESK_RATE_LIMIT spaces helpdesk calls, so a burst waits in the bridge instead of meeting 429s (which the
    bridge would wait out too, but each one costs the account's budget). Zendesk here allows 5 calls a second, and
    a new customer's ticket is three calls (find the end user, create it, create the ticket)."""
    client = bridge_factory(
        **helpdesk_settings(zd_url=zd_server.url), zendesk_rate_limit=own_limit, bridge_create_patience_seconds=20
    )
    httpx.post(zd_server.url + "/_emulator/rate_limit", json={"per_minute": 5, "window": 1}).raise_for_status()

    def create(n: int) -> int:
        user = f"burst{n}"
        headers = {"Authorization": f"UserSig {client.usersig(user)}"}
        body = {"userId": user, "caseInfo": {"subject": f"Burst {n}"}}
        return client.http.post("/zendesk/createticket", json=body, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, range(8)))
    assert statuses == [201] * 8
    refused = [r for r in emulator_state(zd_server)["requests"] if r.get("status") == 429]
    assert (len(refused) == 0) == (own_limit > 0), f"{len(refused)} calls refused with ZENDESK_RATE_LIMIT={own_limit}"
    assert len(emulator_state(zd_server)["tickets"]) == 8


def test_salesforce_blip_is_waited_out(bridge_factory: BridgeFactory, sf_server, im_server) -> None:
    client = bridge_factory(**helpdesk_settings(sf_url=sf_server.url), bridge_create_patience_seconds=10)
    set_faults(sf_server, outage=True, status=503, count=2, paths=["/services/data/"])
    r = client.post("/createticket", {"userId": "user11", "caseInfo": {"subject": "Blip"}})
    set_faults(sf_server)
    assert r.status_code == 201, r.text
    assert len(emulator_state(sf_server)["cases"]) == 1


def test_retry_after_a_502_with_the_same_key_succeeds(helpdesk_bridge: BridgeClient, zd_server, im_server) -> None:
    body = {"userId": "user12", "caseInfo": {"subject": "Try again"}}
    set_faults(zd_server, outage=True, status=503)
    assert (
        helpdesk_bridge.post("/zendesk/createticket", body, headers={"Idempotency-Key": "again-1"}).status_code == 502
    )
    set_faults(zd_server)
    r = helpdesk_bridge.post("/zendesk/createticket", body, headers={"Idempotency-Key": "again-1"})
    assert r.status_code == 201, r.text
    assert len(emulator_state(zd_server)["tickets"]) == 1
    assert list(im_state(im_server)["groups"]) == [r.json()["groupId"]]


def test_one_user_cannot_hold_more_than_its_share_of_createticket(
    bridge_factory: BridgeFactory, zd_server, im_server
) -> None:
    """BRIDGE_CREATE_PER_USER open requests per end user; one more is 429 with Retry-After while another user's
    request still goes through. The helpdesk is slowed so that every request is still open when the last arrives."""
    client = bridge_factory(**helpdesk_settings(zd_url=zd_server.url), bridge_create_per_user=2)
    set_faults(zd_server, latency=1.5, paths=["/api/v2/"])

    def create(user_and_n: tuple[str, int]) -> httpx.Response:
        user, n = user_and_n
        headers = {"Authorization": f"UserSig {client.usersig(user)}"}
        body = {"userId": user, "caseInfo": {"subject": f"Ticket {n}"}}
        return client.http.post("/zendesk/createticket", json=body, headers=headers)

    with ThreadPoolExecutor(4) as pool:
        greedy, other = (
            pool.map(create, [("greedy", 1), ("greedy", 2), ("greedy", 3)]),
            pool.submit(create, ("other", 4)),
        )
        answers = list(greedy)
    assert sorted(r.status_code for r in answers) == [201, 201, 429], [r.text for r in answers]
    (refused,) = [r for r in answers if r.status_code == 429]
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) > 0
    assert other.result().status_code == 201, other.result().text
    set_faults(zd_server)
    assert create(("greedy", 5)).status_code == 201  # the slots are given back once the requests are answered
