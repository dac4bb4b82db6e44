"""The transcript: chat messages from a ticket's group appended to the ticket (the `sync_message` job).

Only the requester's messages and those of agents the link records (current or past) are written, and only once IM
confirms the message (`group_msg_get_simple` for its MsgSeq: it exists, is not a placeholder, has that sender); the
words written are IM's, never the callback's, since the callback's Sign does not cover its body. Anything else is
dropped, logged without its text and counted (`bridge_transcript_dropped_messages`), never attributed to anyone.

A message's MsgBody is a list of Tencent IM elements; each renders to a line of the comment through RENDER
(shapes from Tencent's "Message Formats" page). Media the bridge cannot embed (images, files, voice, video)
become their download URL, which the agent can open from the ticket.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge import replies
from bridge.errors import PermanentError
from connectors.base import Author, Comment

if TYPE_CHECKING:
    from bridge.payloads import SyncMessage
    from bridge.service import Bridge
    from bridge.store import Job

log = logging.getLogger(__name__)

ORIGINAL_IMAGE = 1  # ImageInfoArray Type: 1 original, 2 large, 3 thumbnail


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _image(content: dict[str, Any]) -> str:
    listed = content.get("ImageInfoArray")
    infos = [i for i in listed if isinstance(i, dict) and _text(i.get("URL"))] if isinstance(listed, list) else []
    best = sorted(infos, key=lambda i: i.get("Type") != ORIGINAL_IMAGE)  # stable: else as listed
    return _text(best[0]["URL"]) if best else "[image]"


def _custom(content: dict[str, Any]) -> str:
    data = _text(content.get("Data"))
    try:
        decoded = json.loads(data) if data.startswith("{") else None
    except (ValueError, RecursionError):
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("text"), str):
        return str(decoded["text"])  # TUIKit-style custom messages carry their words in "text"
    return data or _text(content.get("Desc"))


def _location(content: dict[str, Any]) -> str:
    where = f"{content.get('Latitude')}, {content.get('Longitude')}"
    desc = _text(content.get("Desc"))
    return f"{desc} ({where})" if desc else f"[location] {where}"


# MsgType -> how its MsgContent reads in the ticket.
RENDER: dict[str, Callable[[dict[str, Any]], str]] = {
    "TIMTextElem": lambda c: _text(c.get("Text")),
    "TIMImageElem": _image,
    "TIMFileElem": lambda c: _text(c.get("Url")) or f"[file] {_text(c.get('FileName'))}".strip(),
    "TIMSoundElem": lambda c: _text(c.get("Url")) or "[voice message]",
    "TIMVideoFileElem": lambda c: _text(c.get("VideoUrl")) or "[video]",
    "TIMCustomElem": _custom,
    "TIMFaceElem": lambda c: _text(c.get("Data")) or f"[emoji {c.get('Index')}]",
    "TIMLocationElem": _location,
}


def render(msg_body: Any) -> str:
    """The comment text of a MsgBody: one line per element, unknown element types named.

    Content of a shape no renderer expects is a PermanentError at once: retrying cannot change a stored message."""
    lines = []
    for element in msg_body if isinstance(msg_body, list) else []:
        if not isinstance(element, dict):
            continue
        kind, content = _text(element.get("MsgType")), element.get("MsgContent")
        renderer = RENDER.get(kind)
        if renderer is None:
            lines.append(f"[{kind or 'message'}]")
        elif isinstance(content, dict):
            try:
                lines.append(renderer(content))
            except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
                raise PermanentError(
                    f"the message's {kind} content is malformed ({type(exc).__name__}); it cannot be written",
                    upstream="im",
                ) from None
    return "\n".join(line for line in lines if line.strip())


def ordering_key(group_id: str) -> str:
    """Chat messages are ordered per group on a key of their own: a message that keeps failing holds up the later
    messages of its group (the transcript stays in order), never the group's membership changes."""
    return f"msg:{group_id}"


def _drop(bridge: Bridge, payload: SyncMessage, reason: str, why: str) -> dict[str, Any]:
    # IDs only: the message's words are never logged.
    log.warning(
        "chat message %s of group %r from %r not written into the ticket: %s",
        payload.msgSeq,
        payload.groupId,
        payload.sender,
        why,
    )
    bridge.metrics.dropped_messages.labels(reason).inc()
    return {"dropped": reason}


async def sync_message(bridge: Bridge, job: Job, payload: SyncMessage) -> dict[str, Any]:
    """Append one group message to its ticket, once: the comment id is checkpointed before the job is done."""
    if payload.commentId is not None:
        return {"commentId": payload.commentId}  # a retry after the comment was made
    group_id, sender, seq = payload.groupId, payload.sender, payload.msgSeq
    link = await bridge.db.link_by_group(group_id)
    if link is None:
        return {"skipped": "the group is not linked to a ticket"}
    if sender == link.requester_id:
        author = Author.CUSTOMER
    elif sender in link.agents_seen:
        author = Author.AGENT
    else:
        return _drop(
            bridge, payload, "unknown_sender", "the sender is neither the requester nor an agent of the ticket"
        )
    message = await bridge.im.group_message(group_id, seq)
    if message is None or message.get("IsPlaceMsg") or message.get("From_Account") != sender:
        return _drop(bridge, payload, "unconfirmed", "IM does not confirm this message from this sender")
    if replies.is_relayed(message.get("CloudCustomData")):
        # IM's own copy says the bridge relayed it from the ticket (only the admin can set that mark): no echo,
        # whatever the callback claimed.
        return {"skipped": "an agent's reply relayed from the ticket"}
    body = render(message.get("MsgBody"))
    if not body:
        return {"skipped": "the message has no text to append"}
    comment = Comment(ticket_id=link.ticket_id, body=body, author=author, author_id=sender, key=job.key, public=True)
    comment_id = await bridge.connector(link.provider).add_comment(comment)
    await bridge.checkpoint(job, payload.but(commentId=comment_id))
    return {"commentId": comment_id, "provider": link.provider, "ticketId": link.ticket_id, "author": author.value}
