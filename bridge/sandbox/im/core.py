"""What every module of the IM emulator shares: the ErrorCode table, `ApiError` and Tencent's answer envelope, the
state (`IMState`) and the checks of UserIDs and numbers."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from starlette.requests import Request
from starlette.responses import JSONResponse

# Every ErrorCode the emulator answers with. Sources: "REST API 公共错误码" (60xxx, 70xxx account errors), the
# error tables of the group APIs and Tencent's published tim-error-message table (100xx), and the account import
# pages (704xx/705xx).
ERRORS: dict[int, str] = {
    60002: "HTTP parse error, please check the URL of the HTTP request",
    60003: "HTTP request JSON parse error, please check the JSON format",
    60004: "account or signature error in the request URL",
    60006: "SDKAppID is invalid, please check that it is valid",
    # 60007 is what the common error table documents for "REST API call frequency exceeds the limit"; 60011 is the
    # whole-SDKAppID limit, 60018/60019 are generic "too frequent"; 20003 is not a rate limit at all.
    60007: "REST API call frequency exceeds the limit, please reduce the request rate",
    60008: "service timeout or request format error, please check and try again",
    60009: "request resource error, please check the request URL",
    60010: "the request requires app administrator permissions",
    60012: "the REST API requires an SDKAppID, please check the SDKAppID in the request URL",
    70001: "UserSig has expired, please generate a new one",
    70003: "UserSig is invalid and could not be parsed",
    70009: "UserSig verification failed: it was not generated with this SDKAppID's key",
    70013: "the UserID in the request does not match the UserID the UserSig was generated for",
    70014: "the SDKAppID in the request does not match the SDKAppID the UserSig was generated for",
    70402: "invalid parameter, check that required fields are filled in and meet the protocol",
    70500: "internal server error, please try again later",
    10002: "internal server error, please try again",
    10003: "invalid command word in the request",
    10004: "invalid parameter, please check the request according to the error description",
    10005: "too many accounts in the request body",
    10006: "operation frequency limit, please reduce the call frequency",
    10007: "insufficient permissions for this operation",
    10010: "the group does not exist or has been dismissed",
    10014: "the group is full",
    10015: "invalid group ID, please check that the group ID is correct",
    10017: "cannot send the message because the sender is muted",
    10019: "the requested UserID does not exist",
    10021: "the group ID has already been used, please choose another group ID",
    10023: "message frequency limit exceeded, please lengthen the interval between messages",
    10024: "this invitation or application has already been handled",
    10025: "the group ID has already been used, and the operator is its owner",
    # A client SDK error: applying to join a Private (Work) group, which members join only by invitation.
    8508: "applying to join a Private (Work) group is not allowed: a member must invite you",
    10037: "the number of groups a single user can create and join exceeds the limit",
    80002: "the message body is too long: at most 8 KB",
    # Profile API ("Pulling Profiles" portrait_get, "Setting Profiles" portrait_set, and the Nick of account_import):
    # 40001 the body cannot be decoded, 40003 an account that was never imported, 40601 a value over 500 bytes.
    40001: "Err_Profile_Comm_Decode_Fail: the request body is not valid",
    40003: "Err_Profile_Account_Not_Exist: the account does not exist",
    40601: "Err_Profile_Value_Too_Long: a profile value is longer than 500 bytes",
}
GROUP_SVC, LOGIN_SVC, PROFILE_SVC = "group_open_http_svc", "im_open_login_svc", "profile"

# A REST command: the request body in, the answer's fields out (or an ApiError).
Command = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class IMState:
    """Everything the emulator knows, as plain data (what `/_emulator/state` dumps).

    - `accounts`: UserID -> {"UserID", "Nick", "FaceUrl", "CreateTime"}
    - `groups`: GroupId -> {"GroupId", "Type", "Name", "Owner_Account", "Introduction", "Notification", "FaceUrl",
      "MaxMemberNum", "ApplyJoinOption", "MuteAllMember" ("On"/"Off"), "Dismissed" (bool), "CreateTime",
      "Members": {UserID: {"Role": "Owner"/"Admin"/"Member", "JoinTime"}}, "Tips": [join/quit notices],
      "Applications": [{"Requestor_Account", "Time"}] (join requests waiting for an approval nobody gives here)}
    - `messages`: GroupId -> [{"GroupId", "MsgSeq", "MsgTime", "Random", "From_Account", "MsgBody",
      "CloudCustomData", "OptPlatform", "OnlineOnlyFlag", "Recalled" (once recalled)}]
    - `notifications`: GroupId -> [{"Content", "ToMembers_Account", "Time"}]
    - `requests`: one entry per /v4 call: {"Time", "Service", "Command", "Query" (no usersig), "Body", "ErrorCode"}
    - `callbacks`: one entry per callback delivery: {"CallbackCommand", "GroupId", "MsgSeq", "Url", "Status", ...}
    """

    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notifications: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    callback_url: str | None = None
    callback_token: str | None = None

    def clear(self) -> None:
        for collection in (
            self.accounts,
            self.groups,
            self.messages,
            self.notifications,
            self.requests,
            self.callbacks,
        ):
            collection.clear()

    def members(self, group_id: str) -> list[str]:
        return list(self.groups[group_id]["Members"]) if group_id in self.groups else []

    def texts(self, group_id: str) -> list[str]:
        """The text of every TIMTextElem stored in a group, oldest first."""
        return [
            elem["MsgContent"].get("Text", "")
            for msg in self.messages.get(group_id, [])
            for elem in msg["MsgBody"]
            if elem.get("MsgType") == "TIMTextElem"
        ]

    def live_group(self, body: dict[str, Any]) -> dict[str, Any]:
        """The group a request body's `GroupId` names, unless it was never created or was dismissed."""
        group_id = body.get("GroupId")
        if not isinstance(group_id, str) or not group_id:
            raise ApiError(10004, "invalid parameter: GroupId is required")
        group = self.groups.get(group_id)
        if group is None or group["Dismissed"]:
            raise ApiError(10010)
        return group

    def next_seq(self, group_id: str) -> int:
        messages = self.messages.get(group_id, [])
        return messages[-1]["MsgSeq"] + 1 if messages else 1

    def dump(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "groups": self.groups,
            "messages": self.messages,
            "notifications": self.notifications,
            "callbacks": self.callbacks,
            "requests": self.requests,
            "config": {"callback_url": self.callback_url, "callback_token_set": bool(self.callback_token)},
        }


class ApiError(Exception):
    def __init__(self, code: int, info: str | None = None):
        super().__init__(code)
        self.code = code
        self.info = info or ERRORS[code]


def answer(extra: dict[str, Any] | None = None, code: int = 0, info: str = "") -> JSONResponse:
    """Tencent's envelope: HTTP 200 with ActionStatus, ErrorInfo and ErrorCode, errors included."""
    body: dict[str, Any] = {"ActionStatus": "OK" if code == 0 else "FAIL", "ErrorInfo": info, "ErrorCode": code}
    return JSONResponse({**body, **(extra or {})})


async def json_object(request: Request) -> dict[str, Any]:
    """The body of a control or client call as a JSON object; anything else reads as `{}`."""
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def fits(value: Any, max_bytes: int, allow_empty: bool = False) -> bool:
    return isinstance(value, str) and (allow_empty or value != "") and len(value.encode("utf-8")) <= max_bytes


def valid_userid(value: Any) -> TypeGuard[str]:
    # UserIDs: non-empty printable ASCII, at most 32 bytes.
    return fits(value, 32) and all(0x20 <= ord(ch) <= 0x7E for ch in value)


def uint32(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF


def take_slot(windows: dict[str, deque[float]], key: str, limit: int, moment: float) -> bool:
    """Count a call in `key`'s sliding one-second window; False (and not counted) when `limit` calls fill it."""
    window = windows.setdefault(key, deque())
    while window and window[0] <= moment - 1.0:
        window.popleft()
    if len(window) >= limit:
        return False
    window.append(moment)
    return True


def unix_now() -> int:
    return int(time.time())
