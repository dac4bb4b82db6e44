"""A Tencent Cloud IM REST API v4 emulator: a real HTTP server the tests and `helpdesk-bridge sandbox` talk to.

`POST /v4/<service>/<command>?sdkappid=&identifier=&usersig=&random=&contenttype=json`, answered as Tencent answers:
HTTP 200 with `{"ActionStatus", "ErrorInfo", "ErrorCode", ...}` even for errors. The access layer checks, in order:
POST, `sdkappid`, `identifier` and `usersig` present, the per-API rate limit, the UserSig (recomputed, see
im_usersig.py), that the identifier is the app admin, a known service and command, and a JSON-object body.

State lives in `app.state.im` (an `IMState` of plain dicts and lists, see its docstring). Control routes under
`/_emulator/` are never faulted; only the client routes are authenticated:

| route | what |
| --- | --- |
| `GET /_emulator/state` | JSON dump of accounts, groups, messages, notifications, callbacks, request log |
| `POST /_emulator/reset` | back to the state at start (admin account only, faults cleared, config as created) |
| `POST /_emulator/send` | `{"GroupId", "From_Account", "Text"}` (or `"MsgBody"`): a member's message from the app/SDK |
| `POST /_emulator/config` | `{"callback_url", "callback_token"}`: where `Group.CallbackAfterSendMsg` goes |
| `POST /_emulator/client/send` | `{"UserID", "UserSig", "GroupId", "Text", "Random"?}`: a member sends a text |
| `POST /_emulator/client/messages` | `{"UserID", "UserSig", "GroupId", "AfterSeq"?}`: messages, notices, join tips |
| `POST /_emulator/client/create_group` | `{"UserID", "UserSig", "GroupId"?, "Type"?, "Name", ...}`: the user owns it |
| `POST /_emulator/client/apply_join` | `{"UserID", "UserSig", "GroupId"}`: asks to join; answers a `JoinedStatus` |
| `POST /_emulator/client/invite` | `{"UserID", "UserSig", "GroupId", "MemberList": [{"Member_Account"}]}`: invites |
| `POST /_emulator/client/get_group_profile` | `{"UserID", "UserSig", "GroupId"}`: what anyone can read of a group |
| `GET/POST /_emulator/faults` | fault injection (bridge.sandbox.faults) |

The client routes are what any app user can do with the client SDK, whatever the app's backend intends: logged in
with their own UserSig, answered like the REST API (HTTP 200 with `ActionStatus`/`ErrorCode`), under IM's group type
rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import string
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.faults import CONTROL_PREFIX, FaultMiddleware, Faults, fault_routes
from bridge.sandbox.im_usersig import verify_usersig

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
    # Profile API ("Pulling Profiles", portrait_get): 40001 the body cannot be decoded, 40003 an account that was
    # never imported.
    40001: "Err_Profile_Comm_Decode_Fail: the request body is not valid",
    40003: "Err_Profile_Account_Not_Exist: the account does not exist",
}
GROUP_SVC, LOGIN_SVC, PROFILE_SVC = "group_open_http_svc", "im_open_login_svc", "profile"
INTERNAL_ERROR = {GROUP_SVC: 10002, LOGIN_SVC: 70500, PROFILE_SVC: 40006}
GROUP_TYPES = ("Private", "Public", "ChatRoom", "AVChatRoom", "Community")
ID_PREFIX = {"Private": "1", "Public": "2", "ChatRoom": "3", "AVChatRoom": "a", "Community": "_"}
JOIN_OPTIONS = ("FreeAccess", "NeedPermission", "DisableApply")
# Who may invite others into a group from the client SDK, by group type (absent: nobody).
INVITERS = {"Private": ("Owner", "Admin", "Member"), "Public": ("Owner", "Admin"), "Community": ("Owner", "Admin")}
GROUP_MSG_PER_SECOND = 40  # per group; over it: 10023
DEDUP_SECONDS = 300  # same Random and content within 5 minutes is the same message
CALLBACK_TIMEOUT = 2.0  # what Tencent gives a callback


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
    body: dict[str, Any] = {"ActionStatus": "OK" if code == 0 else "FAIL", "ErrorInfo": info, "ErrorCode": code}
    return JSONResponse({**body, **(extra or {})})


def _fits(value: Any, max_bytes: int, allow_empty: bool = False) -> bool:
    return isinstance(value, str) and (allow_empty or value != "") and len(value.encode("utf-8")) <= max_bytes


def valid_userid(value: Any) -> TypeGuard[str]:
    # UserIDs: non-empty printable ASCII, at most 32 bytes.
    return _fits(value, 32) and all(0x20 <= ord(ch) <= 0x7E for ch in value)


def _uint32(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF


class Emulator:
    """The command handlers and the bits of state that are not plain data (rate windows, tasks)."""

    def __init__(
        self,
        sdkappid: int,
        secret_key: str,
        admin: str,
        rate_limit: int,
        callback_url: str | None,
        callback_token: str | None,
    ):
        self.sdkappid, self.secret_key, self.admin, self.rate_limit = sdkappid, secret_key, admin, rate_limit
        self.initial_config = (callback_url, callback_token)
        self.state = IMState()
        self.faults = Faults()
        self.windows: dict[str, deque[float]] = {}
        self.group_windows: dict[str, deque[float]] = {}
        self.recent: dict[tuple[str, str, int, str], tuple[float, dict[str, Any]]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.commands: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
            (LOGIN_SVC, "account_import"): self.account_import,
            (LOGIN_SVC, "multiaccount_import"): self.multiaccount_import,
            (LOGIN_SVC, "account_check"): self.account_check,
            (GROUP_SVC, "create_group"): self.create_group,
            (GROUP_SVC, "destroy_group"): self.destroy_group,
            (GROUP_SVC, "add_group_member"): self.add_group_member,
            (GROUP_SVC, "delete_group_member"): self.delete_group_member,
            (GROUP_SVC, "get_group_info"): self.get_group_info,
            (GROUP_SVC, "get_group_member_info"): self.get_group_member_info,
            (GROUP_SVC, "modify_group_base_info"): self.modify_group_base_info,
            (GROUP_SVC, "send_group_system_notification"): self.send_group_system_notification,
            (GROUP_SVC, "send_group_msg"): self.send_group_msg,
            (GROUP_SVC, "group_msg_get_simple"): self.group_msg_get_simple,
            (GROUP_SVC, "group_msg_recall"): self.group_msg_recall,
            (PROFILE_SVC, "portrait_get"): self.portrait_get,
        }
        self.client_commands: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
            "create_group": self.client_create_group,
            "apply_join": self.client_apply_join,
            "invite": self.client_invite,
            "get_group_profile": self.client_get_group_profile,
        }
        self.reset()

    def reset(self) -> None:
        self.state.clear()  # in place: others hold `app.state.im`
        self.state.callback_url, self.state.callback_token = self.initial_config
        self.state.accounts[self.admin] = {"UserID": self.admin, "Nick": "", "FaceUrl": "", "CreateTime": _now()}
        self.faults.update({})
        self.faults.injected = 0
        self.windows.clear()
        self.group_windows.clear()
        self.recent.clear()

    # --- the access layer ---------------------------------------------------------------------------------------

    async def rest(self, request: Request) -> Response:
        service, command = request.path_params["service"], request.path_params["command"]
        entry: dict[str, Any] = {
            "Time": time.time(),
            "Method": request.method,
            "Service": service,
            "Command": command,
            "Query": {k: v for k, v in request.query_params.items() if k != "usersig"},
            "Body": None,
        }
        self.state.requests.append(entry)
        try:
            body = await self.check_access(request, service, command, entry)
            extra = self.commands[(service, command)](body)
        except ApiError as err:
            entry["ErrorCode"] = err.code
            return answer(code=err.code, info=err.info)
        entry["ErrorCode"] = 0
        return answer(extra)

    async def check_access(self, request: Request, service: str, command: str, entry: dict[str, Any]) -> dict[str, Any]:
        query = request.query_params  # names are case sensitive: `SdkAppId` is not `sdkappid`
        if request.method != "POST":
            raise ApiError(60002, "HTTP parse error: the REST API accepts POST only")
        if not query.get("sdkappid"):
            raise ApiError(60012)
        if query["sdkappid"] != str(self.sdkappid):
            raise ApiError(60006)
        identifier, usersig = query.get("identifier"), query.get("usersig")
        if not identifier or not usersig:
            raise ApiError(60004)
        self.take_rate_slot(f"{service}/{command}")
        sig_error = verify_usersig(usersig, identifier=identifier, sdkappid=self.sdkappid, key=self.secret_key)
        if sig_error:
            raise ApiError(sig_error)
        if identifier != self.admin:
            raise ApiError(60010)
        if (service, command) not in self.commands:
            # The group service documents 10003 for an unknown command word; elsewhere the URL names nothing.
            raise ApiError(10003 if service == GROUP_SVC else 60009)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise ApiError(60003) from None
        if not isinstance(body, dict):
            raise ApiError(60003, "HTTP request JSON parse error: the body must be a JSON object")
        entry["Body"] = body
        return body

    def take_rate_slot(self, key: str) -> None:
        # A sliding one-second window per API, as Tencent counts "calls per second per API".
        now = time.monotonic()
        window = self.windows.setdefault(key, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.rate_limit:
            raise ApiError(60007)
        window.append(now)

    # --- accounts -----------------------------------------------------------------------------------------------

    def import_account(self, user_id: str, nick: Any = None, face_url: Any = None) -> None:
        account = self.state.accounts.setdefault(
            user_id, {"UserID": user_id, "Nick": "", "FaceUrl": "", "CreateTime": _now()}
        )
        if isinstance(nick, str):
            account["Nick"] = nick
        if isinstance(face_url, str):
            account["FaceUrl"] = face_url

    def account_import(self, body: dict[str, Any]) -> dict[str, Any]:
        user_id = body.get("UserID", body.get("Identifier"))  # older docs call it Identifier
        if not valid_userid(user_id):
            raise ApiError(70402, "invalid parameter: UserID must be 1 to 32 bytes of printable ASCII")
        self.import_account(user_id, body.get("Nick"), body.get("FaceUrl"))
        return {}

    def multiaccount_import(self, body: dict[str, Any]) -> dict[str, Any]:
        if isinstance(body.get("AccountList"), list):
            items = [
                (a.get("UserID") if isinstance(a, dict) else a, a if isinstance(a, dict) else {})
                for a in body["AccountList"]
            ]
        elif isinstance(body.get("Accounts"), list):
            items = [(a, {}) for a in body["Accounts"]]
        else:
            raise ApiError(70402, "invalid parameter: Accounts (or AccountList) is required")
        if not items or len(items) > 100:
            raise ApiError(70402, "invalid parameter: import 1 to 100 accounts at a time")
        failed = []
        for user_id, extra in items:
            if valid_userid(user_id):
                self.import_account(user_id, extra.get("Nick"), extra.get("FaceUrl"))
            else:
                failed.append(user_id if isinstance(user_id, str) else json.dumps(user_id))
        return {"FailAccounts": failed}

    def portrait_get(self, body: dict[str, Any]) -> dict[str, Any]:
        """Profiles of up to 100 imported accounts; only the standard Nick tag is modelled."""
        accounts, tags = body.get("To_Account"), body.get("TagList")
        if (
            not isinstance(accounts, list)
            or not 0 < len(accounts) <= 100
            or not all(isinstance(a, str) for a in accounts)
            or not isinstance(tags, list)
        ):
            raise ApiError(40001, "To_Account (1 to 100 UserIDs) and TagList are required")
        unknown = [a for a in accounts if a not in self.state.accounts]
        if unknown:
            raise ApiError(40003)
        items = []
        for account in accounts:
            profile = [{"Tag": "Tag_Profile_IM_Nick", "Value": self.state.accounts[account]["Nick"]}]
            items.append(
                {
                    "To_Account": account,
                    "ProfileItem": [p for p in profile if p["Tag"] in tags],
                    "ResultCode": 0,
                    "ResultInfo": "",
                }
            )
        return {"UserProfileItem": items, "ErrorDisplay": ""}

    def account_check(self, body: dict[str, Any]) -> dict[str, Any]:
        items = body.get("CheckItem")
        if not isinstance(items, list) or not items or len(items) > 100:
            raise ApiError(70402, "invalid parameter: CheckItem must list 1 to 100 accounts")
        results = []
        for item in items:
            user_id = item.get("UserID") if isinstance(item, dict) else None
            if not isinstance(user_id, str):
                raise ApiError(70402, "invalid parameter: every CheckItem needs a UserID")
            status = "Imported" if user_id in self.state.accounts else "NotImported"
            results.append({"UserID": user_id, "ResultCode": 0, "ResultInfo": "", "AccountStatus": status})
        return {"ResultItem": results}

    # --- groups -------------------------------------------------------------------------------------------------

    def live_group(self, body: dict[str, Any]) -> dict[str, Any]:
        group_id = body.get("GroupId")
        if not isinstance(group_id, str) or not group_id:
            raise ApiError(10004, "invalid parameter: GroupId is required")
        group = self.state.groups.get(group_id)
        if group is None or group["Dismissed"]:
            raise ApiError(10010)
        return group

    def check_custom_group_id(self, group_id: Any, group_type: str) -> str:
        # Custom IDs: printable ASCII, at most 48 bytes, and never the prefix of generated IDs; community groups
        # are the exception that must start with "@TGS#_".
        if (
            not isinstance(group_id, str)
            or not _fits(group_id, 48)
            or not all(0x20 <= ord(ch) <= 0x7E for ch in group_id)
        ):
            raise ApiError(10015, "invalid group ID: use 1 to 48 bytes of printable ASCII")
        if group_type == "Community" and not group_id.startswith("@TGS#_"):
            raise ApiError(10015, "invalid group ID: a Community group ID must start with @TGS#_")
        if group_type != "Community" and group_id.startswith("@TGS#"):
            raise ApiError(10015, "invalid group ID: a custom group ID cannot start with @TGS#")
        return group_id

    def new_group_id(self, group_type: str) -> str:
        while True:
            suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=9))
            group_id = f"@TGS#{ID_PREFIX[group_type]}{suffix}"
            if group_id not in self.state.groups:
                return group_id

    def check_profile_fields(self, body: dict[str, Any]) -> None:
        limits = {"Name": 30, "Introduction": 240, "Notification": 300, "FaceUrl": 100}
        for key, max_bytes in limits.items():
            if key in body and not _fits(body[key], max_bytes, allow_empty=key != "Name"):
                raise ApiError(10004, f"invalid parameter: {key} must be a string of at most {max_bytes} bytes")
        if "ApplyJoinOption" in body and body["ApplyJoinOption"] not in JOIN_OPTIONS:
            raise ApiError(10004, "invalid parameter: ApplyJoinOption")
        for key in ("MaxMemberCount", "MaxMemberNum"):
            if key in body and not (_uint32(body[key]) and body[key] > 0):
                raise ApiError(10004, f"invalid parameter: {key}")

    def create_group(self, body: dict[str, Any], operator: str | None = None) -> dict[str, Any]:
        operator = operator or self.admin
        group_type = body.get("Type")
        if group_type not in GROUP_TYPES:
            raise ApiError(10004, "invalid parameter: Type must be one of " + ", ".join(GROUP_TYPES))
        if "Name" not in body:
            raise ApiError(10004, "invalid parameter: Name is required")
        self.check_profile_fields(body)
        owner = body.get("Owner_Account")
        if owner is not None and (not isinstance(owner, str) or owner not in self.state.accounts):
            raise ApiError(10019, f"the owner account {owner!r} has not been imported")
        member_list = body.get("MemberList", [])
        if not isinstance(member_list, list) or any(
            not isinstance(m, dict) or not isinstance(m.get("Member_Account"), str) for m in member_list
        ):
            raise ApiError(10004, "invalid parameter: MemberList must be a list of {Member_Account}")
        if len(member_list) > 100:
            raise ApiError(10005, "too many accounts: at most 100 initial members")
        if member_list and group_type == "AVChatRoom":
            raise ApiError(10007, "members cannot be added to an AVChatRoom group")
        unknown = [m["Member_Account"] for m in member_list if m["Member_Account"] not in self.state.accounts]
        if unknown:
            raise ApiError(10019, "these accounts have not been imported: " + ", ".join(unknown))
        if "GroupId" in body:
            group_id = self.check_custom_group_id(body["GroupId"], group_type)
            existing = self.state.groups.get(group_id)
            if existing is not None and not existing["Dismissed"]:
                # The error table: 10025 "used, and the operator is its owner" (the app admin owns what it created
                # without an Owner_Account), 10021 "used by someone else".
                owner = existing["Owner_Account"] or self.admin
                raise ApiError(10025 if owner == operator else 10021)
        else:
            group_id = self.new_group_id(group_type)
        now = _now()
        members: dict[str, dict[str, Any]] = {}
        if owner:
            members[owner] = {"Role": "Owner", "JoinTime": now}
        for member in member_list:
            role = "Admin" if member.get("Role") == "Admin" else "Member"
            members.setdefault(member["Member_Account"], {"Role": role, "JoinTime": now})
        default_option = {"Private": "DisableApply", "AVChatRoom": "FreeAccess"}.get(group_type, "NeedPermission")
        self.state.groups[group_id] = {
            "GroupId": group_id,
            "Type": group_type,
            "Name": body["Name"],
            "Owner_Account": owner or "",
            "Introduction": body.get("Introduction", ""),
            "Notification": body.get("Notification", ""),
            "FaceUrl": body.get("FaceUrl", ""),
            "MaxMemberNum": body.get("MaxMemberCount", 2000),
            "ApplyJoinOption": body.get("ApplyJoinOption", default_option),
            "MuteAllMember": "Off",
            "Dismissed": False,
            "CreateTime": now,
            "InfoSeq": 1,
            "LastInfoTime": now,
            "Members": members,
            "Tips": [],
            "Applications": [],
        }
        self.state.messages[group_id] = []
        self.state.notifications[group_id] = []
        return {"GroupId": group_id}

    def destroy_group(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.live_group(body)
        group["Dismissed"] = True
        group["DismissTime"] = _now()
        return {}

    def add_group_member(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.live_group(body)
        if group["Type"] == "AVChatRoom":
            raise ApiError(10007, "AVChatRoom groups do not support adding members")
        member_list = body.get("MemberList")
        if not isinstance(member_list, list) or not member_list:
            raise ApiError(10004, "invalid parameter: MemberList is required")
        if len(member_list) > 300:
            raise ApiError(10005, "too many accounts: at most 300 members per call")
        wanted = [m.get("Member_Account") if isinstance(m, dict) else None for m in member_list]
        unknown = [a for a in wanted if valid_userid(a) and a not in self.state.accounts]
        if unknown:
            raise ApiError(10019, "these accounts have not been imported: " + ", ".join(unknown))
        fresh = {a for a in wanted if valid_userid(a) and a not in group["Members"]}
        if len(group["Members"]) + len(fresh) > group["MaxMemberNum"]:
            raise ApiError(10014)
        results, added = [], []
        for account in wanted:
            if not valid_userid(account):
                results.append({"Member_Account": account if isinstance(account, str) else "", "Result": 0})
            elif account in group["Members"]:
                results.append({"Member_Account": account, "Result": 2})
            else:
                group["Members"][account] = {"Role": "Member", "JoinTime": _now()}
                added.append(account)
                results.append({"Member_Account": account, "Result": 1})
        if added and body.get("Silence") != 1:
            group["Tips"].append({"Type": "Join", "Operator_Account": self.admin, "Members": added, "Time": _now()})
        return {"MemberList": results}

    def delete_group_member(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.live_group(body)
        if group["Type"] == "AVChatRoom":
            raise ApiError(10007, "AVChatRoom groups do not support deleting members")
        accounts = body.get("MemberToDel_Account")
        if not isinstance(accounts, list) or not accounts or not all(isinstance(a, str) for a in accounts):
            raise ApiError(10004, "invalid parameter: MemberToDel_Account must list UserIDs")
        if len(accounts) > 100:
            raise ApiError(10005, "too many accounts: at most 100 members per call")
        removed = [a for a in dict.fromkeys(accounts) if group["Members"].pop(a, None) is not None]
        if removed and body.get("Silence") != 1:
            group["Tips"].append(
                {
                    "Type": "Kick",
                    "Operator_Account": self.admin,
                    "Members": removed,
                    "Reason": body.get("Reason", ""),
                    "Time": _now(),
                }
            )
        return {}

    def member_view(self, group: dict[str, Any], account: str, fields: list[str] | None) -> dict[str, Any]:
        info = group["Members"][account]
        last = max(
            (m["MsgTime"] for m in self.state.messages.get(group["GroupId"], []) if m["From_Account"] == account),
            default=0,
        )
        view = {
            "Member_Account": account,
            "Role": info["Role"],
            "JoinTime": info["JoinTime"],
            "MsgSeq": self.next_seq(group["GroupId"]) - 1,
            "MsgFlag": "AcceptAndNotify",
            "LastSendMsgTime": last,
            "ShutUpUntil": 0,
            "NameCard": "",
        }
        return view if fields is None else {k: v for k, v in view.items() if k == "Member_Account" or k in fields}

    def group_view(
        self, group: dict[str, Any], base_fields: list[str] | None, member_fields: list[str] | None, filtered: bool
    ) -> dict[str, Any]:
        group_id = group["GroupId"]
        messages = self.state.messages.get(group_id, [])
        base = {
            "Type": group["Type"],
            "Name": group["Name"],
            "Introduction": group["Introduction"],
            "Notification": group["Notification"],
            "FaceUrl": group["FaceUrl"],
            "Owner_Account": group["Owner_Account"],
            "CreateTime": group["CreateTime"],
            "InfoSeq": group["InfoSeq"],
            "LastInfoTime": group["LastInfoTime"],
            "LastMsgTime": messages[-1]["MsgTime"] if messages else 0,
            "NextMsgSeq": self.next_seq(group_id),
            "MemberNum": len(group["Members"]),
            "MaxMemberNum": group["MaxMemberNum"],
            "ApplyJoinOption": group["ApplyJoinOption"],
            "ShutUpAllMember": group["MuteAllMember"],
        }
        if base_fields is not None:
            base = {k: v for k, v in base.items() if k in base_fields}
        view: dict[str, Any] = {"GroupId": group_id, "ErrorCode": 0, "ErrorInfo": "", **base}
        if not filtered or member_fields is not None:
            view["MemberList"] = [self.member_view(group, a, member_fields) for a in group["Members"]]
        return view

    def get_group_info(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = body.get("GroupIdList")
        if not isinstance(ids, list) or not ids or len(ids) > 50 or not all(isinstance(i, str) for i in ids):
            raise ApiError(10004, "invalid parameter: GroupIdList must list 1 to 50 group IDs")
        response_filter = body.get("ResponseFilter")
        filtered = isinstance(response_filter, dict)
        base_fields = response_filter.get("GroupBaseInfoFilter") if isinstance(response_filter, dict) else None
        member_fields = response_filter.get("MemberInfoFilter") if isinstance(response_filter, dict) else None
        infos = []
        for group_id in ids:
            group = self.state.groups.get(group_id)
            if group is None or group["Dismissed"]:
                infos.append({"GroupId": group_id, "ErrorCode": 10010, "ErrorInfo": ERRORS[10010]})
            else:
                infos.append(self.group_view(group, base_fields, member_fields, filtered))
        return {"GroupInfo": infos}

    def get_group_member_info(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.live_group(body)
        if group["Type"] == "AVChatRoom":
            raise ApiError(10007, "use the audio-video group APIs to list AVChatRoom members")
        roles = body.get("MemberRoleFilter")
        accounts = [a for a, info in group["Members"].items() if not roles or info["Role"] in roles]
        offset, limit = body.get("Offset", 0), body.get("Limit", len(accounts))
        if not _uint32(offset) or not _uint32(limit):
            raise ApiError(10004, "invalid parameter: Limit and Offset must be non-negative integers")
        fields = body.get("MemberInfoFilter")
        page = accounts[offset : offset + limit]
        return {"MemberNum": len(group["Members"]), "MemberList": [self.member_view(group, a, fields) for a in page]}

    def modify_group_base_info(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.live_group(body)
        self.check_profile_fields(body)
        if "MuteAllMember" in body and body["MuteAllMember"] not in ("On", "Off"):
            raise ApiError(10004, "invalid parameter: MuteAllMember must be On or Off")
        for key in (
            "Name",
            "Introduction",
            "Notification",
            "FaceUrl",
            "ApplyJoinOption",
            "MuteAllMember",
            "MaxMemberNum",
        ):
            if key in body:
                group[key] = body[key]
        group["InfoSeq"] += 1
        group["LastInfoTime"] = _now()
        return {}

    def send_group_system_notification(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.live_group(body)
        content = body.get("Content")
        if not isinstance(content, str) or not content:
            raise ApiError(10004, "invalid parameter: Content is required")
        to = body.get("ToMembers_Account")
        if to is not None and (not isinstance(to, list) or not all(isinstance(a, str) for a in to)):
            raise ApiError(10004, "invalid parameter: ToMembers_Account must list UserIDs")
        self.state.notifications.setdefault(group["GroupId"], []).append(
            {"Content": content, "ToMembers_Account": to or [], "Time": _now()}
        )
        return {}

    # --- messages -----------------------------------------------------------------------------------------------

    def next_seq(self, group_id: str) -> int:
        messages = self.state.messages.get(group_id, [])
        return messages[-1]["MsgSeq"] + 1 if messages else 1

    def store_message(
        self,
        group: dict[str, Any],
        sender: str,
        msg_body: list[dict[str, Any]],
        rand: int,
        custom: str,
        platform: str,
        online_only: int = 0,
    ) -> tuple[dict[str, Any], bool]:
        """Store a message; (message, True) when new, (the earlier message, False) for a duplicate."""
        group_id = group["GroupId"]
        now = time.monotonic()
        self.recent = {k: v for k, v in self.recent.items() if v[0] > now - DEDUP_SECONDS}
        key = (group_id, sender, rand, json.dumps(msg_body, sort_keys=True))
        if key in self.recent:
            return self.recent[key][1], False
        window = self.group_windows.setdefault(group_id, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= GROUP_MSG_PER_SECOND:
            raise ApiError(10023)
        window.append(now)
        message = {
            "GroupId": group_id,
            "MsgSeq": self.next_seq(group_id),
            "MsgTime": _now(),
            "Random": rand,
            "From_Account": sender,
            "MsgBody": msg_body,
            "CloudCustomData": custom,
            "OptPlatform": platform,
            "OnlineOnlyFlag": online_only,
        }
        self.state.messages.setdefault(group_id, []).append(message)
        self.recent[key] = (now, message)
        return message, True

    def check_sender(self, group: dict[str, Any], sender: str) -> None:
        if sender == self.admin:
            return  # the app admin speaks in every group, muted or not
        if sender not in self.state.accounts:
            raise ApiError(10019, f"the sender {sender!r} has not been imported")
        role = group["Members"].get(sender, {}).get("Role")
        if role is None:
            raise ApiError(10007, f"the sender {sender!r} is not a member of the group")
        if group["MuteAllMember"] == "On" and role == "Member":
            raise ApiError(10017)

    def send_group_msg(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.live_group(body)
        rand, msg_body = body.get("Random"), body.get("MsgBody")
        if not _uint32(rand):
            raise ApiError(10004, "invalid parameter: Random must be a 32-bit unsigned integer")
        if (
            not isinstance(msg_body, list)
            or not msg_body
            or any(
                not isinstance(e, dict)
                or not isinstance(e.get("MsgType"), str)
                or not isinstance(e.get("MsgContent"), dict)
                for e in msg_body
            )
        ):
            raise ApiError(10004, "invalid parameter: MsgBody must list {MsgType, MsgContent} elements")
        sender = body.get("From_Account") or self.admin
        if not isinstance(sender, str):
            raise ApiError(10004, "invalid parameter: From_Account")
        custom = body.get("CloudCustomData", "")
        if not isinstance(custom, str):
            raise ApiError(10004, "invalid parameter: CloudCustomData must be a string")
        self.check_sender(group, sender)
        online_only = 1 if body.get("OnlineOnlyFlag") == 1 else 0
        message, new = self.store_message(group, sender, msg_body, rand, custom, "RESTAPI", online_only)
        control = body.get("ForbidCallbackControl") or []
        if new and "ForbidAfterSendMsgCallback" not in control:
            self.after_send(group, message, operator=self.admin)
        return {"MsgTime": message["MsgTime"], "MsgSeq": message["MsgSeq"]}

    def group_msg_get_simple(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.live_group(body)
        number, max_seq = body.get("ReqMsgNumber"), body.get("ReqMsgSeq")
        if not _uint32(number) or not 1 <= number <= 20:
            raise ApiError(10004, "invalid parameter: ReqMsgNumber must be 1 to 20")
        if max_seq is not None and not _uint32(max_seq):
            raise ApiError(10004, "invalid parameter: ReqMsgSeq")
        stored = [
            m
            for m in self.state.messages.get(group["GroupId"], [])
            if not m["OnlineOnlyFlag"] and (max_seq is None or m["MsgSeq"] <= max_seq)
        ]
        page = stored[::-1][:number]
        items = []
        for m in page:
            # "Pulling Historical Group Messages": IsPlaceMsg 1 marks a message that expired, failed to be stored
            # or was deleted; a recalled one is modelled the same way here, its body gone.
            recalled = bool(m.get("Recalled"))
            item = {
                "From_Account": m["From_Account"],
                "IsPlaceMsg": int(recalled),
                "MsgBody": [] if recalled else m["MsgBody"],
                "MsgPriority": 1,
                "MsgRandom": m["Random"],
                "MsgSeq": m["MsgSeq"],
                "MsgTimeStamp": m["MsgTime"],
            }
            if m["CloudCustomData"]:
                item["CloudCustomData"] = m["CloudCustomData"]
            items.append(item)
        return {"GroupId": group["GroupId"], "IsFinished": int(len(stored) <= number), "RspMsgList": items}

    def group_msg_recall(self, body: dict[str, Any]) -> dict[str, Any]:
        """ "Recalling Group Messages": `{"GroupId", "MsgSeqList": [{"MsgSeq"}]}` (at most 10), a RetCode per seq."""
        group = self.live_group(body)
        seqs = body.get("MsgSeqList")
        if (
            not isinstance(seqs, list)
            or not 1 <= len(seqs) <= 10
            or not all(isinstance(i, dict) and _uint32(i.get("MsgSeq")) for i in seqs)
        ):
            raise ApiError(10004, "invalid parameter: MsgSeqList must list 1 to 10 {MsgSeq}")
        stored = {m["MsgSeq"]: m for m in self.state.messages.get(group["GroupId"], [])}
        results = []
        for item in seqs:
            message = stored.get(item["MsgSeq"])
            if message is not None:
                message["Recalled"] = True
            # 10030 is the documentation's example RetCode of a seq that could not be recalled.
            results.append({"MsgSeq": item["MsgSeq"], "RetCode": 0 if message is not None else 10030})
        return {"RecallRetList": results}

    # --- callbacks ----------------------------------------------------------------------------------------------

    def after_send(self, group: dict[str, Any], message: dict[str, Any], operator: str) -> None:
        if not self.state.callback_url:
            return
        task = asyncio.get_running_loop().create_task(self.deliver_after_send(group, message, operator))
        self.tasks.add(task)  # keep a reference until done: the loop holds tasks only weakly
        task.add_done_callback(self.tasks.discard)

    async def deliver_after_send(self, group: dict[str, Any], message: dict[str, Any], operator: str) -> None:
        url, token = self.state.callback_url, self.state.callback_token
        command = "Group.CallbackAfterSendMsg"
        params = {
            "SdkAppid": str(self.sdkappid),
            "CallbackCommand": command,
            "contenttype": "json",
            "ClientIP": "127.0.0.1",
            "OptPlatform": message["OptPlatform"],
        }
        if token:
            request_time = str(int(time.time()))
            params["RequestTime"] = request_time
            params["Sign"] = hashlib.sha256((token + request_time).encode("utf-8")).hexdigest()
        payload = {
            "CallbackCommand": command,
            "GroupId": group["GroupId"],
            "Type": group["Type"],
            "From_Account": message["From_Account"],
            "Operator_Account": operator,
            "Random": message["Random"],
            "MsgSeq": message["MsgSeq"],
            "MsgTime": message["MsgTime"],
            "OnlineOnlyFlag": message["OnlineOnlyFlag"],
            "MsgBody": message["MsgBody"],
            "CloudCustomData": message["CloudCustomData"],
            "EventTime": int(time.time() * 1000),
        }
        record: dict[str, Any] = {
            "CallbackCommand": command,
            "GroupId": group["GroupId"],
            "MsgSeq": message["MsgSeq"],
            "Url": url,
            "Status": None,
            "Error": None,
            "Response": None,
            "Time": time.time(),
        }
        try:
            async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT) as client:
                # Merge, not replace: a configured URL may carry its own query string.
                reply = await client.post(httpx.URL(str(url)).copy_merge_params(params), json=payload)
            record["Status"] = reply.status_code
            with contextlib.suppress(ValueError):
                record["Response"] = reply.json()
        except httpx.HTTPError as exc:
            record["Error"] = f"{type(exc).__name__}: {exc}"
        self.state.callbacks.append(record)

    async def drain(self) -> None:
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=CALLBACK_TIMEOUT + 0.5)
            for task in pending:
                task.cancel()

    # --- faults and control routes ------------------------------------------------------------------------------

    def injected_error(self, request: Request, faults: Faults) -> Response:
        if faults.outage:
            # An outage looks like a gateway in trouble: a bare status and an HTML page, no JSON.
            return Response(
                f"<html><body><h1>{faults.status} Service Unavailable</h1></body></html>",
                status_code=faults.status,
                media_type="text/html",
            )
        parts = request.url.path.split("/")
        service = parts[2] if len(parts) > 2 else ""
        code = faults.code or INTERNAL_ERROR.get(service, 10002)
        self.state.requests.append(
            {
                "Time": time.time(),
                "Method": request.method,
                "Service": service,
                "Command": parts[3] if len(parts) > 3 else "",
                "Query": {},
                "Body": None,
                "ErrorCode": code,
                "Injected": True,
            }
        )
        return answer(code=code, info=ERRORS.get(code, "injected error"))

    async def control_state(self, request: Request) -> Response:
        return JSONResponse(self.state.dump())

    async def control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def control_config(self, request: Request) -> Response:
        data = await _json_object(request)
        if "callback_url" in data:
            self.state.callback_url = data["callback_url"] or None
        if "callback_token" in data:
            self.state.callback_token = data["callback_token"] or None
        return JSONResponse(self.state.dump()["config"])

    async def control_send(self, request: Request) -> Response:
        """A message from the app/SDK side (a customer or an agent typing), stored like send_group_msg."""
        data = await _json_object(request)
        group = self.state.groups.get(str(data.get("GroupId")))
        if group is None or group["Dismissed"]:
            return JSONResponse({"error": "no such group (or it was dismissed)"}, status_code=404)
        sender, text, msg_body = data.get("From_Account"), data.get("Text"), data.get("MsgBody")
        if not isinstance(sender, str) or not (isinstance(text, str) or isinstance(msg_body, list) and msg_body):
            return JSONResponse({"error": "From_Account and Text (or a MsgBody list) are required"}, status_code=400)
        msg_body = msg_body or [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}]
        try:
            self.check_sender(group, sender)
            message, new = self.store_message(
                group,
                sender,
                msg_body,
                random.getrandbits(32),
                str(data.get("CloudCustomData", "")),
                str(data.get("OptPlatform", "Web")),
            )
        except ApiError as err:
            return JSONResponse({"error": err.info, "ErrorCode": err.code}, status_code=409)
        if new:
            self.after_send(group, message, operator=sender)
        return JSONResponse(
            {
                "ActionStatus": "OK",
                "ErrorCode": 0,
                "GroupId": group["GroupId"],
                "MsgSeq": message["MsgSeq"],
                "MsgTime": message["MsgTime"],
            }
        )

    # --- the client SDK's side: a user logged in with their own UserSig (the customer page sends and reads) -----

    def client_user(self, data: dict[str, Any]) -> str:
        """The UserID a client call is made as, proven by its UserSig (as the SDK's login does)."""
        user_id, usersig = data.get("UserID"), data.get("UserSig")
        if not valid_userid(user_id) or not isinstance(usersig, str) or not usersig:
            raise ApiError(70402, "invalid parameter: UserID and UserSig are required")
        error = verify_usersig(usersig, identifier=user_id, sdkappid=self.sdkappid, key=self.secret_key)
        if error:
            raise ApiError(error)
        if user_id not in self.state.accounts:
            raise ApiError(10019, f"the user {user_id!r} has not been imported")
        return user_id

    def client_group(self, data: dict[str, Any], user_id: str) -> dict[str, Any]:
        group = self.live_group(data)
        if user_id not in group["Members"]:
            raise ApiError(10007, f"{user_id!r} is not a member of the group")
        return group

    async def client_send(self, request: Request) -> Response:
        """A member sends a text message (the SDK's sendMessage): stored, and the after-send callback fires."""
        data = await _json_object(request)
        try:
            user_id = self.client_user(data)
            group = self.client_group(data, user_id)
            text, rand = data.get("Text"), data.get("Random", random.getrandbits(32))
            if not isinstance(text, str) or not text.strip() or not _uint32(rand):
                raise ApiError(10004, "invalid parameter: Text (non-empty) and Random (uint32) are required")
            self.check_sender(group, user_id)
            msg_body = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}]
            message, new = self.store_message(group, user_id, msg_body, rand, "", "Web")
        except ApiError as err:
            return answer(code=err.code, info=err.info)
        if new:
            self.after_send(group, message, operator=user_id)
        return answer({"MsgSeq": message["MsgSeq"], "MsgTime": message["MsgTime"]})

    async def client_messages(self, request: Request) -> Response:
        """A member reads the group's stored messages after `AfterSeq`, oldest first (the SDK's getMessageList)."""
        data = await _json_object(request)
        try:
            user_id = self.client_user(data)
            group = self.client_group(data, user_id)
        except ApiError as err:
            return answer(code=err.code, info=err.info)
        after = data.get("AfterSeq", 0)
        after = after if _uint32(after) else 0
        messages = [
            {k: m[k] for k in ("MsgSeq", "MsgTime", "From_Account", "MsgBody")}
            for m in self.state.messages.get(group["GroupId"], [])
            if m["MsgSeq"] > after and not m["OnlineOnlyFlag"]
        ]
        # What else the SDK shows in the chat: group system notifications and join/leave tips.
        notices = [n["Content"] for n in self.state.notifications.get(group["GroupId"], [])]
        tips = [{"Type": t["Type"], "Members": t["Members"]} for t in group["Tips"]]
        senders = {m["From_Account"] for m in messages} | {a for t in tips for a in t["Members"]}
        nicks = {a: self.state.accounts.get(a, {}).get("Nick", "") for a in senders}
        return answer(
            {"GroupId": group["GroupId"], "MsgList": messages, "Notices": notices, "Tips": tips, "Nicks": nicks}
        )

    async def client(self, request: Request) -> Response:
        """The client SDK's group actions (`client_commands`), as the user whose UserSig the body carries."""
        command = self.client_commands.get(request.path_params["command"])
        if command is None:
            return JSONResponse({"error": "unknown client command"}, status_code=404)
        data = await _json_object(request)
        try:
            user_id = self.client_user(data)
            body = {k: v for k, v in data.items() if k not in ("UserID", "UserSig")}
            return answer(command(user_id, body))
        except ApiError as err:
            return answer(code=err.code, info=err.info)

    def client_create_group(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        # An SDK createGroup may choose the group ID; the creator is the owner.
        return self.create_group({"Type": "Public", **body, "Owner_Account": user}, operator=user)

    def client_apply_join(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """Group types decide (Tencent's group type table): Private (Work) groups take no applications (SDK error
        8508); Public groups follow ApplyJoinOption (FreeAccess joins, NeedPermission waits for the owner or an
        admin, DisableApply refuses: 10007, insufficient permission); AVChatRoom groups are free to join."""
        group = self.live_group(body)
        if user in group["Members"]:
            return {"JoinedStatus": "AlreadyInGroup"}
        if group["Type"] == "Private":
            raise ApiError(8508)
        option = "FreeAccess" if group["Type"] == "AVChatRoom" else group["ApplyJoinOption"]
        if option == "DisableApply":
            raise ApiError(10007, "this group does not accept applications to join")
        if option == "NeedPermission":
            group["Applications"].append({"Requestor_Account": user, "Time": _now()})
            return {"JoinedStatus": "WaitAdminApproval"}
        if len(group["Members"]) >= group["MaxMemberNum"]:
            raise ApiError(10014)
        group["Members"][user] = {"Role": "Member", "JoinTime": _now()}
        group["Tips"].append({"Type": "Join", "Operator_Account": user, "Members": [user], "Time": _now()})
        return {"JoinedStatus": "JoinedSuccess"}

    def client_invite(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """Private (Work) groups: any member invites anyone, no approval. Public and Community groups: members
        cannot invite, only the owner or an admin (and the app admin over REST). ChatRoom and AVChatRoom groups are
        joined freely, never by invitation."""
        group = self.live_group(body)
        role = group["Members"].get(user, {}).get("Role")
        if role not in INVITERS.get(group["Type"], ()):
            raise ApiError(10007, f"{user!r} may not invite anyone into this {group['Type']} group")
        member_list = body.get("MemberList")
        if not isinstance(member_list, list) or not member_list:
            raise ApiError(10004, "invalid parameter: MemberList is required")
        invited = [m.get("Member_Account") if isinstance(m, dict) else None for m in member_list]
        unknown = [a for a in invited if not (valid_userid(a) and a in self.state.accounts)]
        if unknown:
            raise ApiError(10019, "these accounts have not been imported: " + ", ".join(map(str, unknown)))
        results, added = [], []
        for account in invited:
            assert isinstance(account, str)
            if account in group["Members"]:
                results.append({"Member_Account": account, "Result": 2})
            else:
                group["Members"][account] = {"Role": "Member", "JoinTime": _now()}
                added.append(account)
                results.append({"Member_Account": account, "Result": 1})
        if added:
            group["Tips"].append({"Type": "Invite", "Operator_Account": user, "Members": added, "Time": _now()})
        return {"MemberList": results}

    def client_get_group_profile(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """Anyone can look a group up by ID and read its public profile, except a Private (Work) group's."""
        group = self.live_group(body)
        if group["Type"] == "Private" and user not in group["Members"]:
            raise ApiError(10007, "only members can read a Private group's profile")
        fields = ("GroupId", "Type", "Name", "Introduction", "FaceUrl", "Owner_Account", "ApplyJoinOption")
        profile = {key: group[key] for key in fields}
        if user in group["Members"]:
            profile["Notification"] = group["Notification"]
        return {"GroupInfo": {**profile, "MemberNum": len(group["Members"])}}


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def _now() -> int:
    return int(time.time())


def create_app(
    sdkappid: int,
    secret_key: str,
    admin: str = "administrator",
    rate_limit: int = 200,
    callback_url: str | None = None,
    callback_token: str | None = None,
) -> Starlette:
    """The IM emulator as an ASGI app; its state is `app.state.im` (and the handlers `app.state.emulator`)."""
    emulator = Emulator(sdkappid, secret_key, admin, rate_limit, callback_url, callback_token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await emulator.drain()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]  # anything but POST gets Tencent's answer, not a 405
    routes = [
        Route("/v4/{service}/{command}", emulator.rest, methods=methods),
        Route(CONTROL_PREFIX + "state", emulator.control_state, methods=["GET"]),
        Route(CONTROL_PREFIX + "reset", emulator.control_reset, methods=["POST"]),
        Route(CONTROL_PREFIX + "config", emulator.control_config, methods=["POST"]),
        Route(CONTROL_PREFIX + "send", emulator.control_send, methods=["POST"]),
        Route(CONTROL_PREFIX + "client/send", emulator.client_send, methods=["POST"]),
        Route(CONTROL_PREFIX + "client/messages", emulator.client_messages, methods=["POST"]),
        Route(CONTROL_PREFIX + "client/{command}", emulator.client, methods=["POST"]),
        *fault_routes(emulator.faults),
    ]
    middleware = [
        # Web clients reach IM from their own pages' origins (the sandbox's customer page does too).
        Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"], allow_headers=["Content-Type"]),
        Middleware(FaultMiddleware, faults=emulator.faults, error=emulator.injected_error),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.im = emulator.state
    app.state.emulator = emulator
    return app
