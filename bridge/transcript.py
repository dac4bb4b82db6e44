"""The transcript: chat messages from a ticket's group appended to the ticket (the `sync_message` job).

Only the requester's messages and those of agents the link records (current or past) are written, and only once IM
confirms the message (`group_msg_get_simple` for its MsgSeq: it exists, is not a placeholder, has that sender); the
words written are IM's, never the callback's, since the callback's Sign does not cover its body. Anything else is
dropped, logged without its text and counted (`bridge_transcript_dropped_messages`), never attributed to anyone.

Messages are written in batches, one comment (one ticket update) for the messages of a group that are waiting,
in order: each message is its own job, stored before IM's callback is answered; the first waits
BRIDGE_TRANSCRIPT_LINGER_SECONDS, then for its ticket's pace under the connector's `update_budget` (next_write_at),
while later ones queue behind it; then its runner writes them all and records every one done in the same
transaction as the ticket's update. So a quiet chat reaches the ticket within about the linger, and a lively one
stays under Zendesk's 30 updates per 10 minutes per ticket, its comments growing instead. Within a comment the
messages are in IM's order (MsgSeq), whatever order IM's concurrent callbacks queued them in.

A message's MsgBody is a list of Tencent IM elements; each renders to a line of the comment through RENDER
(shapes from Tencent's "Message Formats" page). Media the bridge cannot embed (images, files, voice, video)
become their download URL, which the agent can open from the ticket.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Executable

from bridge import replies
from bridge.auth import WINDOW_SECONDS
from bridge.config import Settings
from bridge.errors import PermanentError, RetriableError
from bridge.im import IMClient
from bridge.jobs import Deferred, JobQueue
from bridge.metrics import Metrics
from bridge.payloads import SyncMessage
from bridge.store import Database, Job, Link
from connectors.base import Author, Comment, Connector, UpdateBudget

log = logging.getLogger(__name__)

ORIGINAL_IMAGE = 1  # ImageInfoArray Type: 1 original, 2 large, 3 thumbnail
# A batch's text at most: Salesforce's CaseComment takes 4,000 characters with the senders' labels. A longer message
# is written alone, as it always was.
BATCH_CHARS = 3000


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


# Why a message is not written, by the reason counted in bridge_transcript_dropped_messages.
DROPPED = {
    "unknown_sender": "the sender is neither the requester nor an agent of the ticket",
    "unconfirmed": "IM does not confirm this message from this sender",
}


def next_write_at(writes: Sequence[float], budget: UpdateBudget | None, moment: float) -> float:
    """When a ticket may take its next update, given when it took its recent ones (oldest first) and the connector's
    budget of `updates` per `seconds`.

    Never more than the budget in any window; short of that, the gap after the last update grows with the share of
    the budget spent: (seconds / updates) * used / (updates - used). A quiet chat (few updates) is written at once; a
    lively one settles near one comment every half minute under Zendesk's 30 per 10 minutes, each holding whatever
    arrived meanwhile, instead of spending the budget in a burst and then waiting minutes."""
    if budget is None or budget.updates <= 0:
        return moment
    recent = [at for at in writes if at > moment - budget.seconds]
    used = len(recent)
    if used == 0:
        return moment
    if used >= budget.updates:
        return recent[used - budget.updates] + budget.seconds  # once enough of them have left the window
    gap = budget.seconds / budget.updates * used / (budget.updates - used)
    return max(moment, recent[-1] + gap)


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


async def _confirm(im: IMClient, link: Link, job: Job) -> tuple[Comment | None, dict[str, Any]]:
    """The comment line(s) of one queued message, or None and why it is not written."""
    payload = SyncMessage.of(job)
    sender, seq = payload.sender, payload.msgSeq
    if sender == link.requester_id:
        author = Author.CUSTOMER
    elif sender in link.agents_seen:
        author = Author.AGENT
    else:
        return None, {"dropped": "unknown_sender"}
    message = await im.group_message(link.group_id, seq)
    if message is None or message.get("IsPlaceMsg") or message.get("From_Account") != sender:
        return None, {"dropped": "unconfirmed"}
    if replies.is_relayed(message.get("CloudCustomData")):
        # IM's own copy says the bridge relayed it from the ticket (only the admin can set that mark): no echo,
        # whatever the callback claimed.
        return None, {"skipped": "an agent's reply relayed from the ticket"}
    body = render(message.get("MsgBody"))
    if not body:
        return None, {"skipped": "the message has no text to append"}
    comment = Comment(ticket_id=link.ticket_id, body=body, author=author, author_id=sender, key=job.key, public=True)
    return comment, {"provider": link.provider, "ticketId": link.ticket_id, "author": author.value}


def _log_drop(metrics: Metrics, job: Job, reason: str) -> None:
    payload = SyncMessage.of(job)
    # IDs only: the message's words are never logged.
    log.warning(
        "chat message %s of group %r from %r not written into the ticket: %s",
        payload.msgSeq,
        payload.groupId,
        payload.sender,
        DROPPED[reason],
    )
    metrics.dropped_messages.labels(reason).inc()


Taken = list[tuple["Job", Comment | None, dict[str, Any]]]


def _seq(job: Job) -> int:
    return SyncMessage.of(job).msgSeq


def next_batch(
    job: Job, queued: list[Job], found: list[Any], settled: float, one_sender: bool
) -> tuple[Taken, list[Comment]]:
    """The next comment: queued messages in IM's order (MsgSeq) from the first, up to the batch's limits.

    IM calls back concurrently, so a message may be queued after the next one: a gap in MsgSeq before a message
    queued since `settled` ends the comment there (the missing one may still be on its way); an older gap is a
    message that is not the ticket's (the bridge's own). A message whose confirmation failed is left for its own
    turn, unless it is `job`'s: then that error is the job's."""
    taken: Taken = []
    comments: list[Comment] = []
    previous: int | None = None
    for member, result in sorted(zip(queued, found, strict=True), key=lambda pair: _seq(pair[0])):
        if previous is not None and _seq(member) != previous + 1 and member.created_at > settled:
            break
        previous = _seq(member)
        if isinstance(result, BaseException):
            if member is job:
                raise result  # retried, or dead with its reason
            continue
        comment, outcome = result
        if comment is not None and comments:
            size = sum(len(c.body) for c in comments) + len(comment.body)
            other_sender = (comment.author, comment.author_id) != (comments[0].author, comments[0].author_id)
            if size > BATCH_CHARS or (one_sender and other_sender):
                break
        if comment is not None:
            comments.append(comment)
        taken.append((member, comment, outcome))
    return taken, comments


class Transcript:
    """Takes the chat messages IM reports (`take`) and writes them into their tickets (`sync`, the sync_message job),
    with the storage, IM client, queue, metrics and connectors it is given (`connector`: the enabled one of a name)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        im: IMClient,
        queue: JobQueue,
        metrics: Metrics,
        connector: Callable[[str], Connector],
    ):
        self.settings = settings
        self.db = db
        self.im = im
        self.queue = queue
        self.metrics = metrics
        self.connector = connector

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
        if not await self.db.remember_signature(replay_key, message.signed_at + WINDOW_SECONDS + 1):
            return
        # Keyed by the message: a redelivered callback finds its job already stored and adds nothing. Messages have
        # their own order per group, so a message that keeps failing never holds up a membership change. Due after
        # the linger: messages of the next moments queue behind it and share its comment.
        group_id = message.group_id
        payload = SyncMessage(
            groupId=group_id, sender=message.sender, msgSeq=seq, msgTime=message.time if _is_int(message.time) else None
        )
        await self.queue.enqueue(
            payload.kind,
            payload.stored(),
            key=f"im-msg:{group_id}:{seq}",
            ordering_key=ordering_key(group_id),
            delay=self.settings.bridge_transcript_linger_seconds,
        )

    async def sync(self, job: Job, payload: SyncMessage) -> dict[str, Any]:
        """Append the group's waiting messages to its ticket as one comment, once.

        The ticket's pace (next_write_at) decides when: until then the job is deferred and later messages gather
        behind it. Then it takes the messages queued (up to BRIDGE_TRANSCRIPT_BATCH_MESSAGES and BATCH_CHARS; one
        sender's only when the connector has no `add_comments`) in IM's order (next_batch), confirms each with IM,
        writes one comment, and records every one of them done with the ticket's update, in one transaction. When
        this job's own message was not among them, it runs again for the next comment. A 429 defers the job by its
        Retry-After."""
        if payload.outcome is not None:
            return dict(payload.outcome)  # a retry after the comment was written and recorded
        if payload.commentId is not None:
            return {"commentId": payload.commentId}  # recorded by an earlier version, one comment per message
        group_id = payload.groupId
        link = await self.db.link_by_group(group_id)
        if link is None:
            return {"skipped": "the group is not linked to a ticket"}
        connector = self.connector(link.provider)
        budget: UpdateBudget | None = getattr(connector, "update_budget", None)
        moment = self.queue.clock()
        window = budget.seconds if budget else 0.0
        writes = await self.db.ticket_writes(group_id, moment - window) if budget else []
        due = next_write_at(writes, budget, moment)
        if due > moment:
            raise Deferred(due - moment, "the ticket's update budget")
        queued = [job, *await self.queue.behind(job, self.settings.bridge_transcript_batch_messages - 1)]
        found = await asyncio.gather(*(_confirm(self.im, link, member) for member in queued), return_exceptions=True)
        settled = moment - self.settings.bridge_transcript_linger_seconds
        taken, comments = next_batch(job, queued, found, settled, getattr(connector, "add_comments", None) is None)
        statements: list[Executable] = []
        if comments:
            try:
                comment_id = await _write(connector, comments)
            except RetriableError as exc:
                if str(exc.upstream_code) == "429" and exc.retry_after:
                    self.metrics.transcript_rate_limited.inc()
                    log.warning("%s: the transcript of group %r waits %.1f s", exc, group_id, exc.retry_after)
                    raise Deferred(exc.retry_after, "rate limited") from None
                raise
            if budget:  # the pace's record, kept while the window counts it
                written = self.queue.clock()
                statements += [
                    self.db.record_ticket_write(group_id, written),
                    self.db.forget_ticket_writes(group_id, written - window),
                ]
        own: dict[str, Any] | None = None
        for member, comment, outcome in taken:
            if comment is not None:
                outcome = {"commentId": comment_id, **outcome, "messages": len(comments)}
            if member is job:
                own = outcome
            else:
                statements.append(self.queue.done_statement(member, outcome))
        if own is None:
            await self.queue.checkpoint(job, *statements)  # the others are recorded; this one goes in the next comment
        else:
            await self.queue.checkpoint(job, *statements, **payload.but(outcome=own).stored())
        if comments:
            self.metrics.transcript_comments.inc()
            self.metrics.transcript_messages.inc(len(comments))
        for member, _, outcome in taken:
            if "dropped" in outcome:
                _log_drop(self.metrics, member, outcome["dropped"])
        if own is None:
            raise Deferred(0.0, "its message goes in the next comment")
        return own


async def _write(connector: Connector, comments: list[Comment]) -> str:
    add_comments = getattr(connector, "add_comments", None)
    if add_comments is not None:
        return str(await add_comments(comments))
    first = comments[0]
    return await connector.add_comment(replace(first, body="\n".join(c.body for c in comments)))
