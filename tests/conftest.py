"""Shared fixtures: emulators and the bridge as real HTTP servers on loopback, on SQLite and (when
BRIDGE_TEST_DATABASE_URL is set) PostgreSQL."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from bridge import auth
from bridge.app import create_app
from bridge.config import Settings, load_settings
from bridge.sandbox.im import create_app as create_im
from bridge.sandbox.server import BackgroundServer
from bridge.store import sync_url

# Known-answer vectors (tests/vectors/README.md): part of the repository, never optional.
VECTORS_FILE = Path(__file__).resolve().parent / "vectors" / "vectors.json"
VECTORS: Any = json.loads(VECTORS_FILE.read_text())
SDKAPPID = 1400000001
IM_KEY = "im-test-key-" + "0" * 52
CALLOUT_SECRET = "callout-secret-for-tests"
APP_SECRET = "app-secret-for-tests"
CALLBACK_TOKEN = "im-callback-token-for-tests"  # set on the bridge and on the IM emulator, as a deployment would
PG_URL = os.environ.get("BRIDGE_TEST_DATABASE_URL")

DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])


def reset_postgres(url: str) -> None:
    engine = create_engine(sync_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        assert PG_URL
        reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite:///{tmp_path / 'bridge.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bridge.db'}"


@pytest.fixture
def im_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_im(SDKAPPID, IM_KEY, callback_token=CALLBACK_TOKEN)) as server:
        yield server


def im_state(server: BackgroundServer) -> dict[str, Any]:
    return httpx.get(server.url + "/_emulator/state").json()  # type: ignore[no-any-return]


def greetings(server: BackgroundServer, group_id: str, timeout: float = 15.0) -> list[str]:
    """The texts the IM admin sent in a group: the greeting, which the bridge sends after answering createticket
    (the group's first job). Waits until there is one."""
    deadline = time.time() + timeout
    while True:
        messages = im_state(server)["messages"].get(group_id, [])
        texts = [
            e["MsgContent"]["Text"]
            for m in messages
            if m["From_Account"] == "administrator"
            for e in m["MsgBody"]
            if e["MsgType"] == "TIMTextElem"
        ]
        if texts or time.time() > deadline:
            return texts
        time.sleep(0.05)


def group_settled(im_url: str, group_id: str, timeout: float = 15.0) -> None:
    """Wait until a new ticket's group has had its first job, which follows the createticket answer: the greeting,
    then the owner check, whose last IM call reads the group's members. A test that changes the ticket's owner
    waits for it, so that what it then asks the bridge to do is not already done by that check."""
    deadline = time.time() + timeout
    while not any(
        r["Command"] == "get_group_member_info" and (r.get("Body") or {}).get("GroupId") == group_id
        for r in httpx.get(im_url + "/_emulator/state").json()["requests"]
    ):
        assert time.time() < deadline, f"the first job of {group_id} did not run"
        time.sleep(0.05)


def set_faults(server: BackgroundServer, **faults: Any) -> None:
    httpx.post(server.url + "/_emulator/faults", json=faults).raise_for_status()


def make_settings(database_url: str, im_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        im_sdkappid=SDKAPPID,
        im_secret_key=IM_KEY,
        im_api_base=im_url,
        bridge_database_url=database_url,
        bridge_callout_secret=CALLOUT_SECRET,
        im_callback_token=CALLBACK_TOKEN,
        bridge_job_retry_scale=0.001,
        bridge_create_patience_seconds=1.0,
        _env_file=None,
    )
    values.update(overrides)
    return load_settings(**values)


_last_signed_second = 0


@dataclass
class BridgeClient:
    """An httpx client for the bridge that signs calls the way Apex and customer backends do."""

    http: httpx.Client
    server: BackgroundServer
    settings: Settings

    def signed(
        self,
        method: str,
        target: str,
        body: Any = None,
        *,
        secret: str = CALLOUT_SECRET,
        headers: dict[str, str] | None = None,
        now: float | None = None,
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
        if now is None and method != "GET":
            # An identical call signed in the same second is a replay: a client repeating a call signs it
            # afresh, so each call here gets its own second (a little ahead of the clock is within the window).
            # Reads are never refused as replays, so they use the clock.
            global _last_signed_second
            _last_signed_second = max(int(time.time()), _last_signed_second + 1)
            now = _last_signed_second
        signed = auth.signed_call_headers(secret, method, target, raw, now=now)
        return self.http.request(
            method, target, content=raw, headers={"Content-Type": "application/json", **signed, **(headers or {})}
        )

    def post(self, target: str, body: Any, **kw: Any) -> httpx.Response:
        return self.signed("POST", target, body, **kw)

    def get(self, target: str, **kw: Any) -> httpx.Response:
        return self.signed("GET", target, **kw)

    def usersig(self, user_id: str, expire: int = 3600) -> str:
        return auth.gen_usersig(SDKAPPID, IM_KEY, user_id, expire)


BridgeFactory = Callable[..., BridgeClient]


@pytest.fixture
def bridge_factory(database_url: str, im_server: BackgroundServer) -> Iterator[BridgeFactory]:
    servers: list[BackgroundServer] = []
    clients: list[httpx.Client] = []

    def start(run_worker: bool = True, **overrides: Any) -> BridgeClient:
        settings = make_settings(overrides.pop("database_url", database_url), im_server.url, **overrides)
        server = BackgroundServer(create_app(settings, run_worker=run_worker)).start()
        servers.append(server)
        http = httpx.Client(base_url=server.url, timeout=30)
        clients.append(http)
        return BridgeClient(http, server, settings)

    yield start
    for http in clients:
        http.close()
    for server in servers:
        server.stop()


@pytest.fixture
def bridge(bridge_factory: BridgeFactory) -> BridgeClient:
    return bridge_factory()


def new_secret() -> str:
    return secrets.token_hex(16)


def im_call(
    server: BackgroundServer, command: str, body: dict[str, Any], service: str = "group_open_http_svc"
) -> dict[str, Any]:
    """One REST call to the IM emulator as the admin, the way Tencent's documentation shows it."""
    params: dict[str, str | int] = {
        "sdkappid": SDKAPPID,
        "identifier": "administrator",
        "contenttype": "json",
        "random": 1,
        "usersig": auth.gen_usersig(SDKAPPID, IM_KEY, "administrator", 3600),
    }
    answer = httpx.post(f"{server.url}/v4/{service}/{command}", params=params, json=body).json()
    return answer  # type: ignore[no-any-return]


def im_client(server: BackgroundServer, user: str, command: str, body: dict[str, Any]) -> dict[str, Any]:
    """What an app user does with the client SDK, logged in with their own UserSig (the emulator's client routes).
    The user's account is imported first, as any app does for its users."""
    im_call(server, "account_import", {"UserID": user}, service="im_open_login_svc")
    login = {"UserID": user, "UserSig": auth.gen_usersig(SDKAPPID, IM_KEY, user, 3600)}
    answer = httpx.post(f"{server.url}/_emulator/client/{command}", json={**login, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def make_group(server: BackgroundServer, group_id: str, *members: str) -> None:
    for member in members:
        im_call(server, "account_import", {"UserID": member}, service="im_open_login_svc")
    answer = im_call(
        server,
        "create_group",
        {"Type": "Public", "Name": "test", "GroupId": group_id, "MemberList": [{"Member_Account": m} for m in members]},
    )
    assert answer["ErrorCode"] == 0, answer


def members_of(server: BackgroundServer, group_id: str) -> set[str]:
    answer = im_call(server, "get_group_member_info", {"GroupId": group_id})
    assert answer["ErrorCode"] == 0, answer
    return {m["Member_Account"] for m in answer["MemberList"]}


# --- helpdesk emulators -----------------------------------------------------------------------------------------------

SF_USER, SF_PASSWORD, SF_TOKEN = "agent@example.com", "sf-test-password", "sf-test-token"
ZD_EMAIL, ZD_TOKEN = "admin@example.com", "zd-test-token"
SF_ADMIN_APP = ("admin-console-app", "admin-console-secret")  # a connected app the tests' "admin" logs in with


@pytest.fixture
def sf_server() -> Iterator[BackgroundServer]:
    from bridge.sandbox.salesforce import create_app as create_sf

    app = create_sf(
        username=SF_USER,
        password=SF_PASSWORD,
        security_token=SF_TOKEN,
        consumer_key=SF_ADMIN_APP[0],
        consumer_secret=SF_ADMIN_APP[1],
    )
    with BackgroundServer(app) as server:
        yield server


@pytest.fixture
def zd_server() -> Iterator[BackgroundServer]:
    from bridge.sandbox.zendesk import create_app as create_zd

    with BackgroundServer(create_zd(email=ZD_EMAIL, api_token=ZD_TOKEN)) as server:
        yield server


def helpdesk_settings(sf_url: str | None = None, zd_url: str | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if sf_url:
        values.update(
            salesforce_login_url=sf_url,
            salesforce_username=SF_USER,
            salesforce_password=SF_PASSWORD,
            salesforce_security_token=SF_TOKEN,
        )
    if zd_url:
        values.update(zendesk_url=zd_url, zendesk_email=ZD_EMAIL, zendesk_api_token=ZD_TOKEN)
    return values


@pytest.fixture
def helpdesk_bridge(
    bridge_factory: BridgeFactory, sf_server: BackgroundServer, zd_server: BackgroundServer
) -> BridgeClient:
    """The bridge with both connectors enabled against their emulators."""
    return bridge_factory(**helpdesk_settings(sf_server.url, zd_server.url))


class ZendeskAdmin:
    """What a Zendesk agent does (assign, solve, close, delete), through the real API."""

    def __init__(self, server: BackgroundServer):
        self.server = server
        self.http = httpx.Client(base_url=server.url + "/api/v2", auth=(f"{ZD_EMAIL}/token", ZD_TOKEN))
        self.agents = [u["id"] for u in self.http.get("/users.json").json()["users"] if u["role"] == "agent"]

    def update(self, ticket_id: str, **fields: Any) -> None:
        r = self.http.put(f"/tickets/{ticket_id}.json", json={"ticket": fields})
        assert r.status_code == 200, r.text

    def delete(self, ticket_id: str) -> None:
        assert self.http.delete(f"/tickets/{ticket_id}.json").status_code == 204

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        return self.http.get(f"/tickets/{ticket_id}.json").json()["ticket"]  # type: ignore[no-any-return]

    def comments(self, ticket_id: str) -> list[dict[str, Any]]:
        return self.http.get(f"/tickets/{ticket_id}/comments.json").json()["comments"]  # type: ignore[no-any-return]


class SalesforceAdmin:
    """What a Salesforce admin does in the org (change an owner, close a Case), through the real REST API."""

    def __init__(self, server: BackgroundServer):
        self.server = server
        token = httpx.post(
            server.url + "/services/oauth2/token",
            data={
                "grant_type": "password",
                "username": SF_USER,
                "password": SF_PASSWORD + SF_TOKEN,
                "client_id": SF_ADMIN_APP[0],
                "client_secret": SF_ADMIN_APP[1],
            },
        )
        token.raise_for_status()
        self.state = httpx.get(server.url + "/_emulator/state").json()
        self.http = httpx.Client(
            base_url=server.url + "/services/data/v62.0",
            headers={"Authorization": f"Bearer {token.json().get('access_token', '')}"},
        )

    def update_case(self, case_id: str, **fields: Any) -> None:
        r = self.http.patch(f"/sobjects/Case/{case_id}", json=fields)
        assert r.status_code == 204, r.text

    def delete_case(self, case_id: str) -> None:
        assert self.http.delete(f"/sobjects/Case/{case_id}").status_code == 204

    def case(self, case_id: str) -> dict[str, Any]:
        return self.http.get(f"/sobjects/Case/{case_id}").json()  # type: ignore[no-any-return]


@pytest.fixture
def zd_admin(zd_server: BackgroundServer) -> Iterator[ZendeskAdmin]:
    admin = ZendeskAdmin(zd_server)
    yield admin
    admin.http.close()


@pytest.fixture
def sf_admin(sf_server: BackgroundServer) -> Iterator[SalesforceAdmin]:
    admin = SalesforceAdmin(sf_server)
    yield admin
    admin.http.close()


def rsa_key_pair() -> tuple[bytes, bytes]:
    """A fresh RSA key pair (private PKCS8, public SPKI, PEM), for JWT-bearer logins."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public
