"""IM groups and their members: the `group_open_http_svc` commands `create_group`, `destroy_group`,
`add_group_member`, `delete_group_member`, `get_group_info`, `get_group_member_info`, `modify_group_base_info` and
`send_group_system_notification`, under IM's group type rules (the group messages are in messages.py)."""

from __future__ import annotations

import random
import string
from typing import Any

from bridge.sandbox.im.core import (
    ERRORS,
    GROUP_SVC,
    ApiError,
    Command,
    IMState,
    fits,
    uint32,
    unix_now,
    valid_userid,
)

GROUP_TYPES = ("Private", "Public", "ChatRoom", "AVChatRoom", "Community")
ID_PREFIX = {"Private": "1", "Public": "2", "ChatRoom": "3", "AVChatRoom": "a", "Community": "_"}
JOIN_OPTIONS = ("FreeAccess", "NeedPermission", "DisableApply")


class Groups:
    def __init__(self, state: IMState, admin: str):
        self.state, self.admin = state, admin

    def commands(self) -> dict[tuple[str, str], Command]:
        return {
            (GROUP_SVC, "create_group"): self.create_group,
            (GROUP_SVC, "destroy_group"): self.destroy_group,
            (GROUP_SVC, "add_group_member"): self.add_group_member,
            (GROUP_SVC, "delete_group_member"): self.delete_group_member,
            (GROUP_SVC, "get_group_info"): self.get_group_info,
            (GROUP_SVC, "get_group_member_info"): self.get_group_member_info,
            (GROUP_SVC, "modify_group_base_info"): self.modify_group_base_info,
            (GROUP_SVC, "send_group_system_notification"): self.send_group_system_notification,
        }

    def check_custom_group_id(self, group_id: Any, group_type: str) -> str:
        # Custom IDs: printable ASCII, at most 48 bytes, and never the prefix of generated IDs; community groups
        # are the exception that must start with "@TGS#_".
        if (
            not isinstance(group_id, str)
            or not fits(group_id, 48)
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
            if key in body and not fits(body[key], max_bytes, allow_empty=key != "Name"):
                raise ApiError(10004, f"invalid parameter: {key} must be a string of at most {max_bytes} bytes")
        if "ApplyJoinOption" in body and body["ApplyJoinOption"] not in JOIN_OPTIONS:
            raise ApiError(10004, "invalid parameter: ApplyJoinOption")
        for key in ("MaxMemberCount", "MaxMemberNum"):
            if key in body and not (uint32(body[key]) and body[key] > 0):
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
        now = unix_now()
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
        group = self.state.live_group(body)
        group["Dismissed"] = True
        group["DismissTime"] = unix_now()
        return {}

    def add_group_member(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.state.live_group(body)
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
        tip = None if body.get("Silence") == 1 else "Join"
        return {"MemberList": self.add_members(group, wanted, self.admin, tip)}

    def add_members(self, group: dict[str, Any], accounts: list[Any], operator: str, tip: str | None) -> list[Any]:
        """Add imported accounts as members: a Result per account (0 not a UserID, 1 added, 2 already a member),
        and a tip of the `tip` type naming those added, as the group's members see it."""
        results, added = [], []
        for account in accounts:
            if not valid_userid(account):
                results.append({"Member_Account": account if isinstance(account, str) else "", "Result": 0})
            elif account in group["Members"]:
                results.append({"Member_Account": account, "Result": 2})
            else:
                group["Members"][account] = {"Role": "Member", "JoinTime": unix_now()}
                added.append(account)
                results.append({"Member_Account": account, "Result": 1})
        if added and tip:
            group["Tips"].append({"Type": tip, "Operator_Account": operator, "Members": added, "Time": unix_now()})
        return results

    def delete_group_member(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.state.live_group(body)
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
                    "Time": unix_now(),
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
            "MsgSeq": self.state.next_seq(group["GroupId"]) - 1,
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
            "NextMsgSeq": self.state.next_seq(group_id),
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
        group = self.state.live_group(body)
        if group["Type"] == "AVChatRoom":
            raise ApiError(10007, "use the audio-video group APIs to list AVChatRoom members")
        roles = body.get("MemberRoleFilter")
        accounts = [a for a, info in group["Members"].items() if not roles or info["Role"] in roles]
        offset, limit = body.get("Offset", 0), body.get("Limit", len(accounts))
        if not uint32(offset) or not uint32(limit):
            raise ApiError(10004, "invalid parameter: Limit and Offset must be non-negative integers")
        fields = body.get("MemberInfoFilter")
        page = accounts[offset : offset + limit]
        return {"MemberNum": len(group["Members"]), "MemberList": [self.member_view(group, a, fields) for a in page]}

    def modify_group_base_info(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.state.live_group(body)
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
        group["LastInfoTime"] = unix_now()
        return {}

    def send_group_system_notification(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.state.live_group(body)
        content = body.get("Content")
        if not isinstance(content, str) or not content:
            raise ApiError(10004, "invalid parameter: Content is required")
        to = body.get("ToMembers_Account")
        if to is not None and (not isinstance(to, list) or not all(isinstance(a, str) for a in to)):
            raise ApiError(10004, "invalid parameter: ToMembers_Account must list UserIDs")
        self.state.notifications.setdefault(group["GroupId"], []).append(
            {"Content": content, "ToMembers_Account": to or [], "Time": unix_now()}
        )
        return {}
