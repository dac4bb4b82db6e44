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

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge import replies
from bridge.errors import PermanentError
from bridge.im import IMClient
from bridge.jobs import JobQueue
from bridge.metrics import Metrics
from bridge.payloads import SyncMessage
from bridge.store import Database, Job
from connectors.base import Author, Comment, Connector

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


@dataclass(frozen=True)
class ChatMessage:
    """A group message as an authenticated IM callback reports it (only its IDs: the words are read back from IM).

    `signature` is the callback's Sign and `signed_at` its RequestTime, with `body` its raw bytes: together they tell
    a replayed callback from a new one."""

    group_id: str
    sender: str
    seq: Any  # MsgSeq as the callback has it: confirmed to be an integer before anything is stored
    time: Any
    has_body: bool
    signature: str
    signed_at: int
    body: bytes


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Transcript:
    """Takes the chat messages IM reports (`take`) and appends each to its ticket (`sync`, the sync_message job)."""

    def __init__(
        self,
        db: Database,
        im: IMClient,
        queue: JobQueue,
        metrics: Metrics,
        connector: Callable[[str], Connector],
        window_seconds: int,
    ):
        self.db = db
        self.im = im
        self.queue = queue
        self.metrics = metrics
        self.connector = connector  # the enabled connector of a name (404 unknown_connector otherwise)
        self.window_seconds = window_seconds

    async def take(self, message: ChatMessage) -> None:
        """Store a linked group's message as a job, once; anything else is answered and dropped."""
        if not message.has_body or await self.db.link_by_group(message.group_id) is None:
            return
        seq = message.seq
        if not _is_int(seq) or not 0 <= seq <= 0xFFFFFFFF:
            # The message is confirmed with IM by its MsgSeq before it reaches a ticket; without one it cannot be.
            log.warning("IM callback for group %r without an integer MsgSeq: dropped", message.group_id)
            self.metrics.dropped_messages.labels("unconfirmable").inc()
            return
        # Sign is sha256(token + RequestTime): every callback of the same second shares it, so the Sign alone would
        # take a second message of that second for a replay. Remembered with the body's hash, only an identical
        # callback is one; a forged body under a captured Sign passes here and is stopped by the confirmation with IM.
        digest = hashlib.sha256(message.body).hexdigest()
        replay_key = "im:" + hashlib.sha256(f"{message.signature}:{digest}".encode()).hexdigest()
        if not await self.db.remember_signature(replay_key, message.signed_at + self.window_seconds + 1):
            return
        # Keyed by the message: a redelivered callback finds its job already stored and adds nothing. Messages have
        # their own order per group, so a message that keeps failing never holds up a membership change.
        group_id = message.group_id
        payload = SyncMessage(
            groupId=group_id, sender=message.sender, msgSeq=seq, msgTime=message.time if _is_int(message.time) else None
        )
        await self.queue.enqueue(
            payload.kind, payload.stored(), key=f"im-msg:{group_id}:{seq}", ordering_key=ordering_key(group_id)
        )

    def _drop(self, payload: SyncMessage, reason: str, why: str) -> dict[str, Any]:
        # IDs only: the message's words are never logged.
        log.warning(
            "chat message %s of group %r from %r not written into the ticket: %s",
            payload.msgSeq,
            payload.groupId,
            payload.sender,
            why,
        )
        self.metrics.dropped_messages.labels(reason).inc()
        return {"dropped": reason}

    async def sync(self, job: Job, payload: SyncMessage) -> dict[str, Any]:
        """Append one group message to its ticket, once: the comment id is checkpointed before the job is done."""
        if payload.commentId is not None:
            return {"commentId": payload.commentId}  # a retry after the comment was made
        group_id, sender, seq = payload.groupId, payload.sender, payload.msgSeq
        link = await self.db.link_by_group(group_id)
        if link is None:
            return {"skipped": "the group is not linked to a ticket"}
        if sender == link.requester_id:
            author = Author.CUSTOMER
        elif sender in link.agents_seen:
            author = Author.AGENT
        else:
            why = "the sender is neither the requester nor an agent of the ticket"
            return self._drop(payload, "unknown_sender", why)
        message = await self.im.group_message(group_id, seq)
        if message is None or message.get("IsPlaceMsg") or message.get("From_Account") != sender:
            return self._drop(payload, "unconfirmed", "IM does not confirm this message from this sender")
        if replies.is_relayed(message.get("CloudCustomData")):
            # IM's own copy says the bridge relayed it from the ticket (only the admin can set that mark): no echo,
            # whatever the callback claimed.
            return {"skipped": "an agent's reply relayed from the ticket"}
        body = render(message.get("MsgBody"))
        if not body:
            return {"skipped": "the message has no text to append"}
        comment = Comment(
            ticket_id=link.ticket_id, body=body, author=author, author_id=sender, key=job.key, public=True
        )
        comment_id = await self.connector(link.provider).add_comment(comment)
        await self.queue.checkpoint(job, **payload.but(commentId=comment_id).stored())
        return {"commentId": comment_id, "provider": link.provider, "ticketId": link.ticket_id, "author": author.value}
