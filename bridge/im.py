"""The Tencent Cloud IM REST v4 client: one httpx.AsyncClient on an aiohttp transport, typed errors, rate limits.

Tencent answers HTTP 200 even for failures: `ActionStatus: FAIL` with an `ErrorCode`. `call()` turns every failure
into an IMError subclass of PermanentError or RetriableError through one table, so callers and the job queue
know what to do next without reading codes.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import httpx
from aiolimiter import AsyncLimiter
from httpx_aiohttp import AiohttpTransport

from bridge.auth import gen_usersig
from bridge.errors import PermanentError, RetriableError

if TYPE_CHECKING:
    from bridge.config import Settings

ADMIN_SIG_SECONDS = 7 * 86400
ADMIN_SIG_RENEW_BEFORE = 3600
GROUP_NAME_MAX_BYTES = 30
ADD_MEMBER_BATCH = 300
DELETE_MEMBER_BATCH = 100
HISTORY_PAGE = 20  # group_msg_get_simple returns at most 20 messages a call
PROFILE_BATCH = 100  # portrait_get takes at most 100 accounts a call
NICK_TAG = "Tag_Profile_IM_Nick"
NICK_MAX_BYTES = 500  # a profile string holds at most 500 bytes (40601 beyond)

# Member results of add_group_member.
MEMBER_FAILED, MEMBER_ADDED, MEMBER_ALREADY = 0, 1, 2
ALREADY_MEMBER = 10013  # "the invited user is already a member", documented as a whole-call error too


class IMError(PermanentError):
    """IM refused the call; `upstream_code` is its ErrorCode."""

    def __init__(self, message: str, upstream_code: int | None = None):
        super().__init__(message, upstream="im", upstream_code=upstream_code)


class IMRetriableError(RetriableError):
    def __init__(self, message: str, upstream_code: int | None = None, retry_after: float | None = None):
        super().__init__(message, upstream="im", upstream_code=upstream_code, retry_after=retry_after)


class GroupNotFound(IMError):
    status = 404
    code = "group_not_found"


class GroupExists(IMError):
    """10025: the group ID is already used by this app (a retried create after a lost answer meets it)."""


class GroupIdTaken(IMError):
    """10021: the group ID is used by someone else."""


class AccountNotFound(IMError):
    """10019 (or 20003 in one-to-one calls): the IM account was never imported."""


class IMAuthError(IMError):
    """70001-70014: the admin UserSig, SDKAppID or key is wrong; a configuration problem."""


# Over a frequency limit: the access layer's per-API limits, the group service's (10006) and its per-group message
# rate (10023).
RATE_LIMIT_CODES = {60007, 60011, 60018, 60019, 10006, 10023}
# Server-side failures Tencent says to retry: group service 10002, a service timeout 60008, login service 70500
# and 70169, and others. Not 80002 (a message body over 8 KB fails every time).
RETRIABLE_CODES = {10002, 60008, 70169, 70500, 90994, 91000} | RATE_LIMIT_CODES
ERROR_TABLE: dict[int, type[IMError]] = {
    10010: GroupNotFound,
    10015: GroupNotFound,
    10025: GroupExists,
    10021: GroupIdTaken,
    10019: AccountNotFound,
    20003: AccountNotFound,
    **{code: IMAuthError for code in (70001, 70003, 70009, 70013, 70014, 70016, 70020, 70052)},
}


def raise_for_answer(answer: dict[str, Any], command: str) -> None:
    if answer.get("ActionStatus") == "OK" and not answer.get("ErrorCode"):
        return
    code = int(answer.get("ErrorCode") or -1)
    message = f"IM {command} failed: {answer.get('ErrorInfo') or 'no error text'} (ErrorCode {code})"
    if code in RETRIABLE_CODES:
        raise IMRetriableError(message, code, retry_after=1.0 if code in RATE_LIMIT_CODES else None)
    raise ERROR_TABLE.get(code, IMError)(message, code)


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut text to at most max_bytes of UTF-8 without splitting a character."""
    return text.encode()[:max_bytes].decode(errors="ignore")


class IMClient:
    def __init__(
        self,
        base_url: str,
        sdkappid: int,
        secret_key: str,
        admin: str = "administrator",
        timeout: float = 10.0,
        rate_limit: int = 200,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.sdkappid = sdkappid
        self.admin = admin
        self._key = secret_key
        self._sig = ""
        self._sig_renew_at = 0.0
        self._rate_limit = rate_limit
        # One call every 1/rate seconds, never a burst: a bucket of `rate` would allow twice the rate in one second,
        # which IM (counting calls per second) refuses.
        self._limiters: dict[str, AsyncLimiter] = defaultdict(lambda: AsyncLimiter(1, 1 / self._rate_limit))
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport or AiohttpTransport(limits=limits),
            limits=limits,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> IMClient:
        return cls(
            settings.im_api_base,
            settings.im_sdkappid,
            settings.im_secret_key.get_secret_value(),
            admin=settings.im_admin_userid,
            timeout=settings.im_timeout,
            rate_limit=settings.im_rate_limit,
        )

    async def close(self) -> None:
        await self._http.aclose()

    def _admin_sig(self) -> str:
        now = time.time()
        if now >= self._sig_renew_at:
            self._sig = gen_usersig(self.sdkappid, self._key, self.admin, ADMIN_SIG_SECONDS)
            self._sig_renew_at = now + ADMIN_SIG_SECONDS - ADMIN_SIG_RENEW_BEFORE
        return self._sig

    async def call(self, service: str, command: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST one v4 command; return the answer when OK, raise an IMError subclass otherwise."""
        path = f"/v4/{service}/{command}"
        params = {
            "sdkappid": str(self.sdkappid),
            "identifier": self.admin,
            "usersig": self._admin_sig(),
            "random": str(random.randint(0, 2**32 - 1)),
            "contenttype": "json",
        }
        async with self._limiters[path]:
            try:
                response = await self._http.post(path, params=params, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                # The aiohttp transport reports a refused connection as a connect timeout: say both.
                raise IMRetriableError(f"IM {command} could not be reached (connection refused or timed out)") from None
            except httpx.TimeoutException:
                raise IMRetriableError(f"IM {command} timed out") from None
            except httpx.HTTPError as exc:
                raise IMRetriableError(f"IM {command} could not be reached: {type(exc).__name__}") from None
        if response.status_code != 200:
            text = f"IM {command} answered HTTP {response.status_code}"
            if response.status_code in (429,) or response.status_code >= 500:
                raise IMRetriableError(text)
            raise IMError(text)
        try:
            answer = response.json()
        except ValueError:
            raise IMRetriableError(f"IM {command} answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise IMRetriableError(f"IM {command} answered something that is not a JSON object")
        raise_for_answer(answer, command)
        return answer

    # --- accounts -----------------------------------------------------------------------------------------------

    async def import_account(self, user_id: str, nick: str | None = None) -> None:
        body: dict[str, Any] = {"UserID": user_id}
        if nick:
            body["Nick"] = truncate_utf8(nick, NICK_MAX_BYTES)
        await self.call("im_open_login_svc", "account_import", body)

    async def set_nick(self, user_id: str, nick: str) -> None:
        """Set an existing account's Nick (`portrait_set`): Tencent documents account_import as creating an account,
        not as updating the profile of one that exists."""
        body = {
            "From_Account": user_id,
            "ProfileItem": [{"Tag": NICK_TAG, "Value": truncate_utf8(nick, NICK_MAX_BYTES)}],
        }
        await self.call("profile", "portrait_set", body)

    async def nicks(self, user_ids: list[str]) -> dict[str, str]:
        """Accounts' Nick (`portrait_get`, 100 a call); accounts without one are left out."""
        names: dict[str, str] = {}
        for start in range(0, len(user_ids), PROFILE_BATCH):
            body = {"To_Account": user_ids[start : start + PROFILE_BATCH], "TagList": [NICK_TAG]}
            answer = await self.call("profile", "portrait_get", body)
            for item in answer.get("UserProfileItem") or []:
                for tag in item.get("ProfileItem") or []:
                    if tag.get("Tag") == NICK_TAG and isinstance(tag.get("Value"), str) and tag["Value"]:
                        names[str(item.get("To_Account"))] = tag["Value"]
        return names

    # --- groups -------------------------------------------------------------------------------------------------

    async def create_group(
        self,
        group_id: str,
        name: str,
        members: tuple[str, ...] | list[str] = (),
        type_: str = "Public",
        apply_join: str = "DisableApply",
    ) -> None:
        """A group with no Owner_Account: only the app admin adds or removes members. Public, because members of a
        Public group cannot invite anyone; DisableApply, because nobody may ask to join."""
        body: dict[str, Any] = {
            "Type": type_,
            "GroupId": group_id,
            "Name": truncate_utf8(name, GROUP_NAME_MAX_BYTES) or group_id[:30],
            "ApplyJoinOption": apply_join,
            "MemberList": [{"Member_Account": m} for m in members],
        }
        await self.call("group_open_http_svc", "create_group", body)

    async def get_group(self, group_id: str) -> dict[str, Any] | None:
        """The group's info with its members, or None when it does not exist or was dismissed."""
        answer = await self.call("group_open_http_svc", "get_group_info", {"GroupIdList": [group_id]})
        groups = answer.get("GroupInfo") or []
        if not groups:
            return None
        group = groups[0]
        code = int(group.get("ErrorCode") or 0)
        if code in (10010, 10015):
            return None
        if code:
            raise_for_answer({"ActionStatus": "FAIL", **group}, "get_group_info")
        return dict(group)

    async def member_ids(self, group_id: str) -> list[str]:
        answer = await self.call("group_open_http_svc", "get_group_member_info", {"GroupId": group_id})
        return [m["Member_Account"] for m in answer.get("MemberList") or []]

    async def group_messages(self, group_id: str, before: int | None = None) -> dict[str, Any]:
        """One page of the group's history (`group_msg_get_simple`): `RspMsgList` newest first, at most 20, up to
        and including MsgSeq `before` when given; `IsFinished` 1 when nothing older is left."""
        body: dict[str, Any] = {"GroupId": group_id, "ReqMsgNumber": HISTORY_PAGE}
        if before is not None:
            body["ReqMsgSeq"] = before
        return await self.call("group_open_http_svc", "group_msg_get_simple", body)

    async def destroy_group(self, group_id: str) -> None:
        await self.call("group_open_http_svc", "destroy_group", {"GroupId": group_id})

    async def add_members(self, group_id: str, user_ids: list[str], silence: bool = False) -> dict[str, int]:
        """Add members; returns each account's Result (1 added, 2 already a member). A Result of 0 raises."""
        results: dict[str, int] = {}
        for start in range(0, len(user_ids), ADD_MEMBER_BATCH):
            batch = user_ids[start : start + ADD_MEMBER_BATCH]
            body: dict[str, Any] = {"GroupId": group_id, "MemberList": [{"Member_Account": u} for u in batch]}
            if silence:
                body["Silence"] = 1
            try:
                answer = await self.call("group_open_http_svc", "add_group_member", body)
            except IMError as exc:
                if exc.upstream_code != ALREADY_MEMBER or len(batch) != 1:
                    raise
                answer = {"MemberList": [{"Member_Account": batch[0], "Result": MEMBER_ALREADY}]}
            for member in answer.get("MemberList") or []:
                results[member["Member_Account"]] = int(member.get("Result", MEMBER_FAILED))
        # Only 1 and 2 leave the account in the group; 0 failed, 3 waits for an approval that never comes for the
        # bridge, and any other value (over the account's group quota) is a failure too.
        failed = [u for u, r in results.items() if r not in (MEMBER_ADDED, MEMBER_ALREADY)]
        if failed:
            raise IMError(f"IM add_group_member failed for {', '.join(failed)}")
        return results

    async def delete_members(self, group_id: str, user_ids: list[str], silence: bool = False) -> None:
        for start in range(0, len(user_ids), DELETE_MEMBER_BATCH):
            body: dict[str, Any] = {"GroupId": group_id, "MemberToDel_Account": user_ids[start : start + 100]}
            if silence:
                body["Silence"] = 1
            await self.call("group_open_http_svc", "delete_group_member", body)

    async def mute_all(self, group_id: str, muted: bool) -> None:
        body = {"GroupId": group_id, "MuteAllMember": "On" if muted else "Off"}
        await self.call("group_open_http_svc", "modify_group_base_info", body)

    async def system_notification(self, group_id: str, content: str) -> None:
        await self.call(
            "group_open_http_svc", "send_group_system_notification", {"GroupId": group_id, "Content": content}
        )

    async def group_message(self, group_id: str, seq: int) -> dict[str, Any] | None:
        """The message stored under `seq` in the group's history, as `group_msg_get_simple` lists it (`From_Account`,
        `MsgBody`, `IsPlaceMsg` set when it was recalled, deleted or expired, ...); None when IM has no such
        message or no such group. ReqMsgSeq is the newest seq to list, so the one item asked for is that message
        when it exists."""
        body = {"GroupId": group_id, "ReqMsgSeq": seq, "ReqMsgNumber": 1}
        try:
            answer = await self.call("group_open_http_svc", "group_msg_get_simple", body)
        except GroupNotFound:
            return None
        for item in answer.get("RspMsgList") or []:
            if isinstance(item, dict) and item.get("MsgSeq") == seq:
                return item
        return None

    async def send_text(
        self,
        group_id: str,
        text: str,
        random_: int,
        from_account: str | None = None,
        cloud_custom_data: str | None = None,
        forbid_callback: bool = False,
        online_only: bool = False,
    ) -> dict[str, Any]:
        """Send a text message; the same `random_` and text within 5 minutes is dropped by IM as a duplicate.
        `forbid_callback`: IM does not call the after-send callback for it (the bridge's own words); `online_only`:
        delivered to members online now, not kept in the group's history (OnlineOnlyFlag)."""
        element = {"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}
        return await self.send_message(
            group_id, [element], random_, from_account, cloud_custom_data, forbid_callback, online_only
        )

    async def send_message(
        self,
        group_id: str,
        msg_body: list[dict[str, Any]],
        random_: int,
        from_account: str | None = None,
        cloud_custom_data: str | None = None,
        forbid_callback: bool = False,
        online_only: bool = False,
    ) -> dict[str, Any]:
        """Send a message of IM elements (`{"MsgType", "MsgContent"}`) as `from_account` (the admin when None); the
        same `random_` and content within 5 minutes is dropped by IM as a duplicate. Answers `MsgSeq`, `MsgTime`."""
        body: dict[str, Any] = {"GroupId": group_id, "Random": random_, "MsgBody": msg_body}
        if from_account:
            body["From_Account"] = from_account
        if cloud_custom_data:
            body["CloudCustomData"] = cloud_custom_data
        if forbid_callback:
            body["ForbidCallbackControl"] = ["ForbidAfterSendMsgCallback"]
        if online_only:
            body["OnlineOnlyFlag"] = 1
        return await self.call("group_open_http_svc", "send_group_msg", body)
