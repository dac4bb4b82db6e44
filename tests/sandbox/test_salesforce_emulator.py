"""The Salesforce emulator over real HTTP: the documented answers the bridge and simple-salesforce rely on."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from bridge.sandbox.salesforce import create_app
from bridge.sandbox.salesforce.core import make_id
from bridge.sandbox.server import BackgroundServer
from connectors.salesforce.ids import to_18
from tests.conftest import rsa_key_pair

USERNAME, PASSWORD, TOKEN = "agent@example.com", "Emu-Passw0rd", "Emu-T0ken"
KEY, SECRET = "3MVG9-emulator-key", "emulator-consumer-secret"
V = "/services/data/v62.0"


def is_salesforce_id(value: str, prefix: str) -> bool:
    """An 18-character Id of this key prefix whose checksum is the one Salesforce computes."""
    return len(value) == 18 and value.startswith(prefix) and to_18(value[:15]) == value


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return rsa_key_pair()


@pytest.fixture(scope="module")
def server(keys: tuple[bytes, bytes]) -> Iterator[BackgroundServer]:
    app = create_app(
        username=USERNAME,
        password=PASSWORD,
        security_token=TOKEN,
        consumer_key=KEY,
        consumer_secret=SECRET,
        jwt_public_key_pem=keys[1],
    )
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture
def http(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/_emulator/reset").raise_for_status()
        yield client


def soap_body(username: str, password: str) -> str:
    return f"""<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
  <env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com">
    <n1:username>{username}</n1:username><n1:password>{password}</n1:password>
  </n1:login></env:Body></env:Envelope>"""


def login(http: httpx.Client) -> dict[str, str]:
    response = http.post(
        "/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": KEY, "client_secret": SECRET},
    )
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def sf_state(http: httpx.Client) -> dict[str, Any]:
    return http.get("/_emulator/state").json()  # type: ignore[no-any-return]


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert isinstance(body, list) and set(body[0]) >= {"message", "errorCode"}
    return response.status_code, body[0]["errorCode"], body[0]["message"]


# --- ids and seed -------------------------------------------------------------------------------------------


def test_ids_are_18_characters_with_checksum(http: httpx.Client) -> None:
    state = sf_state(http)
    assert all(is_salesforce_id(uid, "005") for uid in state["users"])
    assert all(is_salesforce_id(qid, "00G") for qid in state["queues"])
    assert state["api_user_id"] in state["users"] and len(state["agent_ids"]) == 2
    assert state["users"][state["api_user_id"]]["Username"] == USERNAME
    assert is_salesforce_id(make_id("500", 123456), "500")


# --- SOAP login ---------------------------------------------------------------------------------------------


def test_soap_login_points_back_at_this_server(http: httpx.Client, server: BackgroundServer) -> None:
    response = http.post(
        "/services/Soap/u/62.0",
        content=soap_body(USERNAME, PASSWORD + TOKEN),
        headers={"content-type": "text/xml", "SOAPAction": "login"},
    )
    assert response.status_code == 200
    server_url = re.search(r"<serverUrl>(.*?)</serverUrl>", response.text)
    session_id = re.search(r"<sessionId>(.*?)</sessionId>", response.text)
    assert server_url and session_id
    assert server_url.group(1).startswith(server.url + "/services/Soap/u/62.0/")
    user = http.get(
        f"{V}/sobjects/User/{sf_state(http)['api_user_id']}",
        headers={"Authorization": "Bearer " + session_id.group(1)},
    )
    assert user.json()["Username"] == USERNAME


@pytest.mark.parametrize(
    "username,password",
    [(USERNAME, PASSWORD), (USERNAME, "nope" + TOKEN), ("someone@example.com", PASSWORD + TOKEN)],
)
def test_soap_login_fault(http: httpx.Client, username: str, password: str) -> None:
    response = http.post("/services/Soap/u/62.0", content=soap_body(username, password))
    assert response.status_code == 500
    assert "<faultcode>sf:INVALID_LOGIN</faultcode>" in response.text
    assert "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in response.text
    assert password not in response.text


# --- OAuth --------------------------------------------------------------------------------------------------


def test_client_credentials_with_basic_auth(http: httpx.Client, server: BackgroundServer) -> None:
    basic = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    body = http.post(
        "/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    ).json()
    assert body["instance_url"] == server.url and body["token_type"] == "Bearer"
    assert set(body) >= {"access_token", "id", "issued_at", "signature"}


def test_password_grant(http: httpx.Client) -> None:
    data = {
        "grant_type": "password",
        "client_id": KEY,
        "client_secret": SECRET,
        "username": USERNAME,
        "password": PASSWORD + TOKEN,
    }
    assert http.post("/services/oauth2/token", data=data).status_code == 200
    data["password"] = "bad"
    bad = http.post("/services/oauth2/token", data=data)
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "authentication failure"},
    )


@pytest.mark.parametrize(
    "data,expected",
    [
        (
            {"grant_type": "client_credentials", "client_id": "other", "client_secret": SECRET},
            "invalid_client_id",
        ),
        ({"grant_type": "client_credentials", "client_id": KEY, "client_secret": "bad"}, "invalid_client"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        (
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "not.a.jwt"},
            "invalid_grant",
        ),
    ],
)
def test_oauth_errors(http: httpx.Client, data: dict[str, str], expected: str) -> None:
    response = http.post("/services/oauth2/token", data=data)
    assert response.status_code == 400 and response.json()["error"] == expected


def _assertion(private: bytes, **claims: Any) -> str:
    payload = {
        "iss": KEY,
        "sub": USERNAME,
        "aud": "https://login.salesforce.com",
        "exp": f"{time.time() + 180:.0f}",
    }
    payload.update(claims)
    return jwt.encode(payload, private, algorithm="RS256")


@pytest.mark.parametrize(
    "claims,expected",
    [
        ({}, None),
        ({"aud": "https://acme.my.salesforce.com"}, None),
        ({"aud": "https://evil.example.com"}, "audience is invalid"),
        ({"exp": f"{time.time() - 10:.0f}"}, "expired authorization code"),
        ({"iss": "someone-else"}, "client identifier invalid"),
        ({"sub": "ghost@example.com"}, "authentication failure"),
    ],
)
def test_jwt_bearer(
    http: httpx.Client, keys: tuple[bytes, bytes], claims: dict[str, Any], expected: str | None
) -> None:
    response = http.post(
        "/services/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": _assertion(keys[0], **claims),
        },
    )
    if expected is None:
        assert response.status_code == 200 and response.json()["access_token"]
    else:
        assert response.status_code == 400 and response.json()["error_description"] == expected


def test_jwt_signed_by_another_key_is_refused(http: httpx.Client) -> None:
    response = http.post(
        "/services/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": _assertion(rsa_key_pair()[0]),
        },
    )
    assert response.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


# --- REST ---------------------------------------------------------------------------------------------------


def test_rest_needs_a_live_session(http: httpx.Client) -> None:
    assert http.post(f"{V}/sobjects/Case/", json={}, headers={"Authorization": "Bearer forged"}).json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}
    ]
    status, code, _ = error(http.get(f"{V}/query", params={"q": "SELECT Id FROM Case"}))
    assert (status, code) == (401, "INVALID_SESSION_ID")
    auth = login(http)
    assert http.get(f"{V}/query", params={"q": "SELECT Id FROM Case"}, headers=auth).status_code == 200
    assert http.post("/_emulator/expire_sessions").json()["expired"] == 1
    status, code, message = error(http.get(f"{V}/query", params={"q": "SELECT Id FROM Case"}, headers=auth))
    assert (status, code, message) == (401, "INVALID_SESSION_ID", "Session expired or invalid")


def test_case_create_defaults_and_read(http: httpx.Client) -> None:
    auth = login(http)
    created = http.post(
        f"{V}/sobjects/Case/",
        json={"Subject": "Help", "SuppliedEmail": "a@example.com", "Origin": "Chat"},
        headers=auth,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True and body["errors"] == [] and is_salesforce_id(body["id"], "500")
    case = http.get(f"{V}/sobjects/Case/{body['id'][:15]}", headers=auth).json()
    state = sf_state(http)
    assert case["attributes"]["type"] == "Case"
    assert (case["Id"], case["Status"], case["IsClosed"], case["IsDeleted"], case["OwnerId"]) == (
        body["id"],
        "New",
        False,
        False,
        state["default_queue_id"],
    )
    some = http.get(f"{V}/sobjects/Case/{body['id']}", params={"fields": "OwnerId,Status"}, headers=auth).json()
    assert set(some) == {"attributes", "OwnerId", "Status"}
    # Without assignment rules the creator owns the Case.
    mine = http.post(f"{V}/sobjects/Case/", json={}, headers={**auth, "Sforce-Auto-Assign": "FALSE"}).json()
    assert sf_state(http)["cases"][mine["id"]]["OwnerId"] == state["api_user_id"]


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"SuppliedEmail": "not an email"}, 400, "INVALID_EMAIL_ADDRESS"),
        ({"Nope__c": 1}, 400, "INVALID_FIELD"),
        ({"IsClosed": True}, 400, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"Subject": "x" * 256}, 400, "STRING_TOO_LONG"),
        ({"Status": "Sleeping"}, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"OwnerId": "garbage"}, 400, "MALFORMED_ID"),
        ({"OwnerId": "0055g00000XyZab"}, 400, "INVALID_CROSS_REFERENCE_KEY"),
    ],
)
def test_case_create_errors(http: httpx.Client, body: dict[str, Any], status: int, code: str) -> None:
    response = http.post(f"{V}/sobjects/Case/", json=body, headers=login(http))
    assert error(response)[:2] == (status, code)
    assert not sf_state(http)["cases"]


def test_invalid_email_message(http: httpx.Client) -> None:
    response = http.post(f"{V}/sobjects/Case/", json={"SuppliedEmail": "jane@"}, headers=login(http))
    assert response.json() == [
        {
            "message": "Web Email: invalid email address: jane@",
            "errorCode": "INVALID_EMAIL_ADDRESS",
            "fields": ["SuppliedEmail"],
        }
    ]


def test_malformed_json(http: httpx.Client) -> None:
    response = http.post(f"{V}/sobjects/Case/", content=b"{nope", headers=login(http))
    assert error(response)[:2] == (400, "JSON_PARSER_ERROR")


def test_update_close_and_delete(http: httpx.Client) -> None:
    auth = login(http)
    case_id = http.post(f"{V}/sobjects/Case/", json={"Subject": "x"}, headers=auth).json()["id"]
    agent = sf_state(http)["agent_ids"][1]
    assert http.patch(f"{V}/sobjects/Case/{case_id}", json={"OwnerId": agent[:15]}, headers=auth).status_code == 204
    assert http.get(f"{V}/sobjects/Case/{case_id}", headers=auth).json()["OwnerId"] == agent
    assert http.patch(f"{V}/sobjects/Case/{case_id}", json={"Status": "Closed"}, headers=auth).status_code == 204
    case = http.get(f"{V}/sobjects/Case/{case_id}", headers=auth).json()
    assert case["IsClosed"] is True and case["ClosedDate"]
    assert http.delete(f"{V}/sobjects/Case/{case_id}", headers=auth).status_code == 204
    assert error(http.get(f"{V}/sobjects/Case/{case_id}", headers=auth)) == (
        404,
        "ENTITY_IS_DELETED",
        "entity is deleted",
    )
    assert error(http.delete(f"{V}/sobjects/Case/{case_id}", headers=auth))[:2] == (404, "ENTITY_IS_DELETED")
    assert error(http.get(f"{V}/sobjects/Case/5005g00000ABCdeAAH", headers=auth)) == (
        404,
        "NOT_FOUND",
        "The requested resource does not exist",
    )


def test_upsert_by_external_id(http: httpx.Client) -> None:
    auth = login(http)
    url = f"{V}/sobjects/Case/Bridge_Request_Key__c/req-1"
    first = http.patch(url, json={"Subject": "once"}, headers=auth)
    assert first.status_code == 201 and first.json()["created"] is True
    again = http.patch(url, json={"Subject": "once"}, headers=auth)
    assert again.status_code == 200 and again.json() == {
        "id": first.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    missing = http.patch(f"{V}/sobjects/Case/No_Such__c/1", json={}, headers=auth)
    assert error(missing)[:2] == (404, "NOT_FOUND")


def test_case_comments(http: httpx.Client) -> None:
    auth = login(http)
    case_id = http.post(f"{V}/sobjects/Case/", json={"Subject": "x"}, headers=auth).json()["id"]
    created = http.post(
        f"{V}/sobjects/CaseComment/",
        json={"ParentId": case_id, "CommentBody": "hi", "IsPublished": True},
        headers=auth,
    )
    assert created.status_code == 201
    comment_id = created.json()["id"]
    assert is_salesforce_id(comment_id, "00a")
    comment = http.get(f"{V}/sobjects/CaseComment/{comment_id}", headers=auth).json()
    assert (comment["ParentId"], comment["CommentBody"], comment["IsPublished"]) == (case_id, "hi", True)
    assert error(http.post(f"{V}/sobjects/CaseComment/", json={"CommentBody": "x"}, headers=auth))[:2] == (
        400,
        "REQUIRED_FIELD_MISSING",
    )
    assert error(
        http.post(f"{V}/sobjects/CaseComment/", json={"ParentId": case_id, "CommentBody": "x" * 4001}, headers=auth)
    )[:2] == (400, "STRING_TOO_LONG")


def agent_session(http: httpx.Client, user_id: str) -> dict[str, str]:
    response = http.post("/_emulator/sessions", json={"userId": user_id})
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def test_an_agents_comment_is_recorded_as_the_agents(http: httpx.Client) -> None:
    auth = login(http)
    state = sf_state(http)
    alice = state["agent_ids"][0]
    case_id = http.post(f"{V}/sobjects/Case/", json={"Subject": "x"}, headers=auth).json()["id"]
    # A session of the agent (15-character Id accepted), as if Alice had logged in herself.
    as_alice = agent_session(http, alice[:15])
    comment_id = http.post(
        f"{V}/sobjects/CaseComment/",
        json={"ParentId": case_id, "CommentBody": "Hello from Alice", "IsPublished": True},
        headers=as_alice,
    ).json()["id"]
    comment = http.get(f"{V}/sobjects/CaseComment/{comment_id}", headers=auth).json()
    assert (comment["ParentId"], comment["CreatedById"], comment["IsPublished"]) == (case_id, alice, True)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000", comment["CreatedDate"])
    # Nobody chooses the author: CreatedById is set by Salesforce, never by the caller.
    spoofed = http.post(
        f"{V}/sobjects/CaseComment/",
        json={"ParentId": case_id, "CommentBody": "x", "CreatedById": alice},
        headers=auth,
    )
    assert error(spoofed)[:2] == (400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    assert http.get(f"{V}/sobjects/User/{alice}", params={"fields": "Name"}, headers=auth).json()["Name"] == (
        "Alice Agent"
    )


def test_renaming_a_user_changes_its_name(http: httpx.Client) -> None:
    auth = login(http)
    alice = sf_state(http)["agent_ids"][0]
    assert http.patch(f"{V}/sobjects/User/{alice[:15]}", json={"FirstName": "Dana"}, headers=auth).status_code == 204
    user = http.get(f"{V}/sobjects/User/{alice}", params={"fields": "Name,FirstName,LastName"}, headers=auth).json()
    assert (user["Name"], user["FirstName"], user["LastName"]) == ("Dana Agent", "Dana", "Agent")
    # Name is compound: written through FirstName and LastName only, and a last name is required.
    assert error(http.patch(f"{V}/sobjects/User/{alice}", json={"Name": "X"}, headers=auth))[:2] == (
        400,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
    )
    assert error(http.patch(f"{V}/sobjects/User/{alice}", json={"LastName": ""}, headers=auth))[:2] == (
        400,
        "REQUIRED_FIELD_MISSING",
    )
    assert error(http.patch(f"{V}/sobjects/User/{alice}", json={"Nick": "x"}, headers=auth))[:2] == (
        400,
        "INVALID_FIELD",
    )
    assert http.patch(f"{V}/sobjects/User/005000000000000AAA", json={}, headers=auth).status_code == 404
    assert sf_state(http)["users"][alice]["Name"] == "Dana Agent"


def test_soql_reads_a_comment_with_its_authors_name(http: httpx.Client) -> None:
    auth = login(http)
    state = sf_state(http)
    alice = state["agent_ids"][0]
    case_id = http.post(f"{V}/sobjects/Case/", json={"Subject": "x"}, headers=auth).json()["id"]
    comment_id = http.post(
        f"{V}/sobjects/CaseComment/",
        json={"ParentId": case_id, "CommentBody": "On it", "IsPublished": True},
        headers=agent_session(http, alice),
    ).json()["id"]
    soql = (
        "SELECT Id, ParentId, CommentBody, IsPublished, CreatedById, CreatedBy.Name FROM CaseComment "
        f"WHERE Id = '{comment_id[:15]}'"
    )
    result = http.get(f"{V}/query", params={"q": soql}, headers=auth).json()
    assert result == {
        "totalSize": 1,
        "done": True,
        "records": [
            {
                "attributes": {"type": "CaseComment", "url": f"{V}/sobjects/CaseComment/{comment_id}"},
                "Id": comment_id,
                "ParentId": case_id,
                "CommentBody": "On it",
                "IsPublished": True,
                "CreatedById": alice,
                "CreatedBy": {
                    "attributes": {"type": "User", "url": f"{V}/sobjects/User/{alice}"},
                    "Name": "Alice Agent",
                },
            }
        ],
    }
    both = http.get(
        f"{V}/query",
        params={"q": f"SELECT CreatedBy.Name, CreatedBy.Username FROM Case WHERE Id = '{case_id}'"},
        headers=auth,
    ).json()["records"][0]
    assert both["CreatedBy"] == {
        "attributes": {"type": "User", "url": f"{V}/sobjects/User/{state['api_user_id']}"},
        "Name": "Integration User",
        "Username": USERNAME,
    }


@pytest.mark.parametrize(
    "soql,message",
    [
        ("SELECT Owner.Name FROM CaseComment", "Didn't understand relationship 'Owner' in field path."),
        ("SELECT CreatedBy.Name FROM User", "Didn't understand relationship 'CreatedBy' in field path."),
        ("SELECT CreatedBy.Nope FROM CaseComment", "No such column 'Nope' on entity 'User'."),
        ("SELECT CreatedBy.Manager.Name FROM Case", "Didn't understand relationship 'CreatedBy' in field path."),
    ],
)
def test_soql_relationship_errors(http: httpx.Client, soql: str, message: str) -> None:
    status, code, text = error(http.get(f"{V}/query", params={"q": soql}, headers=login(http)))
    assert (status, code) == (400, "INVALID_FIELD") and text.startswith(message)


def test_who_a_session_belongs_to(http: httpx.Client, server: BackgroundServer) -> None:
    state = sf_state(http)
    org = state["org_id"]
    soap = http.post("/services/Soap/u/62.0", content=soap_body(USERNAME, PASSWORD + TOKEN)).text
    session_id = re.search(r"<sessionId>(.*?)</sessionId>", soap)
    assert session_id and f"<userId>{state['api_user_id']}</userId>" in soap
    integration = {"Authorization": "Bearer " + session_id.group(1)}
    bob = state["agent_ids"][1]
    for auth, user_id in (
        (integration, state["api_user_id"]),
        (login(http), state["api_user_id"]),
        (agent_session(http, bob), bob),
    ):
        resources = http.get(f"{V}/", headers=auth).json()
        assert resources["identity"].startswith(f"{server.url}/id/{org}")
        assert resources["identity"].rsplit("/", 1)[1] == user_id
        assert resources["query"] == f"{V}/query"


@pytest.mark.parametrize("body", [{"userId": "0055g00000XyZab"}, {"userId": "not an id"}, {}, "[1]"])
def test_sessions_route_needs_an_active_user(http: httpx.Client, body: Any) -> None:
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, str) else {"json": body}
    response = http.post("/_emulator/sessions", **kwargs)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert sf_state(http)["sessions"] == []


def test_soql_subset(http: httpx.Client) -> None:
    auth = login(http)
    ids = [
        http.post(f"{V}/sobjects/Case/", json={"Subject": f"s{i}", "Origin": "Chat"}, headers=auth).json()["id"]
        for i in range(3)
    ]
    http.patch(f"{V}/sobjects/Case/{ids[0]}", json={"Status": "Closed"}, headers=auth)

    def q(soql: str) -> httpx.Response:
        return http.get(f"{V}/query/", params={"q": soql}, headers=auth)

    result = q("SELECT Id, Status FROM Case WHERE Origin = 'Chat' AND IsClosed = false LIMIT 1").json()
    assert result["totalSize"] == 1 and result["done"] is True
    assert set(result["records"][0]) == {"attributes", "Id", "Status"}
    assert q(f"SELECT Id FROM Case WHERE Id = '{ids[1][:15]}'").json()["records"][0]["Id"] == ids[1]
    users = q(f"SELECT Id, Name FROM User WHERE Username = '{USERNAME}'").json()["records"]
    assert [u["Id"] for u in users] == [sf_state(http)["api_user_id"]]
    assert q("SELECT Id FROM CaseComment WHERE ParentId = 'x'").json()["totalSize"] == 0
    assert error(q("DELETE FROM Case"))[:2] == (400, "MALFORMED_QUERY")
    assert error(q("SELECT Id FROM Case WHERE Subject LIKE 's%'"))[:2] == (400, "MALFORMED_QUERY")
    assert error(q("SELECT Nope FROM Case"))[:2] == (400, "INVALID_FIELD")
    assert error(q("SELECT Id FROM Account"))[:2] == (400, "INVALID_TYPE")


# --- control, faults, limits --------------------------------------------------------------------------------


def test_faults_answer_salesforce_errors(http: httpx.Client) -> None:
    auth = login(http)
    http.post("/_emulator/faults", json={"status": 503, "error_rate": 1.0, "count": 1}).raise_for_status()
    response = http.get(f"{V}/query", params={"q": "SELECT Id FROM Case"}, headers=auth)
    assert error(response)[:2] == (503, "SERVER_UNAVAILABLE") and response.headers["retry-after"] == "1"
    assert http.get(f"{V}/query", params={"q": "SELECT Id FROM Case"}, headers=auth).status_code == 200
    http.post("/_emulator/faults", json={"outage": True, "count": None}).raise_for_status()
    outage = http.post("/services/Soap/u/62.0", content=soap_body(USERNAME, PASSWORD + TOKEN))
    assert outage.status_code == 503
    assert http.get("/_emulator/state").status_code == 200  # control routes are never faulted


def test_request_limit(http: httpx.Client) -> None:
    auth = login(http)
    http.post("/_emulator/limits", json={"api_limit": 2}).raise_for_status()
    first = http.get(f"{V}/query", params={"q": "SELECT Id FROM Case"}, headers=auth)
    assert first.headers["sforce-limit-info"] == "api-usage=1/2"
    http.get(f"{V}/query", params={"q": "SELECT Id FROM Case"}, headers=auth)
    assert error(http.get(f"{V}/query", params={"q": "SELECT Id FROM Case"}, headers=auth)) == (
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )


def test_state_and_log_hold_no_secrets(http: httpx.Client) -> None:
    auth = login(http)
    http.post("/services/Soap/u/62.0", content=soap_body(USERNAME, PASSWORD + TOKEN))
    http.get(f"{V}/query", params={"q": "SELECT Id FROM Case"}, headers=auth)
    dump = json.dumps(sf_state(http))
    for secret in (PASSWORD, TOKEN, SECRET, auth["Authorization"].split()[1]):
        assert secret not in dump
    kinds = [r["kind"] for r in sf_state(http)["requests"]]
    assert kinds == ["oauth_token", "soap_login", "rest"]


def test_reset_clears_everything(http: httpx.Client) -> None:
    auth = login(http)
    http.post(f"{V}/sobjects/Case/", json={}, headers=auth)
    http.post("/_emulator/reset").raise_for_status()
    state = sf_state(http)
    assert state["cases"] == {} and state["requests"] == [] and state["sessions"] == []
