"""IM group messages: the `group_open_http_svc` commands `send_group_msg`, `group_msg_get_simple` and
`group_msg_recall`, and how every message is stored (whoever sends it): the sender's rights, a duplicate within five
minutes, the per-group rate, and the after-send callback (callbacks.py)."""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from bridge.sandbox.im.callbacks import Callbacks
from bridge.sandbox.im.core import GROUP_SVC, ApiError, Command, IMState, take_slot, uint32, unix_now

GROUP_MSG_PER_SECOND = 40  # per group; over it: 10023
DEDUP_SECONDS = 300  # same Random and content within 5 minutes is the same message


class Messages:
    def __init__(self, state: IMState, admin: str, callbacks: Callbacks):
        self.state, self.admin, self.callbacks = state, admin, callbacks
        self.group_windows: dict[str, deque[float]] = {}
        self.recent: dict[tuple[str, str, int, str], tuple[float, dict[str, Any]]] = {}

    def commands(self) -> dict[tuple[str, str], Command]:
        return {
            (GROUP_SVC, "send_group_msg"): self.send_group_msg,
            (GROUP_SVC, "group_msg_get_simple"): self.group_msg_get_simple,
            (GROUP_SVC, "group_msg_recall"): self.group_msg_recall,
        }

    def reset(self) -> None:
        self.group_windows.clear()
        self.recent.clear()

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
        if not take_slot(self.group_windows, group_id, GROUP_MSG_PER_SECOND, now):
            raise ApiError(10023)
        message = {
            "GroupId": group_id,
            "MsgSeq": self.state.next_seq(group_id),
            "MsgTime": unix_now(),
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

    def send(
        self, group: dict[str, Any], sender: str, msg_body: list[dict[str, Any]], rand: int, custom: str, platform: str
    ) -> dict[str, Any]:
        """A member's message from the app/SDK side: checked, stored, and a new one calls back as sent by them."""
        self.check_sender(group, sender)
        message, new = self.store_message(group, sender, msg_body, rand, custom, platform)
        if new:
            self.callbacks.after_send(group, message, operator=sender)
        return message

    def send_group_msg(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.state.live_group(body)
        rand, msg_body = body.get("Random"), body.get("MsgBody")
        if not uint32(rand):
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
            self.callbacks.after_send(group, message, operator=self.admin)
        return {"MsgTime": message["MsgTime"], "MsgSeq": message["MsgSeq"]}

    def group_msg_get_simple(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.state.live_group(body)
        number, max_seq = body.get("ReqMsgNumber"), body.get("ReqMsgSeq")
        if not uint32(number) or not 1 <= number <= 20:
            raise ApiError(10004, "invalid parameter: ReqMsgNumber must be 1 to 20")
        if max_seq is not None and not uint32(max_seq):
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
        group = self.state.live_group(body)
        seqs = body.get("MsgSeqList")
        if (
            not isinstance(seqs, list)
            or not 1 <= len(seqs) <= 10
            or not all(isinstance(i, dict) and uint32(i.get("MsgSeq")) for i in seqs)
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
