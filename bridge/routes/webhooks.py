"""Tencent IM callbacks (IM-signed): verify, store and answer; the work (appending a message to its ticket) is a job
run by the worker. A duplicate delivery is answered 2xx and queues nothing.

(A helpdesk's own webhooks are its connector's routes: connectors/*/.)
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge import auth, replies
from bridge.console.service import console_sent
from bridge.errors import BadRequest, SignatureError
from bridge.models import GROUP_ID
from bridge.parsing import parse_json, raw_body
from bridge.routes import IM_OK, bridge_of, ok
from bridge.transcript import ChatMessage
from connectors.base import Endpoint

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
    message = ChatMessage(
        group_id=group_id,
        sender=sender,
        seq=data.get("MsgSeq"),
        time=data.get("MsgTime"),
        has_body=isinstance(data.get("MsgBody"), list),
        signature=sign,
        signed_at=int(query.get("RequestTime") or 0),
        body=body,
    )
    await bridge.transcript.take(message)
    return ok(IM_OK)


endpoints = [
    Endpoint("POST", "/callbacks/im", im_callback, "Tencent IM third-party callbacks", security=("imCallback",))
]
