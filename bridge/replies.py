"""Agents' replies: a public comment an agent wrote in the helpdesk, sent into the ticket's group as that agent (the
`relay_reply` job).

A helpdesk event only says that a comment was added; the words, the author and whether the customer may see them
are read back from the helpdesk (`Connector.get_reply`), never taken from the event. A comment goes into the chat
when it is public, written by an agent (`author_account`) and not by the bridge itself (a customer's chat message or
a console message coming back). It is sent with `send_group_msg`, `From_Account` = the agent's IM account, its text
and then each attachment as a link, marked in `CloudCustomData` so that IM's after-send callback for it is never
written back into the ticket. The job's key is the comment's, so a redelivered event stores nothing new, and IM's
`Random`, derived from the comment id, makes a retried send one message (IM drops the same content and Random
within 5 minutes); a retry first looks for its message in the group's recent history, for retries after that.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.errors import RetriableError
from bridge.im import GroupNotFound, IMClient, truncate_utf8
from bridge.states import LinkState
from connectors.base import Connector, Reply

if TYPE_CHECKING:
    from bridge.payloads import RelayReply
    from bridge.store import Database, Job

log = logging.getLogger(__name__)

MARK = "reply"  # CloudCustomData's `helpdeskBridge` of a relayed reply
ENDED = (LinkState.CLOSED, LinkState.DISMISSED)  # muted or gone: nothing is sent
# IM refuses a message body over about 8 KB (80002) every time: long replies are cut, the ticket keeps them whole.
MAX_TEXT_BYTES = 6000
CUT_NOTE = "\n[...] (the full reply is in the ticket)"
HISTORY_PAGES = 5  # of 20 messages: how far back a retry looks for its own message
LOOKS_FOR_MISSING = 3  # attempts to read a comment the helpdesk reported but does not show (seconds apart)


def job_key(provider: str, comment_id: str) -> str:
    """One job per comment, whatever delivered it and however often."""
    return f"reply:{provider}:{comment_id}"


def message_random(provider: str, comment_id: str) -> int:
    """IM's `Random` of a comment's message: the same on every attempt, so IM takes a retried send as one."""
    return int.from_bytes(hashlib.sha256(f"{provider}:{comment_id}".encode()).digest()[:4], "big")


def mark(comment_id: str) -> str:
    return json.dumps({"helpdeskBridge": MARK, "commentId": comment_id}, separators=(",", ":"))


def is_relayed(cloud_custom_data: Any) -> bool:
    """True for a message the bridge relayed from a ticket (its CloudCustomData): never written back into it."""
    if not isinstance(cloud_custom_data, str) or MARK not in cloud_custom_data:
        return False
    try:
        data = json.loads(cloud_custom_data)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("helpdeskBridge") == MARK


def elements(reply: Reply) -> list[dict[str, Any]]:
    """The MsgBody of a reply: its plain text, then one text element per attachment (name and URL), in the order
    the helpdesk recorded them."""
    text = reply.text.strip()
    if len(text.encode()) > MAX_TEXT_BYTES:
        text = truncate_utf8(text, MAX_TEXT_BYTES - len(CUT_NOTE.encode())) + CUT_NOTE
    lines = [text] if text else []
    lines += [f"{a.file_name}: {a.url}" if a.file_name else a.url for a in reply.attachments if a.url]
    return [{"MsgType": "TIMTextElem", "MsgContent": {"Text": line}} for line in lines]


def _skip(payload: RelayReply, why: str) -> dict[str, Any]:
    # Ids only: a reply's words are never logged.
    log.info("comment %s of ticket group %r not sent into the chat: %s", payload.commentId, payload.groupId, why)
    return {"skipped": why}


async def _already_sent(im: IMClient, group_id: str, custom: str) -> int | None:
    """The MsgSeq of the message marked `custom` among the group's latest HISTORY_PAGES pages, if it is there."""
    before = None
    for _ in range(HISTORY_PAGES):
        page = await im.group_messages(group_id, before)
        listed = [m for m in page.get("RspMsgList") or [] if isinstance(m, dict)]
        for message in listed:
            if message.get("CloudCustomData") == custom and isinstance(message.get("MsgSeq"), int):
                return int(message["MsgSeq"])
        seqs = [m["MsgSeq"] for m in listed if isinstance(m.get("MsgSeq"), int)]
        if page.get("IsFinished") or not seqs or min(seqs) <= 1:
            return None
        before = min(seqs) - 1
    return None


async def relay_reply(
    job: Job, payload: RelayReply, db: Database, im: IMClient, connector_of: Callable[[str], Connector]
) -> dict[str, Any]:
    """Send one helpdesk comment into its group as its agent, once (see the module docstring). `connector_of` gives
    the enabled connector of a name."""
    group_id, comment_id = payload.groupId, payload.commentId
    link = await db.link_by_group(group_id)
    if link is None:
        return _skip(payload, "the ticket has no group")
    if link.state in ENDED:
        return _skip(payload, f"the group is {link.state}")
    if link.state == LinkState.PENDING:
        # A reply written while the ticket's group is still being opened: it goes in once the group is there.
        raise RetriableError(f"the group {group_id} is still being opened", upstream="bridge", retry_after=1.0)
    connector = connector_of(link.provider)
    get_reply = getattr(connector, "get_reply", None)
    if get_reply is None:
        return _skip(payload, f"the {link.provider} connector cannot read comments back")
    reply: Reply | None = await get_reply(link.ticket_id, comment_id)
    if reply is None:
        if job.attempts < LOOKS_FOR_MISSING:
            # Reported by the helpdesk, yet not readable: a replica that is a moment behind. Look again shortly.
            raise RetriableError(f"comment {comment_id} is not readable yet", upstream=link.provider, retry_after=2.0)
        return _skip(payload, "the helpdesk has no such comment on this ticket")
    if not reply.public:
        return _skip(payload, "a private comment")
    if reply.by_bridge:
        return _skip(payload, "written by the bridge itself")
    if reply.author_account is None:
        return _skip(payload, "not written by an agent")
    body = elements(reply)
    if not body:
        return _skip(payload, "nothing to send")
    agent: str = reply.author_account
    custom = mark(comment_id)
    random_ = message_random(link.provider, comment_id)
    try:
        if job.attempts > 1:
            # A retry: the last attempt may have been sent before it failed or its runner died. IM drops a repeat
            # within 5 minutes by itself; a retry after that finds the message in the group's history instead.
            seq = await _already_sent(im, group_id, custom)
            if seq is not None:
                return {"sent": True, "msgSeq": seq, "commentId": comment_id, "found": "in the group's history"}
        if agent in await im.member_ids(group_id):
            answer = await im.send_message(group_id, body, random_, from_account=agent, cloud_custom_data=custom)
        else:
            # An agent who is not (or no longer) in the group, not the ticket's owner: the customer still gets the
            # answer, from the bridge under the agent's name, and membership stays what the ticket's owner decides.
            name = reply.author_name or "Support"
            body = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": f"{name}:"}}, *body]
            answer = await im.send_message(group_id, body, random_, cloud_custom_data=custom)
            agent = im.admin
    except GroupNotFound:
        return _skip(payload, "IM has no such group (dismissed)")
    return {"sent": True, "msgSeq": answer.get("MsgSeq"), "from": agent, "commentId": comment_id}
