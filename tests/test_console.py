"""The agent console's API over HTTP: sessions and who may use them, history, sending as the agent, the live stream,
and the Zendesk app's signed first load. The browser drives the same API in tests/test_console_browser.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from bridge import auth
from bridge.console.auth import Session, issue, session_key
from bridge.sandbox.server import BackgroundServer
from tests.conftest import (
    IM_KEY,
    SDKAPPID,
    BridgeClient,
    BridgeFactory,
    ZendeskAdmin,
    helpdesk_settings,
    im_state,
    rsa_key_pair,
)
from tests.test_convergence import wait_for

TOKEN = "im-callback-token-for-console-tests"
INSTALLATION = "9001"


@dataclass
class Desk:
    """A bridge with both helpdesks, IM calling it back, the Zendesk app configured, and a Zendesk admin."""

    bridge: BridgeClient
    im: BackgroundServer
    zd: ZendeskAdmin
    app_private_key: bytes

    def open_ticket(self, user: str = "cust1", name: str = "Jane Doe") -> tuple[str, str]:
        body = {"userId": user, "caseInfo": {"subject": "Printer on fire", "name": name}}
        r = self.bridge.post("/zendesk/createticket", body)
        assert r.status_code == 201, r.text
        return str(r.json()["ticketId"]), str(r.json()["groupId"])

    def assign(self, ticket_id: str, agent: int | None) -> None:
        self.zd.update(ticket_id, assignee_id=agent)
        r = self.bridge.post("/assignment", {"groupId": f"ZENDESK#{ticket_id}"})
        assert r.status_code == 200, r.text

    def session(self, ticket_id: str, user_id: int | str) -> dict[str, Any]:
        body = {"provider": "zendesk", "userId": str(user_id), "ticketId": ticket_id}
        r = self.bridge.post("/console/sessions", body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def api(self, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
        return self.bridge.http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)

    def customer_says(self, group_id: str, text: str, user: str = "cust1") -> int:
        """The customer types in the app: the IM client API, authenticated by the customer's own UserSig."""
        sig = auth.gen_usersig(SDKAPPID, IM_KEY, user, 600)
        body = {"UserID": user, "UserSig": sig, "GroupId": group_id, "Text": text}
        r = httpx.post(self.im.url + "/_emulator/client/send", json=body)
        assert r.json()["ErrorCode"] == 0, r.text
        return int(r.json()["MsgSeq"])


def group_path(group_id: str, suffix: str = "") -> str:
    return "/console/api/groups/" + group_id.replace("#", "%23") + suffix


@pytest.fixture
def desk_factory(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, sf_server: BackgroundServer, zd_server: BackgroundServer
) -> Iterator[Any]:
    admin = ZendeskAdmin(zd_server)
    private, public = rsa_key_pair()

    def start(callbacks: bool = True, **overrides: Any) -> Desk:
        values = {
            **helpdesk_settings(sf_server.url, zd_server.url),
            "im_callback_token": TOKEN,
            "zendesk_app_public_key": public.decode(),
            "zendesk_app_installation_id": INSTALLATION,
            **overrides,
        }
        bridge = bridge_factory(**values)
        config = {"callback_url": bridge.server.url + "/callbacks/im" if callbacks else None, "callback_token": TOKEN}
        httpx.post(im_server.url + "/_emulator/config", json=config).raise_for_status()
        return Desk(bridge, im_server, admin, private)

    yield start
    admin.http.close()


@pytest.fixture
def desk(desk_factory: Any) -> Desk:
    return desk_factory()  # type: ignore[no-any-return]


# --- opening a session and who may use it -----------------------------------------------------------------------------


def test_history_is_newest_last_with_sender_names(desk: Desk) -> None:
    ticket, group = desk.open_ticket(name="Jane Doe")
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    for text in ("first", "second", "third"):
        desk.customer_says(group, text)
    session = desk.session(ticket, agent)
    assert session["groupId"] == group
    r = desk.api("GET", group_path(group, "/messages"), session["token"])
    assert r.status_code == 200, r.text
    messages = r.json()["messages"]
    assert [m["text"] for m in messages] == ["first", "second", "third"]
    assert {(m["from"], m["name"], m["role"]) for m in messages} == {("cust1", "Jane Doe", "customer")}
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)


def test_state_names_the_ticket_and_the_members(desk: Desk) -> None:
    ticket, group = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    session = desk.session(ticket, agent)
    assert session["agent"] == f"zd_{agent}"  # the agent's IM account, never a customer's userId
    state = desk.api("GET", group_path(group), session["token"]).json()
    assert (state["ticketId"], state["state"], state["canSend"]) == (ticket, "open", True)
    assert {m["account"]: m["role"] for m in state["members"]} == {"cust1": "customer", session["agent"]: "agent"}
    you = next(m for m in state["members"] if m["account"] == session["agent"])
    assert you["name"] == state["you"]["name"] != session["agent"]  # the agent's Zendesk name


def test_sessions_need_a_signed_call(desk: Desk) -> None:
    ticket, _ = desk.open_ticket()
    body = {"provider": "zendesk", "userId": str(desk.zd.agents[0]), "ticketId": ticket}
    r = desk.bridge.http.post("/console/sessions", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


def test_an_agent_who_does_not_have_the_ticket_gets_no_session(desk: Desk) -> None:
    ticket, _ = desk.open_ticket()
    desk.assign(ticket, desk.zd.agents[0])
    body = {"provider": "zendesk", "userId": str(desk.zd.agents[1]), "ticketId": ticket}
    r = desk.bridge.post("/console/sessions", body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_ticket"


def test_a_session_cannot_read_another_tickets_group(desk: Desk) -> None:
    agent = desk.zd.agents[0]
    mine, _ = desk.open_ticket("cust1")
    _, other_group = desk.open_ticket("cust2")
    desk.assign(mine, agent)
    desk.customer_says(other_group, "my card number is 4111", user="cust2")
    token = desk.session(mine, agent)["token"]
    for method, suffix in (("GET", ""), ("GET", "/messages"), ("GET", "/events"), ("POST", "/messages")):
        body = {"text": "hello", "random": 1} if method == "POST" else None
        r = desk.api(method, group_path(other_group, suffix), token, json=body)
        assert r.status_code == 403, (method, suffix, r.text)
        assert r.json()["error"]["code"] == "other_group"
        assert "4111" not in r.text


def test_a_reassigned_agent_loses_the_group(desk: Desk) -> None:
    ticket, group = desk.open_ticket()
    first, second = desk.zd.agents[:2]
    desk.assign(ticket, first)
    token = desk.session(ticket, first)["token"]
    desk.assign(ticket, second)
    r = desk.api("GET", group_path(group, "/messages"), token)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_ticket"
    assert desk.api("POST", "/console/api/session", token).status_code == 403  # nor renews it


def test_expired_and_forged_sessions_are_refused(desk: Desk) -> None:
    ticket, group = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    account = desk.session(ticket, agent)["agent"]
    session = Session("zendesk", str(agent), account, group, "", 0)
    expired, _ = issue(session_key(IM_KEY), session, 600, now=time.time() - 3600)
    r = desk.api("GET", group_path(group), expired)
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_expired"
    forged, _ = issue(session_key("another key"), session, 600)
    claims = jwt.decode(expired, options={"verify_signature": False})
    unsigned = jwt.encode({**claims, "exp": time.time() + 600}, "", algorithm="none")
    for token in (forged, unsigned, "garbage"):
        r = desk.api("GET", group_path(group), token)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated", token


def test_a_session_renews_while_the_agent_has_the_ticket(desk: Desk) -> None:
    ticket, group = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    first = desk.session(ticket, agent)
    r = desk.api("POST", "/console/api/session", first["token"])
    assert r.status_code == 200, r.text
    assert r.json()["groupId"] == group and r.json()["expiresAt"] >= first["expiresAt"]
    assert desk.api("GET", group_path(group), r.json()["token"]).status_code == 200


# --- sending as the agent ---------------------------------------------------------------------------------------------


def test_the_agent_sends_through_im_and_the_ticket_records_it_as_the_agents(desk: Desk) -> None:
    ticket, group = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    session = desk.session(ticket, agent)
    r = desk.api("POST", group_path(group, "/messages"), session["token"], json={"text": "On my way", "random": 77})
    assert r.status_code == 201, r.text
    assert r.json()["message"]["from"] == session["agent"] and r.json()["message"]["text"] == "On my way"
    stored = im_state(desk.im)["messages"][group][-1]
    assert stored["From_Account"] == session["agent"]
    assert stored["MsgBody"][0]["MsgContent"]["Text"] == "On my way"
    assert desk.im.app.state.im.accounts[session["agent"]]["Nick"]  # imported with the agent's name first
    # IM calls the bridge back; the message lands in the ticket as the agent's public comment, not the customer's.
    wait_for(lambda: any(c["body"] == "On my way" for c in desk.zd.comments(ticket)))
    comment = next(c for c in desk.zd.comments(ticket) if c["body"] == "On my way")
    assert comment["author_id"] == agent and comment["public"] is True
    # The same Random and text again is the same message (a retried send after a lost answer).
    again = desk.api("POST", group_path(group, "/messages"), session["token"], json={"text": "On my way", "random": 77})
    assert again.json()["message"]["seq"] == r.json()["message"]["seq"]
    assert im_state(desk.im)["messages"][group].count(stored) == 1


def test_a_closed_ticket_is_read_only(desk: Desk) -> None:
    ticket, group = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    desk.customer_says(group, "thanks, bye")
    token = desk.session(ticket, agent)["token"]
    desk.zd.update(ticket, status="closed")
    assert desk.bridge.post("/assignment", {"groupId": group}).status_code == 200
    state = desk.api("GET", group_path(group), token).json()
    assert (state["state"], state["canSend"]) == ("closed", False)
    r = desk.api("POST", group_path(group, "/messages"), token, json={"text": "hello?", "random": 5})
    assert r.status_code == 403
    assert [m["text"] for m in desk.api("GET", group_path(group, "/messages"), token).json()["messages"]] == [
        "thanks, bye"
    ]
    # The agent who had it can still open it later, read-only: the helpdesk still names them.
    assert desk.session(ticket, agent)["groupId"] == group


@pytest.mark.parametrize(
    "body",
    [{"text": "", "random": 1}, {"text": "x" * 4001, "random": 1}, {"text": "hi", "random": -1}, {"text": "hi"}, []],
)
def test_bad_messages_are_400(desk: Desk, body: Any) -> None:
    ticket, group = desk.open_ticket()
    desk.assign(ticket, desk.zd.agents[0])
    token = desk.session(ticket, desk.zd.agents[0])["token"]
    r = desk.api("POST", group_path(group, "/messages"), token, json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] in ("invalid_request", "invalid_json")


# --- the live stream --------------------------------------------------------------------------------------------------


def stream_until(desk: Desk, group: str, token: str, after: int, action: Any, wanted: Any) -> list[dict[str, Any]]:
    """Open the event stream, do `action`, and collect events until `wanted(events)`."""
    found: list[dict[str, Any]] = []
    opened = threading.Event()
    client = httpx.Client(base_url=desk.bridge.server.url, timeout=30)

    def read() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with client.stream("GET", group_path(group, f"/events?after={after}"), headers=headers) as response:
                found.append({"event": "status", "status": response.status_code, **response.headers})
                opened.set()
                name = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        found.append({"event": name, **json.loads(line[6:])})
        except httpx.HTTPError:
            pass  # closed below once the test has what it waited for

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10)
    assert found[0]["status"] == 200 and found[0]["content-type"].startswith("text/event-stream")
    time.sleep(0.3)  # the stream has made its first pull
    action()
    try:
        wait_for(lambda: wanted(found), timeout=10)
    finally:
        client.close()
        reader.join(10)
    return found[1:]


def test_the_stream_is_fed_by_im_callbacks(desk_factory: Any) -> None:
    desk = desk_factory(bridge_console_poll_seconds=600)  # no pull would find it in time: only the callback can
    ticket, group = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    token = desk.session(ticket, agent)["token"]
    seen = desk.customer_says(group, "before the stream")
    found = stream_until(
        desk,
        group,
        token,
        seen,
        lambda: desk.customer_says(group, "is anyone there?"),
        lambda f: any(e.get("text") == "is anyone there?" for e in f),
    )
    messages = [e for e in found if e["event"] == "message"]
    assert [m["text"] for m in messages] == ["is anyone there?"]  # nothing at or before `after` again
    assert messages[0]["role"] == "customer"


def test_the_stream_pulls_history_when_callbacks_do_not_arrive(desk_factory: Any) -> None:
    desk = desk_factory(callbacks=False, bridge_console_poll_seconds=0.2)
    ticket, group = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    token = desk.session(ticket, agent)["token"]
    stream_until(
        desk,
        group,
        token,
        0,
        lambda: desk.customer_says(group, "hello?"),
        lambda f: any(e.get("text") == "hello?" for e in f),
    )
    assert not im_state(desk.im)["callbacks"]


def test_the_stream_reports_a_closed_ticket(desk: Desk) -> None:
    ticket, group = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    token = desk.session(ticket, agent)["token"]

    def close() -> None:
        desk.zd.update(ticket, status="closed")
        desk.bridge.post("/assignment", {"groupId": group})

    found = stream_until(
        desk, group, token, 0, close, lambda f: any(e["event"] == "state" and e["state"] == "closed" for e in f)
    )
    state = next(e for e in found if e["event"] == "state")
    assert state["canSend"] is False


# --- the Zendesk app's signed first load ------------------------------------------------------------------------------


def zaf_token(desk: Desk, user_id: int | str, *, key: bytes | None = None, **claims: Any) -> str:
    """What Zendesk posts on the app's first load (signedUrls): an RS256 JWT signed with the app's key pair."""
    now = int(time.time())
    zendesk = desk.zd.server.url
    body = {
        "iss": zendesk.split("//")[1],
        "iat": now,
        "exp": now + 300,
        "aud": f"{zendesk}/api/v2/apps/installations/{INSTALLATION}.json",
        "sub": f"{zendesk}/api/v2/users/{user_id}.json",
        "context": {"product": "support", "location": "ticket_sidebar"},
        **claims,
    }
    return jwt.encode(body, key or desk.app_private_key, algorithm="RS256")


def hs256_with(public_key: str, claims: dict[str, Any]) -> str:
    """The algorithm-confusion forgery: an HS256 token keyed with the (public) RSA key."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    mac = hmac.new(public_key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def zendesk_load(desk: Desk, token: str | None) -> httpx.Response:
    data = {} if token is None else {"token": token}
    return desk.bridge.http.post("/console/zendesk?origin=https://acme.zendesk.com&app_guid=x", data=data)


def grant_of(page: httpx.Response) -> str:
    bootstrap = page.text.split('<script id="bootstrap" type="application/json">')[1].split("</script>")[0]
    return str(json.loads(bootstrap)["zendesk"]["grant"])


def test_zendesks_signed_load_opens_the_console_for_the_ticket_beside_it(desk: Desk) -> None:
    ticket, group = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    page = zendesk_load(desk, zaf_token(desk, agent))
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    grant = grant_of(page)
    r = desk.api("POST", "/console/api/sessions/zendesk", grant, json={"ticketId": ticket})
    assert r.status_code == 201, r.text
    assert r.json()["groupId"] == group
    assert desk.api("GET", group_path(group), r.json()["token"]).status_code == 200
    # The app's JavaScript names the ticket; Zendesk decides whose it is: another agent's ticket is refused.
    other, _ = desk.open_ticket("cust2")
    desk.assign(other, desk.zd.agents[1])
    r = desk.api("POST", "/console/api/sessions/zendesk", grant, json={"ticketId": other})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_ticket"
    # A grant is not a session.
    assert desk.api("GET", group_path(group), grant).status_code == 401


def test_forged_or_tampered_zendesk_tokens_are_refused(desk: Desk) -> None:
    ticket, _ = desk.open_ticket()
    agent = desk.zd.agents[0]
    desk.assign(ticket, agent)
    stranger_key, _ = rsa_key_pair()
    good = zaf_token(desk, agent)
    header, payload, signature = good.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = claims["sub"].replace(str(agent), str(desk.zd.agents[1]))
    tampered = ".".join([header, jwt.utils.base64url_encode(json.dumps(claims).encode()).decode(), signature])
    app_key = desk.bridge.settings.connectors["zendesk"].app_key  # type: ignore[attr-defined]
    refused = {
        "forged": zaf_token(desk, agent, key=stranger_key),
        "tampered": tampered,
        "expired": zaf_token(desk, agent, iat=int(time.time()) - 900, exp=int(time.time()) - 600),
        "other installation": zaf_token(desk, agent, aud=f"{desk.zd.server.url}/api/v2/apps/installations/1.json"),
        "hs256 with the public key": hs256_with(app_key or "", claims),
        "missing": None,
        "garbage": "a.b.c",
    }
    for why, token in refused.items():
        r = zendesk_load(desk, token)
        assert r.status_code == 401, (why, r.text)
        assert r.json()["error"]["code"] == "unauthenticated", why
        assert "grant" not in r.text


def test_the_zendesk_entry_is_off_until_the_app_is_configured(desk_factory: Any) -> None:
    desk = desk_factory(zendesk_app_public_key=None)
    r = zendesk_load(desk, zaf_token(desk, desk.zd.agents[0]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "zendesk_app_disabled"


def test_the_console_api_is_in_the_openapi_document(desk: Desk) -> None:
    paths = desk.bridge.http.get("/openapi.json").json()["paths"]
    for path in (
        "/console/sessions",
        "/console/zendesk",
        "/console/api/session",
        "/console/api/sessions/zendesk",
        "/console/api/groups/{groupId}",
        "/console/api/groups/{groupId}/messages",
        "/console/api/groups/{groupId}/events",
    ):
        assert path in paths, path
    assert "post" in paths["/console/api/groups/{groupId}/messages"]
    assert paths["/console/api/groups/{groupId}"]["get"]["security"] == [{"consoleSession": []}]


def test_the_salesforce_package_opens_a_session_for_the_cases_owner(desk: Desk, sf_admin: Any) -> None:
    """What HelpdeskBridgeConsoleController sends: the running user's Id and the Case on screen, signed."""
    r = desk.bridge.post("/salesforce/createticket", {"userId": "cust9", "caseInfo": {"subject": "Refund"}})
    case_id = r.json()["ticketId"]
    owner, other = sf_admin.state["agent_ids"][:2]
    sf_admin.update_case(case_id, OwnerId=owner)
    assert desk.bridge.post("/assignment", {"groupId": case_id, "newOwnerId": owner}).status_code == 200
    body = {"provider": "salesforce", "userId": owner[:15], "ticketId": case_id[:15]}  # 15-character forms too
    r = desk.bridge.post("/console/sessions", body)
    assert r.status_code == 201, r.text
    assert r.json()["groupId"] == case_id
    assert desk.api("GET", group_path(case_id, "/messages"), r.json()["token"]).status_code == 200
    r = desk.bridge.post("/console/sessions", {**body, "userId": other})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_ticket"
    r = desk.bridge.post("/console/sessions", {**body, "userId": "00G000000000001"})  # a queue is nobody
    assert r.status_code == 400
