"""POST /callbacks/im: Tencent's callback authentication, the transcript in the ticket, echo suppression, redelivery."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest

from bridge import auth
from bridge.sandbox.server import BackgroundServer
from bridge.transcript import render
from tests.conftest import (
    SDKAPPID,
    BridgeClient,
    BridgeFactory,
    helpdesk_settings,
    im_call,
    im_state,
    set_faults,
)
from tests.test_convergence import wait_for
from tests.test_webhooks import jobs

TOKEN = "im-callback-token-for-tests"
IM_OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
AFTER_SEND = "Group.CallbackAfterSendMsg"


@pytest.fixture
def cb_bridge(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, sf_server: BackgroundServer, zd_server: BackgroundServer
) -> BridgeClient:
    """Both helpdesks, callback authentication on, and the IM emulator calling back into this bridge."""
    bridge = bridge_factory(**helpdesk_settings(sf_server.url, zd_server.url), im_callback_token=TOKEN)
    httpx.post(
        im_server.url + "/_emulator/config",
        json={"callback_url": bridge.server.url + "/callbacks/im", "callback_token": TOKEN},
    ).raise_for_status()
    return bridge


def callback(
    bridge: BridgeClient,
    body: Any,
    *,
    token: str = TOKEN,
    age: int = 0,
    sign: str | None = None,
    params: dict[str, Any] | None = None,
    raw: bytes | None = None,
) -> httpx.Response:
    request_time = str(int(time.time()) - age)
    query: dict[str, Any] = {
        "SdkAppid": SDKAPPID,
        "CallbackCommand": AFTER_SEND,
        "contenttype": "json",
        "ClientIP": "10.0.0.1",
        "OptPlatform": "iOS",
        "RequestTime": request_time,
        "Sign": sign if sign is not None else auth.im_callback_sign(token, request_time),
    }
    query.update(params or {})
    query = {k: v for k, v in query.items() if v is not None}
    if raw is not None:
        return bridge.http.post("/callbacks/im", params=query, content=raw)
    return bridge.http.post("/callbacks/im", params=query, json=body)


def message(group_id: str, sender: str, text: str = "hello", seq: int | None = 1, **extra: Any) -> dict[str, Any]:
    body = {
        "CallbackCommand": AFTER_SEND,
        "GroupId": group_id,
        "Type": "Public",
        "From_Account": sender,
        "Operator_Account": sender,
        "Random": 123456,
        "MsgSeq": seq,
        "MsgTime": int(time.time()),
        "OnlineOnlyFlag": 0,
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}],
        "CloudCustomData": "",
        "EventTime": int(time.time() * 1000),
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def send(im_server: BackgroundServer, group_id: str, sender: str, text: str = "", **extra: Any) -> int:
    """A message typed in the app: the emulator stores it and calls the bridge back."""
    r = httpx.post(
        im_server.url + "/_emulator/send", json={"GroupId": group_id, "From_Account": sender, "Text": text, **extra}
    )
    assert r.status_code == 200, r.text
    return int(r.json()["MsgSeq"])


def delivered(im_server: BackgroundServer, count: int) -> list[dict[str, Any]]:
    """Wait until `count` callbacks were delivered and answered; return them."""
    wait_for(lambda: len([c for c in im_state(im_server)["callbacks"] if c["Status"] or c["Error"]]) >= count)
    return im_state(im_server)["callbacks"]  # type: ignore[no-any-return]


def open_ticket(bridge: BridgeClient, provider: str, user: str = "cust1") -> str:
    r = bridge.post(f"/{provider}/createticket", {"userId": user, "caseInfo": {"subject": "Broken", "desc": "Help"}})
    assert r.status_code == 201, r.text
    return str(r.json()["groupId"])


def comments(zd_admin: Any, group_id: str) -> list[dict[str, Any]]:
    return zd_admin.comments(group_id.removeprefix("ZENDESK#"))  # type: ignore[no-any-return]


def case_comments(sf_server: BackgroundServer, case_id: str) -> list[dict[str, Any]]:
    state = httpx.get(sf_server.url + "/_emulator/state").json()
    return [c for c in state["case_comments"].values() if c["ParentId"] == case_id]


# --- the transcript ---------------------------------------------------------------------------------------------


def test_customer_and_agent_messages_become_zendesk_comments(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any
) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    requester = zd_admin.ticket(group.removeprefix("ZENDESK#"))["requester_id"]
    agent = str(zd_admin.agents[0])
    assert cb_bridge.post("/joingroup", {"groupId": group, "userId": agent}).status_code == 200

    send(im_server, group, "cust1", "My printer is on fire")
    wait_for(lambda: len(comments(zd_admin, group)) == 2)
    send(im_server, group, agent, "Please step away from the printer")
    wait_for(lambda: len(comments(zd_admin, group)) == 3)
    _, from_customer, from_agent = comments(zd_admin, group)
    assert (from_customer["body"], from_customer["author_id"], from_customer["public"]) == (
        "My printer is on fire",
        requester,
        True,
    )
    assert (from_agent["body"], from_agent["author_id"], from_agent["public"]) == (
        "Please step away from the printer",
        int(agent),
        True,
    )
    assert all(c["Response"] == IM_OK for c in delivered(im_server, 2))


def test_messages_become_published_case_comments(
    cb_bridge: BridgeClient, im_server: BackgroundServer, sf_server: BackgroundServer, sf_admin: Any
) -> None:
    case_id = open_ticket(cb_bridge, "salesforce", user="cust2")
    agent = sf_admin.state["agent_ids"][0]
    assert cb_bridge.post("/joingroup", {"groupId": case_id, "userId": agent}).status_code == 200
    send(im_server, case_id, "cust2", "Where is my refund?")
    wait_for(lambda: len(case_comments(sf_server, case_id)) == 1)
    send(im_server, case_id, agent, "On its way")
    wait_for(lambda: len(case_comments(sf_server, case_id)) == 2)
    first, second = sorted(case_comments(sf_server, case_id), key=lambda c: c["Id"])
    assert first["IsPublished"] and second["IsPublished"]
    assert "Where is my refund?" in first["CommentBody"] and "cust2" in first["CommentBody"]
    assert "On its way" in second["CommentBody"] and agent in second["CommentBody"]


def test_images_files_and_custom_messages(cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    image = {
        "MsgType": "TIMImageElem",
        "MsgContent": {
            "UUID": "u1",
            "ImageFormat": 1,
            "ImageInfoArray": [
                {"Type": 3, "Size": 10, "Width": 0, "Height": 0, "URL": "https://cos.example.com/img/198"},
                {"Type": 1, "Size": 100, "Width": 2448, "Height": 3264, "URL": "https://cos.example.com/img/0"},
            ],
        },
    }
    text = {"MsgType": "TIMTextElem", "MsgContent": {"Text": "see the photo"}}
    send(im_server, group, "cust1", MsgBody=[text, image])
    wait_for(lambda: len(comments(zd_admin, group)) == 2)
    assert comments(zd_admin, group)[-1]["body"] == "see the photo\nhttps://cos.example.com/img/0"
    custom = {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "order #42 is late", "Desc": "push text"}}
    send(im_server, group, "cust1", MsgBody=[custom])
    wait_for(lambda: len(comments(zd_admin, group)) == 3)
    assert comments(zd_admin, group)[-1]["body"] == "order #42 is late"


RENDERED: list[tuple[list[Any], str]] = [
    ([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}], "hi"),
    (
        [
            {
                "MsgType": "TIMFileElem",
                "MsgContent": {
                    "Url": "https://cos.example.com/f",
                    "FileSize": 3,
                    "FileName": "invoice.pdf",
                    "Download_Flag": 2,
                },
            }
        ],
        "https://cos.example.com/f",
    ),
    (
        [
            {
                "MsgType": "TIMSoundElem",
                "MsgContent": {"Url": "https://cos.example.com/s", "Size": 1, "Second": 2, "Download_Flag": 2},
            }
        ],
        "https://cos.example.com/s",
    ),
    (
        [
            {
                "MsgType": "TIMVideoFileElem",
                "MsgContent": {
                    "VideoUrl": "https://cos.example.com/v",
                    "VideoSize": 9,
                    "ThumbUrl": "https://cos.example.com/t",
                },
            }
        ],
        "https://cos.example.com/v",
    ),
    (
        [
            {
                "MsgType": "TIMImageElem",
                "MsgContent": {
                    "ImageInfoArray": [
                        {"Type": 2, "URL": "https://cos.example.com/large"},
                        {"Type": 3, "URL": "https://cos.example.com/thumb"},
                    ]
                },
            }
        ],
        "https://cos.example.com/large",
    ),
    ([{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "", "Desc": "a card"}}], "a card"),
    (
        [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": '{"businessID": "text_link", "text": "Read this"}'}}],
        "Read this",
    ),
    ([{"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1, "Data": ""}}], "[emoji 1]"),
    (
        [{"MsgType": "TIMLocationElem", "MsgContent": {"Desc": "Office", "Latitude": 22.5, "Longitude": 114.1}}],
        "Office (22.5, 114.1)",
    ),
    ([{"MsgType": "TIMRelayElem", "MsgContent": {}}], "[TIMRelayElem]"),
    (
        [
            {"MsgType": "TIMTextElem", "MsgContent": {"Text": "a"}},
            {"MsgType": "TIMTextElem", "MsgContent": {"Text": "b"}},
        ],
        "a\nb",
    ),
    ([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "  "}}, "junk", {"MsgType": "TIMTextElem"}], ""),
]


def test_render_table() -> None:
    for msg_body, expected in RENDERED:
        assert render(msg_body) == expected, msg_body


# --- never twice, never an echo ---------------------------------------------------------------------------------


def test_bridge_posts_are_never_echoed(cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    agent = str(zd_admin.agents[0])
    assert cb_bridge.post("/joingroup", {"groupId": group, "userId": agent}).status_code == 200
    text = {"MsgType": "TIMTextElem", "MsgContent": {"Text": "posted by the bridge"}}
    # What the bridge itself sends through REST: as the admin, and on an agent's behalf (Operator_Account admin).
    assert im_call(im_server, "send_group_msg", {"GroupId": group, "Random": 1, "MsgBody": [text]})["ErrorCode"] == 0
    assert (
        im_call(im_server, "send_group_msg", {"GroupId": group, "Random": 2, "MsgBody": [text], "From_Account": agent})[
            "ErrorCode"
        ]
        == 0
    )
    sent = delivered(im_server, 2)
    assert [c["Response"] for c in sent] == [IM_OK, IM_OK]  # answered OK, and nothing done
    # The admin as sender from any platform is the bridge too.
    assert callback(cb_bridge, message(group, "administrator", seq=50)).json() == IM_OK
    assert jobs(cb_bridge, "sync_message") == []
    assert len(comments(zd_admin, group)) == 1
    assert len(im_state(im_server)["callbacks"]) == 2  # the greeting, a system notification, calls nothing back


def test_redelivered_callback_makes_one_comment(cb_bridge: BridgeClient, zd_admin: Any) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    body = message(group, "cust1", "only once", seq=7)
    for _ in range(3):
        r = callback(cb_bridge, body)
        assert r.status_code == 200 and r.json() == IM_OK
    no_seq = message(group, "cust1", "no sequence number", seq=None)
    assert callback(cb_bridge, no_seq).json() == IM_OK and callback(cb_bridge, no_seq).json() == IM_OK
    wait_for(lambda: len(comments(zd_admin, group)) == 3)
    wait_for(lambda: all(j["status"] == "done" for j in jobs(cb_bridge, "sync_message")))
    assert [c["body"] for c in comments(zd_admin, group)[1:]] == ["only once", "no sequence number"]
    assert len(jobs(cb_bridge, "sync_message")) == 2


def test_helpdesk_outage_answers_ok_and_syncs_later(
    cb_bridge: BridgeClient, zd_server: BackgroundServer, zd_admin: Any
) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    set_faults(zd_server, outage=True)
    started = time.monotonic()
    assert callback(cb_bridge, message(group, "cust1", "are you there?", seq=3)).json() == IM_OK
    assert time.monotonic() - started < 1.0
    wait_for(lambda: jobs(cb_bridge, "sync_message")[0]["attempts"] >= 2)  # failed, retried, still failing
    set_faults(zd_server)
    wait_for(lambda: len(comments(zd_admin, group)) == 2)
    assert comments(zd_admin, group)[-1]["body"] == "are you there?"


# --- authentication and what is ignored -------------------------------------------------------------------------


def forged_sign(request_time: str) -> str:
    return hashlib.sha256(("not-the-token" + request_time).encode()).hexdigest()


def test_authentication_cases(cb_bridge: BridgeClient) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    now = str(int(time.time()))
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("valid", {}, 200),
        ("fresh by 299 s", {"age": 299}, 200),
        (
            "Sign in upper case",
            {"sign": auth.im_callback_sign(TOKEN, now).upper(), "params": {"RequestTime": now}},
            200,
        ),
        ("stale by 301 s", {"age": 301}, 401),
        ("301 s in the future", {"age": -301}, 401),
        ("forged Sign", {"sign": forged_sign(now), "params": {"RequestTime": now}}, 401),
        ("wrong token", {"token": "other-token"}, 401),
        ("no Sign", {"params": {"Sign": None}}, 401),
        ("no RequestTime", {"params": {"RequestTime": None}}, 401),
        ("RequestTime not a number", {"params": {"RequestTime": "yesterday"}}, 401),
        ("another SdkAppid", {"params": {"SdkAppid": SDKAPPID + 1}}, 401),
        ("no SdkAppid", {"params": {"SdkAppid": None}}, 401),
    ]
    accepted = 0
    for seq, (case, kwargs, status) in enumerate(cases, start=100):
        r = callback(cb_bridge, message(group, "cust1", case, seq=seq), **kwargs)
        assert r.status_code == status, (case, r.text)
        if status == 200:
            accepted += 1
            assert r.json() == IM_OK, case
        else:
            assert r.json()["error"]["code"] in ("unauthenticated", "wrong_sdkappid") and TOKEN not in r.text, case
        assert len(jobs(cb_bridge, "sync_message")) == accepted, case


def test_other_commands_unlinked_groups_and_bad_bodies(cb_bridge: BridgeClient) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    joined = {
        "CallbackCommand": "Group.CallbackAfterNewMemberJoin",
        "GroupId": group,
        "Type": "Public",
        "JoinType": "Apply",
        "Operator_Account": "cust1",
        "NewMemberList": [{"Member_Account": "x"}],
    }
    assert callback(cb_bridge, joined, params={"CallbackCommand": joined["CallbackCommand"]}).json() == IM_OK
    assert callback(cb_bridge, message("@TGS#unlinked", "someone", seq=1)).json() == IM_OK
    assert callback(cb_bridge, {k: v for k, v in message(group, "cust1").items() if k != "MsgBody"}).json() == IM_OK
    assert callback(cb_bridge, {"CallbackCommand": AFTER_SEND}).json() == IM_OK
    assert jobs(cb_bridge, "sync_message") == []
    for raw in (b"not json", b"[]", b"\xff"):  # authenticated, nothing to do: OK, as the contract says "always"
        r = callback(cb_bridge, None, raw=raw)
        assert (r.status_code, r.json()) == (200, IM_OK), raw


def test_without_a_token_no_sign_is_needed(
    bridge_factory: BridgeFactory, zd_server: BackgroundServer, zd_admin: Any
) -> None:
    bridge = bridge_factory(**helpdesk_settings(zd_url=zd_server.url))
    group = open_ticket(bridge, "zendesk")
    r = callback(bridge, message(group, "cust1", "no auth configured"), params={"Sign": None, "RequestTime": None})
    assert r.json() == IM_OK
    wait_for(lambda: len(comments(zd_admin, group)) == 2)
    assert callback(bridge, message(group, "cust1", seq=2), params={"SdkAppid": 1}).status_code == 401
