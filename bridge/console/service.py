"""The agent console's use cases: open a session for an agent on a ticket, authorise each call, read the group's
history and members, send as the agent, and stream new messages.

IM is the source of truth for messages: the live stream is woken by IM's after-send callbacks (through `Hub`, an
in-process publisher that `/callbacks/im` pokes once it has authenticated a callback) and by a periodic pull, and
in both cases reads what is new from IM's history. Several bridge instances work too: a callback lands on one of
them, and the others' streams find the message at their next pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from bridge import ids, transcript
from bridge.console.auth import Session, issue, session_key
from bridge.errors import BadRequest, BridgeError, Conflict, Forbidden, NotFound, UpstreamError
from bridge.states import LinkState

if TYPE_CHECKING:
    from bridge.service import Bridge
    from bridge.store import Link

# CloudCustomData of the messages an agent sends from the console: the IM callback for such a message (sent through
# REST by the admin, like the bridge's own notices) is recorded in the ticket as the agent's, not dropped as an echo.
CONSOLE_MARK = json.dumps({"helpdeskBridge": "console"}, separators=(",", ":"))
ENDED = (LinkState.CLOSED, LinkState.DISMISSED)  # no more sending; the agent who had the ticket may still read it
MAX_PAGES = 5  # history pages a stream reads to catch up (100 messages)
STREAM_SECONDS = 25.0  # a stream ends after this and the page reconnects: a server can stop without waiting
KEEPALIVE_SECONDS = 15.0
NAME_TTL = 300.0


def console_sent(callback: dict[str, Any]) -> bool:
    """True for the IM callback of a message the console sent (only the bridge's admin can send with the mark)."""
    return callback.get("CloudCustomData") == CONSOLE_MARK


class Hub:
    """In-process publisher: `publish(group_id)` wakes the live streams of that group."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    def publish(self, group_id: str) -> None:
        for event in self._waiters.get(group_id, ()):
            event.set()

    @contextlib.contextmanager
    def subscribe(self, group_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters[group_id].add(event)
        try:
            yield event
        finally:
            self._waiters[group_id].discard(event)
            if not self._waiters[group_id]:
                del self._waiters[group_id]


class Console:
    def __init__(self, bridge: Bridge):
        self.bridge = bridge
        self.hub = Hub()
        self.key = session_key(bridge.settings.im_secret_key.get_secret_value())
        self._names: dict[str, tuple[float, str]] = {}

    # --- sessions -----------------------------------------------------------------------------------------------

    async def open_session(self, provider: str, user_id: str, ticket_id: str) -> dict[str, Any]:
        """A session for a helpdesk user on a ticket: the ticket's group must record the user's agent account, or
        the helpdesk, read now, must name the user as the ticket's owner."""
        connector = self.bridge.connector(provider)
        user_id = ids.normalize(user_id.strip())
        agent = connector.agent_id(user_id)
        if agent is None:
            raise BadRequest(f"{user_id!r} is not a {provider} user id", code="invalid_request")
        link = await self.bridge.db.link_by_ticket(provider, ids.normalize(ticket_id.strip()))
        if link is None or link.state == LinkState.PENDING:
            raise NotFound(f"{provider} ticket {ticket_id!r} has no chat group", code="link_not_found")
        if agent not in link.agents:
            ticket = await connector.get_ticket(link.ticket_id)
            if ticket.agent_id != agent:
                raise Forbidden("this ticket is not assigned to you", code="not_your_ticket")
        # The agent's IM account carries their name (Nick), which the customer's app shows beside their words.
        nick = await self.bridge.agents.import_agent(provider, agent) or ""
        if nick:
            self._names[agent] = (time.monotonic() + NAME_TTL, nick)
        return self.token(Session(provider, user_id, agent, link.group_id, nick, 0))

    def token(self, session: Session) -> dict[str, Any]:
        token, expires_at = issue(self.key, session, self.bridge.settings.bridge_console_session_seconds)
        return {"token": token, "expiresAt": expires_at, "groupId": session.group_id, "agent": session.agent}

    async def authorize(self, session: Session, group_id: str, *, send: bool = False) -> Link:
        """The link of `group_id` when the session may use it: 403 for another group, or one no longer the agent's."""
        if group_id != session.group_id:
            raise Forbidden("this console session is for another ticket's group", code="other_group")
        link = await self.bridge.db.link_by_group(group_id)
        if link is None:
            raise Forbidden("this group is not linked to a ticket", code="other_group")
        if session.agent in link.agents:
            return link
        if link.state in ENDED and not send:
            return link  # the ticket ended (its agents left the group): its agent keeps reading it
        raise Forbidden("this ticket is no longer assigned to you", code="not_your_ticket")

    # --- reading ------------------------------------------------------------------------------------------------

    async def state(self, session: Session, link: Link) -> dict[str, Any]:
        members = []
        if link.state != LinkState.DISMISSED:
            accounts = await self.bridge.im.member_ids(link.group_id)
            names = await self.names(link, accounts)
            members = [{"account": a, "name": names[a], "role": self.role(link, a)} for a in accounts]
        return {
            "groupId": link.group_id,
            "provider": link.provider,
            "ticketId": link.ticket_id,
            "subject": link.subject,
            "state": link.state,
            "canSend": link.state not in ENDED and session.agent in link.agents,
            "you": {"account": session.agent, "name": session.nick or session.agent},
            "members": members,
        }

    async def history(self, link: Link, before: int | None = None) -> dict[str, Any]:
        """Up to 20 messages, newest last, ending at `before` when given."""
        page = await self.bridge.im.group_messages(link.group_id, before)
        items = sorted(page.get("RspMsgList") or [], key=lambda m: int(m.get("MsgSeq") or 0))
        return {"messages": await self.views(link, items), "complete": bool(page.get("IsFinished", 1))}

    async def messages_after(self, link: Link, after: int) -> list[dict[str, Any]]:
        """Messages with MsgSeq above `after`, newest last, reading back page by page (at most MAX_PAGES)."""
        found: dict[int, dict[str, Any]] = {}
        before: int | None = None
        for _ in range(MAX_PAGES):
            page = await self.bridge.im.group_messages(link.group_id, before)
            items = page.get("RspMsgList") or []
            seqs = [int(m.get("MsgSeq") or 0) for m in items]
            found.update({s: m for s, m in zip(seqs, items, strict=True) if s > after})
            if not items or page.get("IsFinished", 1) or min(seqs) <= after + 1:
                break
            before = min(seqs) - 1
        return await self.views(link, [found[s] for s in sorted(found)])

    async def views(self, link: Link, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items = [m for m in items if not m.get("IsPlaceMsg")]  # placeholders of deleted or expired messages
        names = await self.names(link, sorted({str(m.get("From_Account")) for m in items}))
        return [
            {
                "seq": int(m.get("MsgSeq") or 0),
                "time": int(m.get("MsgTimeStamp") or m.get("MsgTime") or 0),
                "from": str(m.get("From_Account")),
                "name": names[str(m.get("From_Account"))],
                "role": self.role(link, str(m.get("From_Account"))),
                "text": transcript.render(m.get("MsgBody") or []),
            }
            for m in items
        ]

    def role(self, link: Link, account: str) -> str:
        if account == link.requester_id:
            return "customer"
        return "system" if account == self.bridge.im.admin else "agent"

    async def names(self, link: Link, accounts: list[str]) -> dict[str, str]:
        """Display names: IM Nicks (cached a few minutes), else a word for the customer and the bridge."""
        now = time.monotonic()
        missing = [a for a in accounts if a not in self._names or self._names[a][0] < now]
        if missing:
            try:
                nicks = await self.bridge.im.nicks(missing)
            except UpstreamError:
                nicks = {}  # names are a nicety: show accounts rather than fail the console
            for account in missing:
                self._names[account] = (now + NAME_TTL, nicks.get(account, ""))
        fallback = {link.requester_id: "Customer", self.bridge.im.admin: "Support"}
        return {a: self._names[a][1] or fallback.get(a, a) for a in accounts}

    # --- sending ------------------------------------------------------------------------------------------------

    async def send(self, session: Session, link: Link, text: str, random_: int) -> dict[str, Any]:
        """Send as the agent; the same `random_` and text within 5 minutes is one message (IM drops the repeat)."""
        if link.state in ENDED:
            raise Conflict("this ticket is closed: the chat is read-only", code="ticket_closed")
        im = self.bridge.im
        await im.import_account(session.agent, nick=session.nick or None)  # exists, with its Nick, before sending
        answer = await im.send_text(
            link.group_id, text, random_, from_account=session.agent, cloud_custom_data=CONSOLE_MARK
        )
        sent = {
            "MsgSeq": answer.get("MsgSeq"),
            "MsgTimeStamp": answer.get("MsgTime") or int(time.time()),
            "From_Account": session.agent,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}],
        }
        return (await self.views(link, [sent]))[0]

    # --- the live stream ----------------------------------------------------------------------------------------

    async def stream(self, session: Session, link: Link, after: int) -> AsyncIterator[str]:
        """Server-sent events: `message` for each new message, `state` when the ticket changes, `end` (with a
        reason) when the page must stop or reconnect."""
        poll = self.bridge.settings.bridge_console_poll_seconds
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + STREAM_SECONDS
        seen = (link.state, link.agents_json)
        with self.hub.subscribe(link.group_id) as poke:
            pull_at = 0.0  # pull at once: what arrived between the page's history and this stream
            while True:
                if time.time() >= session.expires_at:
                    yield _event("end", {"reason": "expired"})
                    return
                try:
                    link = await self.authorize(session, link.group_id)
                except BridgeError as exc:
                    yield _event("end", {"reason": "revoked", "message": exc.message})
                    return
                if (link.state, link.agents_json) != seen:
                    seen = (link.state, link.agents_json)
                    with contextlib.suppress(UpstreamError):
                        yield _event("state", await self.state(session, link))
                if poke.is_set() or loop.time() >= pull_at:
                    poke.clear()
                    pull_at = loop.time() + poll
                    try:
                        for message in await self.messages_after(link, after):
                            after = max(after, message["seq"])
                            yield _event("message", message)
                    except UpstreamError:
                        pass  # IM is unavailable for a moment: the next pull catches up
                if loop.time() >= ends_at:
                    yield _event("end", {"reason": "reconnect", "after": after})
                    return
                wait = min(pull_at, ends_at) - loop.time()
                if not await _woken(poke, min(max(wait, 0.0), KEEPALIVE_SECONDS)):
                    yield ": keepalive\n\n"


async def _woken(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
        return True
    except TimeoutError:
        return False


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
