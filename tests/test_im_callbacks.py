"""POST /callbacks/im: Tencent's callback authentication, the transcript in the ticket, echo suppression, redelivery,
and what never reaches a ticket: messages IM does not confirm and senders the link does not record."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import auth
from bridge.errors import PermanentError
from bridge.sandbox.server import BackgroundServer
from bridge.states import JobKind, JobStatus
from bridge.transcript import RENDER, render
from tests.conftest import (
    CALLBACK_TOKEN,
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

TOKEN = CALLBACK_TOKEN
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


def stored(im_server: BackgroundServer, bridge: BridgeClient, group_id: str, sender: str, text: str) -> dict[str, Any]:
    """A message IM stored whose callback has not come (yet): the callback body IM would send for it."""
    config = im_server.url + "/_emulator/config"
    httpx.post(config, json={"callback_url": ""}).raise_for_status()
    try:
        seq = send(im_server, group_id, sender, text)
    finally:
        httpx.post(config, json={"callback_url": bridge.server.url + "/callbacks/im"}).raise_for_status()
    return message(group_id, sender, text, seq=seq)


def dropped(bridge: BridgeClient, reason: str) -> float:
    """How many chat messages the bridge refused to write for `reason`, from its /metrics."""
    for line in bridge.http.get("/metrics").text.splitlines():
        if line.startswith(f'bridge_transcript_dropped_messages_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


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


def transcript(zd_admin: Any, group_id: str) -> list[str]:
    """The lines the bridge wrote into the ticket (every comment after the ticket's description), in order."""
    return [line for c in comments(zd_admin, group_id)[1:] for line in c["body"].splitlines()]


def case_comments(sf_server: BackgroundServer, case_id: str) -> list[dict[str, Any]]:
    state = httpx.get(sf_server.url + "/_emulator/state").json()
    return [c for c in state["case_comments"].values() if c["ParentId"] == case_id]


# --- the transcript ---------------------------------------------------------------------------------------------


def test_customer_and_agent_messages_become_zendesk_comments(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any
) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    requester = zd_admin.ticket(group.removeprefix("ZENDESK#"))["requester_id"]
    agent = f"zd_{zd_admin.agents[0]}"  # the agent's IM account
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
        zd_admin.agents[0],
        True,
    )
    assert all(c["Response"] == IM_OK for c in delivered(im_server, 2))


def test_messages_become_published_case_comments(
    cb_bridge: BridgeClient, im_server: BackgroundServer, sf_server: BackgroundServer, sf_admin: Any
) -> None:
    case_id = open_ticket(cb_bridge, "salesforce", user="cust2")
    agent = sf_admin.state["agent_ids"][0]
    assert cb_bridge.post("/joingroup", {"groupId": case_id, "userId": f"sf_{agent}"}).status_code == 200
    send(im_server, case_id, "cust2", "Where is my refund?")
    wait_for(lambda: len(case_comments(sf_server, case_id)) == 1)
    send(im_server, case_id, f"sf_{agent}", "On its way")
    wait_for(lambda: len(case_comments(sf_server, case_id)) == 2)
    first, second = sorted(case_comments(sf_server, case_id), key=lambda c: c["Id"])
    assert first["IsPublished"] and second["IsPublished"]
    assert "Where is my refund?" in first["CommentBody"] and "cust2" in first["CommentBody"]
    assert second["CommentBody"] == f"Agent ({agent}): On its way"  # the Salesforce user, not the IM account


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
    agent = f"zd_{zd_admin.agents[0]}"  # the agent's IM account
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
    assert jobs(cb_bridge, JobKind.SYNC_MESSAGE) == []
    assert len(comments(zd_admin, group)) == 1
    assert len(im_state(im_server)["callbacks"]) == 2  # the greeting, a system notification, calls nothing back


def test_redelivered_callback_makes_one_comment(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any
) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    body = stored(im_server, cb_bridge, group, "cust1", "only once")
    for age in (0, 0, 1):  # the same callback twice, then redelivered a second later (signed afresh)
        r = callback(cb_bridge, body, age=age)
        assert r.status_code == 200 and r.json() == IM_OK
    # Without a MsgSeq a message cannot be confirmed with IM: answered OK, never written.
    no_seq = message(group, "cust1", "no sequence number", seq=None)
    assert callback(cb_bridge, no_seq).json() == IM_OK
    wait_for(lambda: len(comments(zd_admin, group)) == 2)
    wait_for(lambda: all(j["status"] == JobStatus.DONE for j in jobs(cb_bridge, JobKind.SYNC_MESSAGE)))
    assert [c["body"] for c in comments(zd_admin, group)[1:]] == ["only once"]
    assert len(jobs(cb_bridge, JobKind.SYNC_MESSAGE)) == 1
    assert dropped(cb_bridge, "unconfirmable") == 1


def test_helpdesk_outage_answers_ok_and_syncs_later(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: Any
) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    body = stored(im_server, cb_bridge, group, "cust1", "are you there?")
    set_faults(zd_server, outage=True)
    started = time.monotonic()
    assert callback(cb_bridge, body).json() == IM_OK
    assert time.monotonic() - started < 1.0
    wait_for(lambda: jobs(cb_bridge, JobKind.SYNC_MESSAGE)[0]["attempts"] >= 2)  # failed, retried, still failing
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
        assert len(jobs(cb_bridge, JobKind.SYNC_MESSAGE)) == accepted, case


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
    assert jobs(cb_bridge, JobKind.SYNC_MESSAGE) == []
    for raw in (b"not json", b"[]", b"\xff"):  # authenticated, nothing to do: OK, as the contract says "always"
        r = callback(cb_bridge, None, raw=raw)
        assert (r.status_code, r.json()) == (200, IM_OK), raw


def test_callbacks_are_refused_without_a_token(
    bridge_factory: BridgeFactory, zd_server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = bridge_factory(**helpdesk_settings(zd_url=zd_server.url), im_callback_token=None)
    assert "IM_CALLBACK_TOKEN is not set" in caplog.text  # warned at start
    group = open_ticket(bridge, "zendesk")
    for params in ({"Sign": None, "RequestTime": None}, {}):
        r = callback(bridge, message(group, "cust1", "no auth configured"), params=params)
        assert r.status_code == 401 and r.json()["error"]["code"] == "callbacks_disabled", r.text
    assert jobs(bridge, JobKind.SYNC_MESSAGE) == []


# --- what never reaches a ticket --------------------------------------------------------------------------------


def test_messages_im_does_not_confirm_are_never_written(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any
) -> None:
    """The Sign covers only the time: a captured one signs any body for 300 s. IM's own record decides."""
    group = open_ticket(cb_bridge, "zendesk")
    agent = f"zd_{zd_admin.agents[0]}"  # the agent's IM account
    assert cb_bridge.post("/joingroup", {"groupId": group, "userId": agent}).status_code == 200
    real = stored(im_server, cb_bridge, group, "cust1", "the customer's real words")
    by_agent = stored(im_server, cb_bridge, group, agent, "the agent's words")
    recalled = stored(im_server, cb_bridge, group, "cust1", "taken back")
    assert im_call(im_server, "group_msg_recall", {"GroupId": group, "MsgSeqList": [{"MsgSeq": recalled["MsgSeq"]}]})[
        "RecallRetList"
    ] == [{"MsgSeq": recalled["MsgSeq"], "RetCode": 0}]
    forged = [
        message(group, "cust1", "a message IM never stored", seq=real["MsgSeq"] + 100),
        {**by_agent, "From_Account": "cust1", "Operator_Account": "cust1"},  # another sender's message
        recalled,
    ]
    for body in forged:
        assert callback(cb_bridge, body).json() == IM_OK
    wait_for(lambda: len(jobs(cb_bridge, JobKind.SYNC_MESSAGE)) == 3)
    wait_for(lambda: all(j["status"] == JobStatus.DONE for j in jobs(cb_bridge, JobKind.SYNC_MESSAGE)))
    assert dropped(cb_bridge, "unconfirmed") == 3
    # A real message with forged words: the words written are IM's.
    forged_words = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "forged"}}]
    assert callback(cb_bridge, {**real, "MsgBody": forged_words}).json() == IM_OK
    wait_for(lambda: len(comments(zd_admin, group)) == 2)
    assert [c["body"] for c in comments(zd_admin, group)[1:]] == ["the customer's real words"]


def test_only_the_requester_and_the_tickets_agents_are_written(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any
) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    agent = f"zd_{zd_admin.agents[0]}"  # the agent's IM account
    # Someone else in the group (however they got in) is never written into the ticket, nor as anyone.
    im_call(im_server, "account_import", {"UserID": "stranger"}, service="im_open_login_svc")
    added = im_call(im_server, "add_group_member", {"GroupId": group, "MemberList": [{"Member_Account": "stranger"}]})
    assert added["ErrorCode"] == 0, added
    send(im_server, group, "stranger", "let me into your ticket")
    wait_for(lambda: dropped(cb_bridge, "unknown_sender") == 1)
    # The ticket's agent is, and stays one after leaving: a message sent while a member whose callback comes late.
    assert cb_bridge.post("/joingroup", {"groupId": group, "userId": agent}).status_code == 200
    late = stored(im_server, cb_bridge, group, agent, "sent before I left")
    assert cb_bridge.post("/leavegroup", {"groupId": group, "userId": agent}).status_code == 200
    assert callback(cb_bridge, late).json() == IM_OK
    wait_for(lambda: len(comments(zd_admin, group)) == 2)  # written alone: the next message is another's comment
    send(im_server, group, "cust1", "thank you")
    wait_for(lambda: len(comments(zd_admin, group)) == 3)
    wait_for(lambda: all(j["status"] == JobStatus.DONE for j in jobs(cb_bridge, JobKind.SYNC_MESSAGE)))
    written = comments(zd_admin, group)[1:]
    assert [(c["body"], c["author_id"]) for c in written] == [
        ("sent before I left", zd_admin.agents[0]),
        ("thank you", zd_admin.ticket(group.removeprefix("ZENDESK#"))["requester_id"]),
    ]
    assert "let me into your ticket" not in str(comments(zd_admin, group))


def test_an_identical_callback_is_remembered_but_callbacks_of_one_second_all_pass(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any
) -> None:
    """Two genuine callbacks in the same second share a Sign: only the same Sign with the same body is a replay."""
    group = open_ticket(cb_bridge, "zendesk")
    first = stored(im_server, cb_bridge, group, "cust1", "first")
    second = stored(im_server, cb_bridge, group, "cust1", "second")
    now = str(int(time.time()))
    for body in (first, second, first):
        r = callback(cb_bridge, body, params={"RequestTime": now}, sign=auth.im_callback_sign(TOKEN, now))
        assert r.json() == IM_OK
    wait_for(lambda: transcript(zd_admin, group) == ["first", "second"])  # one comment or two, each message once
    wait_for(lambda: all(j["status"] == JobStatus.DONE for j in jobs(cb_bridge, JobKind.SYNC_MESSAGE)))
    assert transcript(zd_admin, group) == ["first", "second"]
    assert len(jobs(cb_bridge, JobKind.SYNC_MESSAGE)) == 2


# --- bad content and the order of work --------------------------------------------------------------------------

MALFORMED = {"MsgType": "TIMImageElem", "MsgContent": {"ImageInfoArray": 5}}


def test_malformed_content_never_retries_nor_holds_up_the_group(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: Any
) -> None:
    group = open_ticket(cb_bridge, "zendesk")
    send(im_server, group, "cust1", MsgBody=[MALFORMED])
    wait_for(lambda: len(comments(zd_admin, group)) == 2)
    assert comments(zd_admin, group)[-1]["body"] == "[image]"  # rendered safely, at once
    wait_for(lambda: [j["status"] for j in jobs(cb_bridge, JobKind.SYNC_MESSAGE)] == ["done"])
    (job,) = jobs(cb_bridge, JobKind.SYNC_MESSAGE)
    assert (job["status"], job["attempts"], job["last_error"]) == (JobStatus.DONE, 1, None)
    # A message that keeps failing (the helpdesk is down) waits for its retry; the group's membership does not.
    set_faults(zd_server, outage=True)
    try:
        send(im_server, group, "cust1", "are you there?")
        wait_for(
            lambda: any(
                j["attempts"] >= 1 and j["status"] == JobStatus.PENDING for j in jobs(cb_bridge, JobKind.SYNC_MESSAGE)
            )
        )
        r = cb_bridge.post("/joingroup", {"groupId": group, "userId": f"zd_{zd_admin.agents[0]}"})
        assert r.status_code == 200 and "queued" not in r.json(), r.text
    finally:
        set_faults(zd_server)
    wait_for(lambda: len(comments(zd_admin, group)) == 3)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
FIELDS = ["Text", "ImageInfoArray", "URL", "Type", "Url", "FileName", "VideoUrl", "Data", "Desc", "Index"]
ELEMENT = st.fixed_dictionaries(
    {
        "MsgType": st.sampled_from([*RENDER, "TIMRelayElem"]) | JSON,
        "MsgContent": st.dictionaries(st.sampled_from(FIELDS + ["Latitude", "Longitude"]), JSON, max_size=4) | JSON,
    }
)


@settings(max_examples=300, deadline=None)
@given(msg_body=st.lists(ELEMENT | JSON, max_size=4) | JSON)
def test_any_message_content_renders_or_fails_permanently(msg_body: Any) -> None:
    try:
        assert isinstance(render(msg_body), str)
    except PermanentError:
        pass  # the job is dead at once, with the reason
