"""The transcript: chat messages from a ticket's group appended to the ticket (the `sync_message` job).

A message's MsgBody is a list of Tencent IM elements; each renders to a line of the comment through RENDER
(shapes from Tencent's "Message Formats" page). Media the bridge cannot embed (images, files, voice, video)
become their download URL, which the agent can open from the ticket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from connectors.base import Author, Comment

if TYPE_CHECKING:
    from bridge.service import Bridge
    from bridge.store import Job

ORIGINAL_IMAGE = 1  # ImageInfoArray Type: 1 original, 2 large, 3 thumbnail


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _image(content: dict[str, Any]) -> str:
    infos = [i for i in content.get("ImageInfoArray") or [] if isinstance(i, dict) and _text(i.get("URL"))]
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


def render(msg_body: list[Any]) -> str:
    """The comment text of a MsgBody: one line per element, unknown element types named."""
    lines = []
    for element in msg_body:
        if not isinstance(element, dict):
            continue
        kind, content = _text(element.get("MsgType")), element.get("MsgContent")
        renderer = RENDER.get(kind)
        if renderer is None:
            lines.append(f"[{kind or 'message'}]")
        elif isinstance(content, dict):
            lines.append(renderer(content))
    return "\n".join(line for line in lines if line.strip())


async def sync_message(bridge: Bridge, job: Job) -> dict[str, Any]:
    """Append one group message to its ticket, once: the comment id is checkpointed before the job is done."""
    payload = job.payload
    if payload.get("commentId") is not None:
        return {"commentId": payload["commentId"]}  # a retry after the comment was made
    link = await bridge.db.link_by_group(payload["groupId"])
    if link is None:
        return {"skipped": "the group is not linked to a ticket"}
    body = render(payload.get("msgBody") or [])
    if not body:
        return {"skipped": "the message has no text to append"}
    sender = payload["from"]
    author = Author.CUSTOMER if sender == link.requester_id else Author.AGENT
    comment = Comment(ticket_id=link.ticket_id, body=body, author=author, author_id=sender, key=job.key, public=True)
    comment_id = await bridge.connector(link.provider).add_comment(comment)
    await bridge.queue.checkpoint(job, commentId=comment_id)
    return {"commentId": comment_id, "provider": link.provider, "ticketId": link.ticket_id, "author": author.value}
