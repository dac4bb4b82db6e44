"""The Tencent IM emulator over real HTTP: commands, access-layer errors, UserSig, limits, faults, callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from TLSSigAPIv2 import TLSSigAPIv2

from bridge.sandbox.im import create_app
from bridge.sandbox.im.usersig import verify_usersig
from bridge.sandbox.server import BackgroundServer
from tests.conftest import VECTORS

SDKAPPID = 1400000001
KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
ADMIN = "administrator"
GROUP = "group_open_http_svc"
LOGIN = "im_open_login_svc"


def sig(identifier: str = ADMIN, expire: int = 3600, sdkappid: int = SDKAPPID, key: str = KEY) -> str:
    return str(TLSSigAPIv2(sdkappid, key).gen_sig(identifier, expire))


class IM:
    """A bare REST caller: every knob of the URL can be bent."""

    def __init__(self, client: httpx.Client):
        self.client = client
        self.admin_sig = sig()

    def call(
        self,
        api: str,
        body: Any = None,
        *,
        method: str = "POST",
        identifier: str = ADMIN,
        usersig: str | None = None,
        query: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> Any:
        params: dict[str, Any] = (
            query
            if query is not None
            else {
                "sdkappid": SDKAPPID,
                "identifier": identifier,
                "usersig": usersig or self.admin_sig,
                "random": 12345,
                "contenttype": "json",
            }
        )
        content = raw if raw is not None else json.dumps({} if body is None else body).encode()
        response = self.client.request(method, f"/v4/{api}", params=params, content=content)
        assert response.status_code == 200, response.text
        return response.json()

    def ok(self, api: str, body: Any = None) -> dict[str, Any]:
        answer = self.call(api, body)
        assert (answer["ActionStatus"], answer["ErrorCode"]) == ("OK", 0), answer
        return answer

    def code(self, api: str, body: Any = None, **kwargs: Any) -> int:
        answer = self.call(api, body, **kwargs)
        assert answer["ActionStatus"] == ("OK" if answer["ErrorCode"] == 0 else "FAIL")
        assert isinstance(answer["ErrorInfo"], str)
        return int(answer["ErrorCode"])

    def users(self, *user_ids: str) -> None:
        for user_id in user_ids:
            self.ok(f"{LOGIN}/account_import", {"UserID": user_id})

    def group(self, group_id: str = "G1", owner: str | None = None, members: tuple[str, ...] = (), **extra: Any) -> str:
        body: dict[str, Any] = {"Type": "Public", "Name": "Printer on fire", "GroupId": group_id, **extra}
        if owner:
            body["Owner_Account"] = owner
        if members:
            body["MemberList"] = [{"Member_Account": m} for m in members]
        return str(self.ok(f"{GROUP}/create_group", body)["GroupId"])

    def send(self, group_id: str, text: str, rand: int = 1, **extra: Any) -> dict[str, Any]:
        body = {
            "GroupId": group_id,
            "Random": rand,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}],
            **extra,
        }
        return self.ok(f"{GROUP}/send_group_msg", body)

    def state(self) -> dict[str, Any]:
        return dict(self.client.get("/_emulator/state").json())


def wait_for(condition: Callable[[], Any], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(SDKAPPID, KEY)) as srv:
        yield srv


@pytest.fixture
def im(server: BackgroundServer) -> Iterator[IM]:
    with httpx.Client(base_url=server.url, timeout=5) as client:
        client.post("/_emulator/reset").raise_for_status()
        yield IM(client)


class Receiver:
    """A tiny callback endpoint that records what it is sent and can be told to be slow."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.delay = 0.0
        self.server = BackgroundServer(Starlette(routes=[Route("/im", self.receive, methods=["POST"])]))

    async def receive(self, request: Request) -> JSONResponse:
        import asyncio

        if self.delay:
            await asyncio.sleep(self.delay)
        self.calls.append({"query": dict(request.query_params), "body": await request.json()})
        return JSONResponse({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""})


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    with rec.server:
        yield rec


# --- accounts ---------------------------------------------------------------------------------------------------


def test_account_import_is_idempotent_and_accepts_old_identifier(im: IM, server: BackgroundServer) -> None:
    im.ok(f"{LOGIN}/account_import", {"UserID": "cust-1", "Nick": "Jane", "FaceUrl": "http://x/y.png"})
    im.ok(f"{LOGIN}/account_import", {"UserID": "cust-1"})
    im.ok(f"{LOGIN}/account_import", {"Identifier": "cust-2"})
    accounts = server.app.state.im.accounts
    assert accounts["cust-1"]["Nick"] == "Jane" and "cust-2" in accounts
    assert im.code(f"{LOGIN}/account_import", {"UserID": "x" * 33}) == 70402
    assert im.code(f"{LOGIN}/account_import", {"Nick": "nobody"}) == 70402


def test_multiaccount_import_reports_fail_accounts(im: IM) -> None:
    answer = im.ok(f"{LOGIN}/multiaccount_import", {"Accounts": ["a1", "a2", "y" * 40]})
    assert answer["FailAccounts"] == ["y" * 40]
    answer = im.ok(f"{LOGIN}/multiaccount_import", {"AccountList": [{"UserID": "a3", "Nick": "Three"}]})
    assert answer["FailAccounts"] == []
    assert im.code(f"{LOGIN}/multiaccount_import", {"Accounts": [f"u{i}" for i in range(101)]}) == 70402
    checked = im.ok(f"{LOGIN}/account_check", {"CheckItem": [{"UserID": "a3"}, {"UserID": "ghost"}]})
    assert [(r["UserID"], r["AccountStatus"]) for r in checked["ResultItem"]] == [
        ("a3", "Imported"),
        ("ghost", "NotImported"),
    ]
    assert im.code(f"{LOGIN}/account_check", {"CheckItem": []}) == 70402


# --- groups -----------------------------------------------------------------------------------------------------


def test_create_group_generates_ids_and_seats_members(im: IM, server: BackgroundServer) -> None:
    im.users("owner", "cust")
    group_id = str(
        im.ok(
            f"{GROUP}/create_group",
            {
                "Type": "Public",
                "Name": "Help",
                "Owner_Account": "owner",
                "MemberList": [{"Member_Account": "cust"}],
                "ApplyJoinOption": "FreeAccess",
            },
        )["GroupId"]
    )
    assert group_id.startswith("@TGS#2") and len(group_id) == 15
    group = server.app.state.im.groups[group_id]
    assert group["Members"]["owner"]["Role"] == "Owner" and group["Members"]["cust"]["Role"] == "Member"
    assert (group["ApplyJoinOption"], group["MuteAllMember"], group["Dismissed"]) == ("FreeAccess", "Off", False)


@pytest.mark.parametrize(
    ("group_id", "code"),
    [
        ("Z" * 48, 0),
        ("ZENDESK#42", 0),
        ("Z" * 49, 10015),
        ("@TGS#mine", 10015),
        ("bad\x01id", 10015),
        ("caf\u00e9", 10015),
        ("", 10015),
    ],
)
def test_custom_group_id_rules(im: IM, group_id: str, code: int) -> None:
    assert im.code(f"{GROUP}/create_group", {"Type": "Public", "Name": "n", "GroupId": group_id}) == code


def test_community_ids_need_their_own_prefix(im: IM) -> None:
    assert im.code(f"{GROUP}/create_group", {"Type": "Community", "Name": "n", "GroupId": "plain"}) == 10015
    assert im.code(f"{GROUP}/create_group", {"Type": "Community", "Name": "n", "GroupId": "@TGS#_c1"}) == 0


def test_recreating_a_group_meets_10025_and_a_dismissed_id_is_free_again(im: IM) -> None:
    im.group("ZENDESK#7")
    assert im.code(f"{GROUP}/create_group", {"Type": "Public", "Name": "again", "GroupId": "ZENDESK#7"}) == 10025
    im.ok(f"{GROUP}/destroy_group", {"GroupId": "ZENDESK#7"})
    im.group("ZENDESK#7")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"Type": "Public"}, 10004),
        ({"Type": "Public", "Name": "x" * 31}, 10004),
        ({"Type": "Public", "Name": "\u4e2d" * 11}, 10004),  # 33 bytes
        ({"Type": "Chat", "Name": "n"}, 10004),
        ({"Type": "Public", "Name": "n", "ApplyJoinOption": "Whatever"}, 10004),
        ({"Type": "Public", "Name": "n", "Owner_Account": "ghost"}, 10019),
        ({"Type": "Public", "Name": "n", "MemberList": [{"Member_Account": "ghost"}]}, 10019),
        ({"Type": "Public", "Name": "n", "MemberList": [{"Member_Account": "owner"}] * 101}, 10005),
        ({"Type": "AVChatRoom", "Name": "n", "MemberList": [{"Member_Account": "owner"}]}, 10007),
    ],
)
def test_create_group_errors(im: IM, body: dict[str, Any], code: int) -> None:
    im.users("owner")
    assert im.code(f"{GROUP}/create_group", body) == code


def test_destroy_group_is_final(im: IM, server: BackgroundServer) -> None:
    im.group("G1")
    im.ok(f"{GROUP}/destroy_group", {"GroupId": "G1"})
    assert server.app.state.im.groups["G1"]["Dismissed"] is True
    assert im.code(f"{GROUP}/destroy_group", {"GroupId": "G1"}) == 10010
    assert im.code(f"{GROUP}/destroy_group", {"GroupId": "never"}) == 10010
    assert im.code(f"{GROUP}/add_group_member", {"GroupId": "G1", "MemberList": [{"Member_Account": ADMIN}]}) == 10010


def test_add_group_member_results_and_silence(im: IM, server: BackgroundServer) -> None:
    im.users("cust", "agent", "agent2")
    im.group("G1", members=("cust",))
    answer = im.ok(
        f"{GROUP}/add_group_member",
        {"GroupId": "G1", "Silence": 1, "MemberList": [{"Member_Account": "agent"}, {"Member_Account": "cust"}]},
    )
    assert answer["MemberList"] == [{"Member_Account": "agent", "Result": 1}, {"Member_Account": "cust", "Result": 2}]
    assert server.app.state.im.groups["G1"]["Tips"] == []
    im.ok(f"{GROUP}/add_group_member", {"GroupId": "G1", "MemberList": [{"Member_Account": "agent2"}]})
    assert server.app.state.im.groups["G1"]["Tips"][0]["Members"] == ["agent2"]
    assert (
        im.code(
            f"{GROUP}/add_group_member",
            {"GroupId": "G1", "MemberList": [{"Member_Account": "ghost"}, {"Member_Account": "agent"}]},
        )
        == 10019
    )
    assert (
        im.code(f"{GROUP}/add_group_member", {"GroupId": "G1", "MemberList": [{"Member_Account": "agent"}] * 301})
        == 10005
    )
    assert im.code(f"{GROUP}/add_group_member", {"GroupId": "G1"}) == 10004
    assert set(server.app.state.im.members("G1")) == {"cust", "agent", "agent2"}


def test_delete_group_member_succeeds_for_non_members(im: IM, server: BackgroundServer) -> None:
    im.users("cust", "agent")
    im.group("G1", members=("cust", "agent"))
    im.ok(f"{GROUP}/delete_group_member", {"GroupId": "G1", "MemberToDel_Account": ["agent", "stranger"]})
    im.ok(f"{GROUP}/delete_group_member", {"GroupId": "G1", "MemberToDel_Account": ["agent"]})
    assert server.app.state.im.members("G1") == ["cust"]
    assert im.code(f"{GROUP}/delete_group_member", {"GroupId": "G1", "MemberToDel_Account": ["a"] * 101}) == 10005
    assert im.code(f"{GROUP}/delete_group_member", {"GroupId": "nope", "MemberToDel_Account": ["a"]}) == 10010


def test_get_group_info_reports_each_group(im: IM) -> None:
    im.users("owner", "cust")
    im.group("G1", owner="owner", members=("cust",))
    answer = im.ok(f"{GROUP}/get_group_info", {"GroupIdList": ["G1", "missing"]})
    found, missing = answer["GroupInfo"]
    assert (found["GroupId"], found["ErrorCode"], found["Type"], found["Name"]) == (
        "G1",
        0,
        "Public",
        "Printer on fire",
    )
    assert found["Owner_Account"] == "owner" and found["MemberNum"] == 2 and found["ShutUpAllMember"] == "Off"
    assert {m["Member_Account"]: m["Role"] for m in found["MemberList"]} == {"owner": "Owner", "cust": "Member"}
    assert (missing["GroupId"], missing["ErrorCode"]) == ("missing", 10010)
    filtered = im.ok(
        f"{GROUP}/get_group_info", {"GroupIdList": ["G1"], "ResponseFilter": {"GroupBaseInfoFilter": ["Name"]}}
    )["GroupInfo"][0]
    assert set(filtered) == {"GroupId", "ErrorCode", "ErrorInfo", "Name"}
    assert im.code(f"{GROUP}/get_group_info", {"GroupIdList": []}) == 10004


def test_get_group_member_info(im: IM) -> None:
    im.users("owner", "cust", "agent")
    im.group("G1", owner="owner", members=("cust", "agent"))
    answer = im.ok(f"{GROUP}/get_group_member_info", {"GroupId": "G1", "Limit": 2, "Offset": 1})
    assert answer["MemberNum"] == 3 and [m["Member_Account"] for m in answer["MemberList"]] == ["cust", "agent"]
    owners = im.ok(f"{GROUP}/get_group_member_info", {"GroupId": "G1", "MemberRoleFilter": ["Owner"]})
    assert [m["Member_Account"] for m in owners["MemberList"]] == ["owner"]
    assert im.code(f"{GROUP}/get_group_member_info", {"GroupId": "nope"}) == 10010


def test_mute_all_members_freezes_the_group(im: IM, server: BackgroundServer) -> None:
    im.users("owner", "cust")
    im.group("G1", owner="owner", members=("cust",))
    im.ok(f"{GROUP}/modify_group_base_info", {"GroupId": "G1", "MuteAllMember": "On", "Name": "Closed"})
    group = server.app.state.im.groups["G1"]
    assert (group["MuteAllMember"], group["Name"]) == ("On", "Closed")
    body = {"GroupId": "G1", "Random": 5, "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}]}
    assert im.code(f"{GROUP}/send_group_msg", {**body, "From_Account": "cust"}) == 10017
    assert im.code(f"{GROUP}/send_group_msg", {**body, "From_Account": "owner"}) == 0
    assert im.code(f"{GROUP}/send_group_msg", body) == 0  # the admin is never muted
    assert im.code(f"{GROUP}/modify_group_base_info", {"GroupId": "G1", "MuteAllMember": "Maybe"}) == 10004
    assert im.code(f"{GROUP}/modify_group_base_info", {"GroupId": "G1", "Name": "n" * 31}) == 10004
    im.ok(f"{GROUP}/modify_group_base_info", {"GroupId": "G1", "MuteAllMember": "Off"})
    assert im.code(f"{GROUP}/send_group_msg", {**body, "Random": 6, "From_Account": "cust"}) == 0


def test_send_group_system_notification(im: IM, server: BackgroundServer) -> None:
    im.group("G1")
    im.ok(f"{GROUP}/send_group_system_notification", {"GroupId": "G1", "Content": "Please wait"})
    im.ok(
        f"{GROUP}/send_group_system_notification",
        {"GroupId": "G1", "Content": "Only you", "ToMembers_Account": ["cust"]},
    )
    notes = server.app.state.im.notifications["G1"]
    assert [(n["Content"], n["ToMembers_Account"]) for n in notes] == [("Please wait", []), ("Only you", ["cust"])]
    assert im.code(f"{GROUP}/send_group_system_notification", {"GroupId": "G1"}) == 10004
    assert im.code(f"{GROUP}/send_group_system_notification", {"GroupId": "x", "Content": "c"}) == 10010


# --- messages ---------------------------------------------------------------------------------------------------


def test_send_group_msg_and_history(im: IM, server: BackgroundServer) -> None:
    im.users("cust")
    im.group("G1", members=("cust",))
    first = im.send("G1", "one", rand=1, From_Account="cust", CloudCustomData="meta")
    second = im.send("G1", "two", rand=2)
    assert (first["MsgSeq"], second["MsgSeq"]) == (1, 2) and isinstance(first["MsgTime"], int)
    stored = server.app.state.im.messages["G1"][0]
    assert (stored["From_Account"], stored["Random"], stored["CloudCustomData"]) == ("cust", 1, "meta")
    assert server.app.state.im.texts("G1") == ["one", "two"]
    history = im.ok(f"{GROUP}/group_msg_get_simple", {"GroupId": "G1", "ReqMsgNumber": 1})
    assert history["IsFinished"] == 0 and history["RspMsgList"][0]["MsgSeq"] == 2
    history = im.ok(f"{GROUP}/group_msg_get_simple", {"GroupId": "G1", "ReqMsgNumber": 5, "ReqMsgSeq": 1})
    assert history["IsFinished"] == 1
    assert [(m["From_Account"], m["MsgRandom"]) for m in history["RspMsgList"]] == [("cust", 1)]
    assert im.code(f"{GROUP}/group_msg_get_simple", {"GroupId": "G1", "ReqMsgNumber": 21}) == 10004


def test_recalled_message_is_a_placeholder_in_history(im: IM) -> None:
    im.users("cust")
    im.group("G1", members=("cust",))
    for n in (1, 2):
        im.send("G1", f"message {n}", rand=n, From_Account="cust")
    recalled = im.ok(f"{GROUP}/group_msg_recall", {"GroupId": "G1", "MsgSeqList": [{"MsgSeq": 1}, {"MsgSeq": 9}]})
    assert recalled["RecallRetList"] == [{"MsgSeq": 1, "RetCode": 0}, {"MsgSeq": 9, "RetCode": 10030}]
    history = im.ok(f"{GROUP}/group_msg_get_simple", {"GroupId": "G1", "ReqMsgNumber": 2})["RspMsgList"]
    assert [(m["MsgSeq"], m["IsPlaceMsg"], bool(m["MsgBody"])) for m in history] == [(2, 0, True), (1, 1, False)]
    assert im.code(f"{GROUP}/group_msg_recall", {"GroupId": "G1", "MsgSeqList": []}) == 10004
    assert im.code(f"{GROUP}/group_msg_recall", {"GroupId": "nope", "MsgSeqList": [{"MsgSeq": 1}]}) == 10010


def test_duplicate_random_and_content_is_dropped(im: IM, server: BackgroundServer) -> None:
    im.group("G1")
    first = im.send("G1", "hello", rand=77)
    again = im.send("G1", "hello", rand=77)
    assert again["MsgSeq"] == first["MsgSeq"]
    assert im.send("G1", "other text", rand=77)["MsgSeq"] == first["MsgSeq"] + 1
    assert server.app.state.im.texts("G1") == ["hello", "other text"]


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"Random": None}, 10004),
        ({"Random": -1}, 10004),
        ({"MsgBody": []}, 10004),
        ({"From_Account": "ghost"}, 10019),
        ({"From_Account": "outsider"}, 10007),
        ({"GroupId": "nope"}, 10010),
    ],
)
def test_send_group_msg_errors(im: IM, extra: dict[str, Any], code: int) -> None:
    im.users("outsider")
    im.group("G1")
    body = {"GroupId": "G1", "Random": 1, "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "x"}}]}
    assert im.code(f"{GROUP}/send_group_msg", {**body, **extra}) == code


def test_group_message_frequency_limit(im: IM) -> None:
    im.group("G1")
    codes = [
        im.code(
            f"{GROUP}/send_group_msg",
            {"GroupId": "G1", "Random": i, "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": str(i)}}]},
        )
        for i in range(45)
    ]
    assert codes[:40] == [0] * 40 and 10023 in codes[40:]


# --- the access layer -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usersig", "code"),
    [
        (lambda: sig(expire=-10), 70001),
        (lambda: sig(key="f" * 64), 70009),
        (lambda: sig(identifier="someone-else"), 70013),
        (lambda: sig(sdkappid=SDKAPPID + 1), 70014),
        (lambda: "not-a-usersig", 70003),
        (lambda: "eJyrVkrOz01VslIyNDJR0lEqLk1KTUsFsmuBAD8*Bm4_", 70003),
    ],
)
def test_usersig_failures(im: IM, usersig: Callable[[], str], code: int) -> None:
    assert im.code(f"{LOGIN}/account_check", {"CheckItem": [{"UserID": "a"}]}, usersig=usersig()) == code


def forged_sig(**numbers: Any) -> str:
    """The admin's UserSig with TLS.time, TLS.expire or TLS.sdkappid replaced (JSON allows Infinity and NaN)."""
    fields: dict[str, Any] = {
        "TLS.ver": "2.0",
        "TLS.identifier": ADMIN,
        "TLS.sdkappid": SDKAPPID,
        "TLS.time": int(time.time()),
        "TLS.expire": 3600,
        **numbers,
    }
    content = "".join(f"TLS.{k}:{fields['TLS.' + k]}\n" for k in ("identifier", "sdkappid", "time", "expire"))
    fields["TLS.sig"] = base64.b64encode(hmac.new(KEY.encode(), content.encode(), hashlib.sha256).digest()).decode()
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
    ],
)
def test_usersig_numbers_that_are_not_integers_are_malformed(im: IM, numbers: dict[str, Any]) -> None:
    assert im.code(f"{LOGIN}/account_check", {"CheckItem": [{"UserID": "a"}]}, usersig=forged_sig(**numbers)) == 70003


def test_identifier_must_be_the_admin(im: IM) -> None:
    im.users("alice")
    assert (
        im.code(f"{LOGIN}/account_check", {"CheckItem": [{"UserID": "a"}]}, identifier="alice", usersig=sig("alice"))
        == 60010
    )


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"SdkAppId": SDKAPPID, "identifier": ADMIN}, 60012),
        ({"sdkappid": SDKAPPID + 5, "identifier": ADMIN}, 60006),
        ({"sdkappid": SDKAPPID}, 60004),
        ({"sdkappid": SDKAPPID, "Identifier": ADMIN}, 60004),
    ],
)
def test_query_names_are_case_sensitive(im: IM, query: dict[str, Any], code: int) -> None:
    assert im.code(f"{LOGIN}/account_check", {}, query={**query, "usersig": im.admin_sig}) == code


def test_get_instead_of_post(im: IM) -> None:
    assert im.code(f"{GROUP}/get_group_info", {"GroupIdList": ["G1"]}, method="GET") == 60002


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"not json", b"", b'{"a":'])
def test_body_must_be_a_json_object(im: IM, raw: bytes) -> None:
    assert im.code(f"{GROUP}/get_group_info", raw=raw) == 60003


def test_unknown_command(im: IM) -> None:
    assert im.code(f"{GROUP}/no_such_command", {}) == 10003
    assert im.code("no_such_svc/whatever", {}) == 60009


def test_rate_limit_per_command_in_a_sliding_second() -> None:
    with (
        BackgroundServer(create_app(SDKAPPID, KEY, rate_limit=5)) as srv,
        httpx.Client(base_url=srv.url, timeout=5) as client,
    ):
        im = IM(client)
        body = {"CheckItem": [{"UserID": "a"}]}
        codes = [im.code(f"{LOGIN}/account_check", body) for _ in range(6)]
        assert codes == [0] * 5 + [60007]
        assert im.code(f"{GROUP}/get_group_info", {"GroupIdList": ["x"]}) == 0  # another API, another budget
        time.sleep(1.05)
        assert im.code(f"{LOGIN}/account_check", body) == 0


# --- faults -----------------------------------------------------------------------------------------------------


def test_injected_errors_look_like_tencent_internal_errors(im: IM) -> None:
    im.client.post("/_emulator/faults", json={"error_rate": 1.0}).raise_for_status()
    assert im.code(f"{GROUP}/get_group_info", {"GroupIdList": ["x"]}) == 10002
    assert im.code(f"{LOGIN}/account_check", {"CheckItem": [{"UserID": "a"}]}) == 70500
    assert im.client.get("/_emulator/state").status_code == 200  # control routes are never faulted
    im.client.post("/_emulator/faults", json={}).raise_for_status()
    assert im.code(f"{LOGIN}/account_check", {"CheckItem": [{"UserID": "a"}]}) == 0


def test_outage_is_a_status_without_json(im: IM) -> None:
    im.client.post("/_emulator/faults", json={"outage": True, "status": 502}).raise_for_status()
    response = im.client.post(f"/v4/{GROUP}/get_group_info", params={"sdkappid": SDKAPPID}, content=b"{}")
    assert response.status_code == 502
    with pytest.raises(ValueError):
        response.json()
    im.client.post("/_emulator/reset").raise_for_status()  # Faults.update keeps `injected`; reset zeroes it
    im.client.post("/_emulator/faults", json={"outage": True, "count": 1}).raise_for_status()
    assert im.client.post(f"/v4/{GROUP}/get_group_info").status_code == 503
    assert im.code(f"{GROUP}/get_group_info", {"GroupIdList": ["x"]}) == 0  # count spent


def test_latency(im: IM) -> None:
    im.client.post("/_emulator/faults", json={"latency": 0.2}).raise_for_status()
    started = time.monotonic()
    assert im.code(f"{GROUP}/get_group_info", {"GroupIdList": ["x"]}) == 0
    assert time.monotonic() - started >= 0.2


# --- callbacks --------------------------------------------------------------------------------------------------


def test_callbacks_are_delivered_and_signed(receiver: Receiver) -> None:
    receiver.calls.clear()
    app = create_app(SDKAPPID, KEY, callback_url=receiver.server.url + "/im?route=a", callback_token="tok")
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=5) as client:
        im = IM(client)
        im.users("cust")
        im.group("G1", members=("cust",))
        sent = im.send("G1", "from the bridge", rand=42, CloudCustomData="cc")
        wait_for(lambda: receiver.calls)
        call = receiver.calls[0]
        query, body = call["query"], call["body"]
        assert query["SdkAppid"] == str(SDKAPPID) and query["CallbackCommand"] == "Group.CallbackAfterSendMsg"
        assert (query["contenttype"], query["ClientIP"], query["OptPlatform"], query["route"]) == (
            "json",
            "127.0.0.1",
            "RESTAPI",
            "a",
        )
        assert query["Sign"] == hashlib.sha256(("tok" + query["RequestTime"]).encode()).hexdigest()
        assert abs(int(query["RequestTime"]) - time.time()) < 5
        assert set(body) == {
            "CallbackCommand",
            "GroupId",
            "Type",
            "From_Account",
            "Operator_Account",
            "Random",
            "MsgSeq",
            "MsgTime",
            "OnlineOnlyFlag",
            "MsgBody",
            "CloudCustomData",
            "EventTime",
        }
        assert (body["GroupId"], body["Type"], body["From_Account"], body["Operator_Account"]) == (
            "G1",
            "Public",
            ADMIN,
            ADMIN,
        )
        assert (body["Random"], body["MsgSeq"], body["CloudCustomData"]) == (42, sent["MsgSeq"], "cc")
        assert body["MsgBody"][0]["MsgContent"]["Text"] == "from the bridge"
        state = app.state.im
        wait_for(lambda: state.callbacks)
        assert state.callbacks[0]["Status"] == 200 and state.callbacks[0]["Response"]["ActionStatus"] == "OK"

        reply = client.post("/_emulator/send", json={"GroupId": "G1", "From_Account": "cust", "Text": "help!"})
        assert reply.status_code == 200 and reply.json()["MsgSeq"] == 2
        wait_for(lambda: len(receiver.calls) == 2)
        query, body = receiver.calls[1]["query"], receiver.calls[1]["body"]
        assert query["OptPlatform"] == "Web"
        assert (body["From_Account"], body["Operator_Account"], body["MsgSeq"]) == ("cust", "cust", 2)
        client.post("/_emulator/reset").raise_for_status()
        assert state.callback_url == receiver.server.url + "/im?route=a"  # reset keeps the configuration


def test_forbid_after_send_callback_and_config_route(im: IM, receiver: Receiver, server: BackgroundServer) -> None:
    receiver.calls.clear()
    config = im.client.post("/_emulator/config", json={"callback_url": receiver.server.url + "/im"}).json()
    assert config == {"callback_url": receiver.server.url + "/im", "callback_token_set": False}
    im.group("G1")
    im.send("G1", "quiet", rand=1, ForbidCallbackControl=["ForbidAfterSendMsgCallback"])
    im.send("G1", "loud", rand=2, ForbidCallbackControl=["ForbidBeforeSendMsgCallback"])
    wait_for(lambda: receiver.calls)
    time.sleep(0.1)
    assert [c["body"]["MsgBody"][0]["MsgContent"]["Text"] for c in receiver.calls] == ["loud"]
    assert "Sign" not in receiver.calls[0]["query"]


def test_a_slow_callback_never_delays_the_answer(im: IM, receiver: Receiver) -> None:
    receiver.calls.clear()
    receiver.delay = 1.0
    try:
        im.client.post("/_emulator/config", json={"callback_url": receiver.server.url + "/im"})
        im.group("G1")
        started = time.monotonic()
        im.send("G1", "hello")
        assert time.monotonic() - started < 0.5
        wait_for(lambda: receiver.calls)
    finally:
        receiver.delay = 0.0


# --- the client SDK: what any app user can do --------------------------------------------------------------------


def client(im: IM, user: str, command: str, body: dict[str, Any], usersig: str | None = None) -> dict[str, Any]:
    """A client SDK call as `user`, whose account exists (apps import their users)."""
    im.users(user)
    login = {"UserID": user, "UserSig": usersig or sig(user)}
    reply = im.client.post(f"/_emulator/client/{command}", json={**login, **body})
    assert reply.status_code == 200, reply.text
    answer = dict(reply.json())
    assert answer["ActionStatus"] == ("OK" if answer["ErrorCode"] == 0 else "FAIL"), answer
    return answer


def test_client_create_group_takes_the_id_and_makes_the_user_its_owner(im: IM, server: BackgroundServer) -> None:
    answer = client(im, "squatter", "create_group", {"GroupId": "ZENDESK#9", "Name": "Mine"})
    assert (answer["ErrorCode"], answer["GroupId"]) == (0, "ZENDESK#9")
    group = server.app.state.im.groups["ZENDESK#9"]
    assert (group["Type"], group["Owner_Account"], group["Members"]["squatter"]["Role"]) == (
        "Public",
        "squatter",
        "Owner",
    )
    # The admin's create of that ID now meets "used by someone else"; the owner's own retry meets 10025.
    assert im.code(f"{GROUP}/create_group", {"Type": "Public", "Name": "n", "GroupId": "ZENDESK#9"}) == 10021
    assert client(im, "squatter", "create_group", {"GroupId": "ZENDESK#9", "Name": "Again"})["ErrorCode"] == 10025
    im.group("ZENDESK#10")  # the admin's group, no owner: the admin's retry is 10025, anyone else's 10021
    assert im.code(f"{GROUP}/create_group", {"Type": "Public", "Name": "n", "GroupId": "ZENDESK#10"}) == 10025
    assert client(im, "squatter", "create_group", {"GroupId": "ZENDESK#10", "Name": "Mine"})["ErrorCode"] == 10021
    im.ok(f"{GROUP}/destroy_group", {"GroupId": "ZENDESK#9"})  # the app admin dismisses any group...
    im.group("ZENDESK#9")  # ...and its ID is free again


@pytest.mark.parametrize(
    ("group_type", "option", "code", "status"),
    [
        ("Public", "FreeAccess", 0, "JoinedSuccess"),
        ("Public", "NeedPermission", 0, "WaitAdminApproval"),
        ("Public", "DisableApply", 10007, None),
        ("ChatRoom", "FreeAccess", 0, "JoinedSuccess"),
        ("Private", "FreeAccess", 8508, None),  # Work groups are joined by invitation only
        ("AVChatRoom", "DisableApply", 0, "JoinedSuccess"),
    ],
)
def test_client_apply_join_follows_the_group_type(
    im: IM, server: BackgroundServer, group_type: str, option: str, code: int, status: str | None
) -> None:
    im.group("G1", Type=group_type, ApplyJoinOption=option)
    answer = client(im, "joiner", "apply_join", {"GroupId": "G1"})
    assert (answer["ErrorCode"], answer.get("JoinedStatus")) == (code, status)
    group = server.app.state.im.groups["G1"]
    assert ("joiner" in group["Members"]) == (status == "JoinedSuccess")
    assert [a["Requestor_Account"] for a in group["Applications"]] == (
        ["joiner"] if status == "WaitAdminApproval" else []
    )
    if status == "JoinedSuccess":
        assert client(im, "joiner", "apply_join", {"GroupId": "G1"})["JoinedStatus"] == "AlreadyInGroup"
    assert client(im, "joiner", "apply_join", {"GroupId": "nope"})["ErrorCode"] == 10010


@pytest.mark.parametrize(
    ("group_type", "inviter", "code"),
    [
        ("Public", "member", 10007),  # members of a Public group cannot invite
        ("Public", "owner", 0),
        ("Public", "outsider", 10007),
        ("Private", "member", 0),  # any member of a Work group invites anyone, no approval
        ("ChatRoom", "owner", 10007),  # Meeting groups are joined freely, never by invitation
    ],
)
def test_client_invite_follows_the_group_type(
    im: IM, server: BackgroundServer, group_type: str, inviter: str, code: int
) -> None:
    im.users("owner", "member", "outsider", "friend")
    im.group("G1", owner="owner", members=("member",), Type=group_type)
    invite = {"GroupId": "G1", "MemberList": [{"Member_Account": "friend"}]}
    answer = client(im, inviter, "invite", invite)
    assert answer["ErrorCode"] == code, answer
    assert ("friend" in server.app.state.im.groups["G1"]["Members"]) == (code == 0)
    if code == 0:
        assert answer["MemberList"] == [{"Member_Account": "friend", "Result": 1}]
        ghost = {"GroupId": "G1", "MemberList": [{"Member_Account": "ghost"}]}
        assert client(im, inviter, "invite", ghost)["ErrorCode"] == 10019


def test_client_get_group_profile_is_what_anyone_can_read(im: IM) -> None:
    im.users("cust")
    im.group("G1", members=("cust",), Notification="for members", Introduction="about us")
    profile = client(im, "stranger", "get_group_profile", {"GroupId": "G1"})["GroupInfo"]
    assert (profile["Name"], profile["Introduction"], profile["MemberNum"]) == ("Printer on fire", "about us", 1)
    assert "Notification" not in profile
    assert client(im, "cust", "get_group_profile", {"GroupId": "G1"})["GroupInfo"]["Notification"] == "for members"
    im.group("W1", Type="Private", members=("cust",))
    assert client(im, "stranger", "get_group_profile", {"GroupId": "W1"})["ErrorCode"] == 10007


def test_client_routes_need_the_users_own_usersig(im: IM) -> None:
    im.group("G1")
    body = {"GroupId": "G1"}
    assert client(im, "someone", "apply_join", body, usersig=sig("someone-else"))["ErrorCode"] == 70013
    assert client(im, "someone", "apply_join", body, usersig=sig("someone", key="f" * 64))["ErrorCode"] == 70009
    assert im.client.post("/_emulator/client/apply_join", json=body).json()["ErrorCode"] == 70402
    assert im.client.post("/_emulator/client/kick_everyone", json=body).status_code == 404


def test_send_refuses_a_sender_who_is_not_a_member(im: IM, server: BackgroundServer) -> None:
    im.users("cust", "stranger")
    im.group("G1", members=("cust",))
    reply = im.client.post("/_emulator/send", json={"GroupId": "G1", "From_Account": "stranger", "Text": "hi"})
    assert reply.status_code == 409 and reply.json()["ErrorCode"] == 10007
    assert server.app.state.im.messages["G1"] == []


# --- control routes and the UserSig check itself ----------------------------------------------------------------


def test_state_dump_send_and_reset(im: IM, server: BackgroundServer) -> None:
    im.users("cust")
    im.group("G1", members=("cust",))
    reply = im.client.post("/_emulator/send", json={"GroupId": "G1", "From_Account": "cust", "Text": "hi"})
    assert reply.status_code == 200
    assert (
        im.client.post("/_emulator/send", json={"GroupId": "nope", "From_Account": "cust", "Text": "x"}).status_code
        == 404
    )
    state = im.state()
    assert state["groups"]["G1"]["Members"]["cust"]["Role"] == "Member"
    assert state["messages"]["G1"][0]["OptPlatform"] == "Web" and "cust" in state["accounts"]
    logged = [r for r in state["requests"] if r["Command"] == "create_group"]
    assert logged and logged[0]["ErrorCode"] == 0 and "usersig" not in logged[0]["Query"]
    before = server.app.state.im
    im.client.post("/_emulator/reset").raise_for_status()
    assert server.app.state.im is before and before.groups == {} and list(before.accounts) == [ADMIN]


def test_usersig_known_answer_vectors() -> None:
    vectors = VECTORS["usersig"]
    expected = {"identifier mismatch": 70013, "expired": 70001, "malformed": 70003}
    for case in vectors["cases"]:
        code = verify_usersig(
            case["userSig"],
            identifier=case["userId"],
            sdkappid=vectors["sdkappid"],
            key=vectors["key"],
            now=vectors["now"],
        )
        assert code == (0 if case["valid"] else expected[case["why"]]), case
