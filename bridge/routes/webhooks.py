"""Tencent IM callbacks (IM-signed): verify, store and answer; the work (appending a message to its ticket) is a job
run by the worker. A duplicate delivery is answered 2xx and queues nothing.

(A helpdesk's own webhooks are its connector's routes: connectors/*/.)
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, TypeGuard

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge import auth, replies, transcript
from bridge.console.service import console_sent
from bridge.errors import BadRequest, SignatureError
from bridge.models import GROUP_ID
from bridge.payloads import SyncMessage
from bridge.routes import IM_OK, bridge_of, ok, parse_json, raw_body

log = logging.getLogger(__name__)

AFTER_SEND_MSG = "Group.CallbackAfterSendMsg"


# --- Tencent IM -------------------------------------------------------------------------------------------------


async def im_callback(request: Request) -> JSONResponse:
    bridge = bridge_of(request)
    settings = bridge.settings
    body = await raw_body(request)
    query = request.query_params
    if settings.im_callback_token is None:
        # Like signed calls without a secret: an unauthenticated callback could put any words in any ticket.
        raise SignatureError(
            "IM callbacks are disabled: IM_CALLBACK_TOKEN is not set on the bridge", code="callbacks_disabled"
        )
    sign = auth.verify_im_callback(
        settings.im_callback_token.get_secret_value(), query.get("Sign"), query.get("RequestTime")
    )
    if query.get("SdkAppid") != str(settings.im_sdkappid):
        raise SignatureError("SdkAppid is missing or is not this bridge's IM_SDKAPPID", code="wrong_sdkappid")
    try:
        data = parse_json(body)
    except BadRequest:
        data = None
    if not isinstance(data, dict):
        # The contract: callbacks always get OK. An authenticated one with a body that is not a JSON object carries
        # nothing to do; say so in the log, not to IM.
        log.warning("IM callback with a body that is not a JSON object: ignored")
        return ok(IM_OK)
    command = data.get("CallbackCommand") or query.get("CallbackCommand")
    if command != AFTER_SEND_MSG:
        return ok(IM_OK)
    group_id, sender = data.get("GroupId"), data.get("From_Account")
    if not isinstance(group_id, str) or not isinstance(sender, str) or not sender:
        return ok(IM_OK)
    if not GROUP_ID.match(group_id):  # no IM group has such an ID (NUL, control characters): refused before storage
        raise BadRequest("GroupId must be 1 to 48 printable ASCII characters", code="invalid_request")
    request.app.state.console.hub.publish(group_id)  # wakes the agent consoles showing this group
    admin = settings.im_admin_userid
    platform = query.get("OptPlatform") or data.get("OptPlatform")
    # An agent's message from the console is sent through REST by the admin too, marked as the console's: it goes
    # into the ticket as the agent's (From_Account). Only the admin can send through REST, so the mark is the
    # bridge's own word.
    if sender == admin or (platform == "RESTAPI" and data.get("Operator_Account") == admin and not console_sent(data)):
        return ok(IM_OK)  # the bridge's own posts: never echoed into the ticket
    if replies.is_relayed(data.get("CloudCustomData")):
        return ok(IM_OK)  # an agent's reply the bridge brought from the ticket: it is there already
    if not isinstance(data.get("MsgBody"), list) or await bridge.db.link_by_group(group_id) is None:
        return ok(IM_OK)
    seq = data.get("MsgSeq")
    if not _is_int(seq) or not 0 <= seq <= 0xFFFFFFFF:
        # The message is confirmed with IM by its MsgSeq before it reaches a ticket; without one it cannot be.
        log.warning("IM callback for group %r without an integer MsgSeq: dropped", group_id)
        bridge.metrics.dropped_messages.labels("unconfirmable").inc()
        return ok(IM_OK)
    # Sign is sha256(token + RequestTime): every callback of the same second shares it, so the Sign alone would take
    # a second message of that second for a replay. Remembered with the body's hash, only an identical callback is
    # one; a forged body under a captured Sign passes here and is stopped by the confirmation with IM (transcript).
    replay_key = "im:" + hashlib.sha256(f"{sign}:{hashlib.sha256(body).hexdigest()}".encode()).hexdigest()
    if not await bridge.db.remember_signature(replay_key, int(query.get("RequestTime") or 0) + auth.WINDOW_SECONDS + 1):
        return ok(IM_OK)
    # Keyed by the message: a redelivered callback finds its job already stored and adds nothing. Messages have
    # their own order per group, so a message that keeps failing never holds up a membership change.
    sent_at = data.get("MsgTime")
    payload = SyncMessage(groupId=group_id, sender=sender, msgSeq=seq, msgTime=sent_at if _is_int(sent_at) else None)
    await bridge.enqueue(payload, key=f"im-msg:{group_id}:{seq}", ordering_key=transcript.ordering_key(group_id))
    return ok(IM_OK)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


routes = [Route("/callbacks/im", im_callback, methods=["POST"])]
