"""IM's callback to the app's backend: `Group.CallbackAfterSendMsg`, posted to the configured callback URL after
a message is stored (from a background task, with the 2 s Tencent gives a callback), signed with the callback
token as Tencent signs (`Sign` = SHA-256 of token + `RequestTime`). Every delivery is recorded in the state."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import Any

import httpx

from bridge.sandbox.im.core import IMState

CALLBACK_TIMEOUT = 2.0  # what Tencent gives a callback


class Callbacks:
    def __init__(self, state: IMState, sdkappid: int):
        self.state, self.sdkappid = state, sdkappid
        self.tasks: set[asyncio.Task[None]] = set()

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
