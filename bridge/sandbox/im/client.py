"""What an app user can do with the client SDK, whatever the app's backend intends: logged in with their own
UserSig, answered like the REST API (HTTP 200 with `ActionStatus`/`ErrorCode`), under IM's group type rules. Every
client route takes `{"UserID", "UserSig", ...}`; `/_emulator/send` is the unauthenticated way for tests and the
walkthrough to type as a member.

| route | what |
| --- | --- |
| `POST /_emulator/send` | `{"GroupId", "From_Account", "Text"}` (or `"MsgBody"`): a member's message from the app/SDK |
| `POST /_emulator/client/send` | `{"UserID", "UserSig", "GroupId", "Text", "Random"?}`: a member sends a text |
| `POST /_emulator/client/messages` | `{"UserID", "UserSig", "GroupId", "AfterSeq"?}`: messages, notices, join tips |
| `POST /_emulator/client/create_group` | `{"UserID", "UserSig", "GroupId"?, "Type"?, "Name", ...}`: the user owns it |
| `POST /_emulator/client/apply_join` | `{"UserID", "UserSig", "GroupId"}`: asks to join; answers a `JoinedStatus` |
| `POST /_emulator/client/invite` | `{"UserID", "UserSig", "GroupId", "MemberList": [{"Member_Account"}]}`: invites |
| `POST /_emulator/client/get_group_profile` | `{"UserID", "UserSig", "GroupId"}`: what anyone can read of a group |
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.faults import CONTROL_PREFIX
from bridge.sandbox.im.core import ApiError, IMState, answer, json_object, uint32, unix_now, valid_userid
from bridge.sandbox.im.groups import Groups
from bridge.sandbox.im.messages import Messages
from bridge.sandbox.im.usersig import verify_usersig

# Who may invite others into a group from the client SDK, by group type (absent: nobody).
INVITERS = {"Private": ("Owner", "Admin", "Member"), "Public": ("Owner", "Admin"), "Community": ("Owner", "Admin")}


class Client:
    def __init__(self, state: IMState, sdkappid: int, secret_key: str, groups: Groups, messages: Messages):
        self.state, self.sdkappid, self.secret_key = state, sdkappid, secret_key
        self.groups, self.messages = groups, messages
        self.commands: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
            "send": self.send_text,
            "messages": self.read_messages,
            "create_group": self.create_group,
            "apply_join": self.apply_join,
            "invite": self.invite,
            "get_group_profile": self.get_group_profile,
        }

    def routes(self) -> list[Route]:
        return [
            Route(CONTROL_PREFIX + "send", self.control_send, methods=["POST"]),
            Route(CONTROL_PREFIX + "client/{command}", self.call, methods=["POST"]),
        ]

    async def control_send(self, request: Request) -> Response:
        """A message from the app/SDK side (a customer or an agent typing), stored like send_group_msg."""
        data = await json_object(request)
        group = self.state.groups.get(str(data.get("GroupId")))
        if group is None or group["Dismissed"]:
            return JSONResponse({"error": "no such group (or it was dismissed)"}, status_code=404)
        sender, text, msg_body = data.get("From_Account"), data.get("Text"), data.get("MsgBody")
        if not isinstance(sender, str) or not (isinstance(text, str) or isinstance(msg_body, list) and msg_body):
            return JSONResponse({"error": "From_Account and Text (or a MsgBody list) are required"}, status_code=400)
        msg_body = msg_body or [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}]
        try:
            message = self.messages.send(
                group,
                sender,
                msg_body,
                random.getrandbits(32),
                str(data.get("CloudCustomData", "")),
                str(data.get("OptPlatform", "Web")),
            )
        except ApiError as err:
            return JSONResponse({"error": err.info, "ErrorCode": err.code}, status_code=409)
        return JSONResponse(
            {
                "ActionStatus": "OK",
                "ErrorCode": 0,
                "GroupId": group["GroupId"],
                "MsgSeq": message["MsgSeq"],
                "MsgTime": message["MsgTime"],
            }
        )

    def user(self, data: dict[str, Any]) -> str:
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

    def member_group(self, body: dict[str, Any], user_id: str) -> dict[str, Any]:
        group = self.state.live_group(body)
        if user_id not in group["Members"]:
            raise ApiError(10007, f"{user_id!r} is not a member of the group")
        return group

    def send_text(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """A member sends a text message (the SDK's sendMessage): stored, and the after-send callback fires."""
        group = self.member_group(body, user)
        text, rand = body.get("Text"), body.get("Random", random.getrandbits(32))
        if not isinstance(text, str) or not text.strip() or not uint32(rand):
            raise ApiError(10004, "invalid parameter: Text (non-empty) and Random (uint32) are required")
        msg_body = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}]
        message = self.messages.send(group, user, msg_body, rand, "", "Web")
        return {"MsgSeq": message["MsgSeq"], "MsgTime": message["MsgTime"]}

    def read_messages(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """A member reads the group's stored messages after `AfterSeq`, oldest first (the SDK's getMessageList)."""
        group = self.member_group(body, user)
        after = body.get("AfterSeq", 0)
        after = after if uint32(after) else 0
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
        return {"GroupId": group["GroupId"], "MsgList": messages, "Notices": notices, "Tips": tips, "Nicks": nicks}

    async def call(self, request: Request) -> Response:
        """A client SDK call (`commands`), as the user whose UserSig the body carries."""
        command = self.commands.get(request.path_params["command"])
        if command is None:
            return JSONResponse({"error": "unknown client command"}, status_code=404)
        data = await json_object(request)
        try:
            user_id = self.user(data)
            body = {k: v for k, v in data.items() if k not in ("UserID", "UserSig")}
            return answer(command(user_id, body))
        except ApiError as err:
            return answer(code=err.code, info=err.info)

    def create_group(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        # An SDK createGroup may choose the group ID; the creator is the owner.
        return self.groups.create_group({"Type": "Public", **body, "Owner_Account": user}, operator=user)

    def apply_join(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """Group types decide (Tencent's group type table): Private (Work) groups take no applications (SDK error
        8508); Public groups follow ApplyJoinOption (FreeAccess joins, NeedPermission waits for the owner or an
        admin, DisableApply refuses: 10007, insufficient permission); AVChatRoom groups are free to join."""
        group = self.state.live_group(body)
        if user in group["Members"]:
            return {"JoinedStatus": "AlreadyInGroup"}
        if group["Type"] == "Private":
            raise ApiError(8508)
        option = "FreeAccess" if group["Type"] == "AVChatRoom" else group["ApplyJoinOption"]
        if option == "DisableApply":
            raise ApiError(10007, "this group does not accept applications to join")
        if option == "NeedPermission":
            group["Applications"].append({"Requestor_Account": user, "Time": unix_now()})
            return {"JoinedStatus": "WaitAdminApproval"}
        if len(group["Members"]) >= group["MaxMemberNum"]:
            raise ApiError(10014)
        group["Members"][user] = {"Role": "Member", "JoinTime": unix_now()}
        group["Tips"].append({"Type": "Join", "Operator_Account": user, "Members": [user], "Time": unix_now()})
        return {"JoinedStatus": "JoinedSuccess"}

    def invite(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """Private (Work) groups: any member invites anyone, no approval. Public and Community groups: members
        cannot invite, only the owner or an admin (and the app admin over REST). ChatRoom and AVChatRoom groups are
        joined freely, never by invitation."""
        group = self.state.live_group(body)
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
        return {"MemberList": self.groups.add_members(group, invited, user, "Invite")}

    def get_group_profile(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """Anyone can look a group up by ID and read its public profile, except a Private (Work) group's."""
        group = self.state.live_group(body)
        if group["Type"] == "Private" and user not in group["Members"]:
            raise ApiError(10007, "only members can read a Private group's profile")
        fields = ("GroupId", "Type", "Name", "Introduction", "FaceUrl", "Owner_Account", "ApplyJoinOption")
        profile = {key: group[key] for key in fields}
        if user in group["Members"]:
            profile["Notification"] = group["Notification"]
        return {"GroupInfo": {**profile, "MemberNum": len(group["Members"])}}
