"""The IM emulator's client side (what a user's app does with the SDK, proven by the user's UserSig) and the
profile API the console reads names from."""

from __future__ import annotations

from typing import Any

import httpx

from bridge import auth
from bridge.sandbox.server import BackgroundServer
from tests.conftest import IM_KEY, SDKAPPID, im_call, im_state, make_group


def client(server: BackgroundServer, path: str, user: str, **body: Any) -> dict[str, Any]:
    sig = auth.gen_usersig(SDKAPPID, IM_KEY, user, 600)
    answer = httpx.post(f"{server.url}/_emulator/client/{path}", json={"UserID": user, "UserSig": sig, **body})
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


def test_a_member_sends_and_reads_with_their_own_usersig(im_server: BackgroundServer) -> None:
    make_group(im_server, "G1", "alice", "bob")
    sent = client(im_server, "send", "alice", GroupId="G1", Text="hi bob")
    assert sent["ErrorCode"] == 0 and sent["MsgSeq"] == 1
    stored = im_state(im_server)["messages"]["G1"][0]
    assert (stored["From_Account"], stored["OptPlatform"]) == ("alice", "Web")
    read = client(im_server, "messages", "bob", GroupId="G1")
    assert [(m["From_Account"], m["MsgBody"][0]["MsgContent"]["Text"]) for m in read["MsgList"]] == [
        ("alice", "hi bob")
    ]
    assert client(im_server, "messages", "bob", GroupId="G1", AfterSeq=1)["MsgList"] == []


def test_client_calls_need_the_users_own_valid_usersig(im_server: BackgroundServer) -> None:
    make_group(im_server, "G2", "alice")
    im_call(im_server, "account_import", {"UserID": "mallory"}, service="im_open_login_svc")
    forged = auth.gen_usersig(SDKAPPID, "another key", "alice", 600)
    answer = httpx.post(
        f"{im_server.url}/_emulator/client/send",
        json={"UserID": "alice", "UserSig": forged, "GroupId": "G2", "Text": "x"},
    ).json()
    assert answer["ErrorCode"] == 70009
    borrowed = auth.gen_usersig(SDKAPPID, IM_KEY, "mallory", 600)
    answer = httpx.post(
        f"{im_server.url}/_emulator/client/messages", json={"UserID": "alice", "UserSig": borrowed, "GroupId": "G2"}
    ).json()
    assert answer["ErrorCode"] == 70013
    # A real user who is not in the group can neither read nor write it.
    assert client(im_server, "messages", "mallory", GroupId="G2")["ErrorCode"] == 10007
    assert client(im_server, "send", "mallory", GroupId="G2", Text="let me in")["ErrorCode"] == 10007
    assert im_state(im_server)["messages"]["G2"] == []


def test_portrait_get_answers_nicks_as_documented(im_server: BackgroundServer) -> None:
    im_call(im_server, "account_import", {"UserID": "zd_5", "Nick": "Alice Agent"}, service="im_open_login_svc")
    im_call(im_server, "account_import", {"UserID": "cust"}, service="im_open_login_svc")
    body = {"To_Account": ["zd_5", "cust"], "TagList": ["Tag_Profile_IM_Nick"]}
    answer = im_call(im_server, "portrait_get", body, service="profile")
    assert answer["ActionStatus"] == "OK"
    assert answer["UserProfileItem"] == [
        {
            "To_Account": "zd_5",
            "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "Alice Agent"}],
            "ResultCode": 0,
            "ResultInfo": "",
        },
        {
            "To_Account": "cust",
            "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": ""}],
            "ResultCode": 0,
            "ResultInfo": "",
        },
    ]
    assert (
        im_call(im_server, "portrait_get", {"To_Account": ["nobody"], "TagList": []}, service="profile")["ErrorCode"]
        == 40003
    )
    assert im_call(im_server, "portrait_get", {"To_Account": "zd_5"}, service="profile")["ErrorCode"] == 40001


def test_portrait_set_changes_the_nick_that_portrait_get_reports(im_server: BackgroundServer) -> None:
    im_call(im_server, "account_import", {"UserID": "zd_6", "Nick": "Dana"}, service="im_open_login_svc")
    nick = {"Tag": "Tag_Profile_IM_Nick", "Value": "Dana from Support"}
    answer = im_call(im_server, "portrait_set", {"From_Account": "zd_6", "ProfileItem": [nick]}, service="profile")
    assert (answer["ActionStatus"], answer["ErrorCode"]) == ("OK", 0)
    got = im_call(
        im_server, "portrait_get", {"To_Account": ["zd_6"], "TagList": ["Tag_Profile_IM_Nick"]}, service="profile"
    )
    assert got["UserProfileItem"][0]["ProfileItem"] == [nick]
    # An account never imported, a malformed body, a value over 500 bytes: refused, the Nick unchanged.
    unknown = {"From_Account": "nobody", "ProfileItem": [nick]}
    assert im_call(im_server, "portrait_set", unknown, service="profile")["ErrorCode"] == 40003
    assert im_call(im_server, "portrait_set", {"From_Account": "zd_6"}, service="profile")["ErrorCode"] == 40001
    long = {"From_Account": "zd_6", "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "é" * 251}]}
    assert im_call(im_server, "portrait_set", long, service="profile")["ErrorCode"] == 40601
    long_import = {"UserID": "zd_7", "Nick": "x" * 501}
    assert im_call(im_server, "account_import", long_import, service="im_open_login_svc")["ErrorCode"] == 40601
    assert im_state(im_server)["accounts"]["zd_6"]["Nick"] == "Dana from Support"
    assert "zd_7" not in im_state(im_server)["accounts"]
