"""The use cases, as the README tells them: open a ticket with its group, converge a group on the ticket's owner,
close it, and the seed's membership primitives. Each is a job (bridge/jobs.py): stored first, then run inline
when it can be, else later by the worker, in order per group.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge import replies, transcript
from bridge.agents import AgentNames
from bridge.config import Settings
from bridge.errors import BadRequest, BridgeError, Conflict, NotFound, PermanentError, RetriableError, TooManyRequests
from bridge.im import AccountNotFound, GroupExists, GroupIdTaken, GroupNotFound, IMClient, IMError
from bridge.jobs import JobQueue, crash_point
from bridge.metrics import Metrics
from bridge.states import JobKind, JobStatus, LinkState
from bridge.store import Database, Job, Link, Statement
from connectors.base import Connector, EventKind, EventOutcome, EventReceipt, NewTicket, TicketEvent, TicketStatus

log = logging.getLogger(__name__)

WAITING_NOTICE = "Your ticket is waiting for the next available agent."
SOLVED_NOTICE = "This ticket has been marked as solved. Reply here if you still need help."
CLOSED_NOTICE = "This ticket is closed. Thank you for contacting us."
REOPENED_NOTICE = "This ticket has been reopened."
INLINE_WAIT_SECONDS = 3.0  # how long a request waits for earlier work of its group before answering 202
CREATE_BUSY_RETRY_AFTER = 5  # seconds: about how long opening a ticket takes


@dataclass
class Outcome:
    """What a submitted job came to: done (with its result) or queued for later."""

    job: Job
    queued: bool
    result: dict[str, Any] = field(default_factory=dict)


def request_hash(body: Any) -> str:
    return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":")))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Bridge:
    """The service: settings, storage, the IM client, the connectors and the job queue, wired together."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        im: IMClient,
        connectors: dict[str, Connector],
        metrics: Metrics | None = None,
    ):
        self.settings = settings
        self.db = db
        self.im = im
        self.connectors = connectors
        self.metrics = metrics or Metrics()
        self.queue = JobQueue(
            db, retry_scale=settings.bridge_job_retry_scale, lease_seconds=settings.bridge_job_lease_seconds
        )
        # Requests opening tickets at once; more wait their turn here. Without it a burst advances every request a
        # step at a time (the database and the CPU serve them all in turn) and all of them answer late, together.
        self.create_slots = asyncio.Semaphore(settings.bridge_helpdesk_threads)
        # Requests each end user has open, so one customer cannot take every slot. Counted per process: with several
        # instances behind a load balancer a user may have this many open on each.
        self.open_creates: Counter[str] = Counter()
        self.agents = AgentNames(settings, db, im, connectors, self.queue.enqueue)
        for kind, handler in {
            JobKind.JOIN: self._join,
            JobKind.LEAVE: self._leave,
            JobKind.DELETE_GROUP: self._delete_group,
            JobKind.CONVERGE: self._converge,
            JobKind.CREATE_TICKET: self._open_ticket,
            JobKind.ASSIGNMENT: self._assignment,
            JobKind.SYNC_MESSAGE: lambda job: transcript.sync_message(self, job),
            JobKind.RELAY_REPLY: lambda job: replies.relay_reply(self, job),
            JobKind.AGENT_NAME: self.agents.refresh,
        }.items():
            self.queue.handler(kind)(handler)

    # --- running jobs inline ------------------------------------------------------------------------------------

    async def submit(
        self,
        kind: str,
        payload: dict[str, Any],
        key: str | None = None,
        ordering_key: str | None = None,
        also: Sequence[Statement] = (),
    ) -> Outcome:
        """Store a job, leased to this request when nothing earlier in its group is open, and run it now.

        Raises the job's error when it failed permanently; returns queued=True when it will finish later. `also`:
        statements stored with the job (see JobQueue.enqueue)."""
        if kind == JobKind.JOIN:  # see _join
            also = [*also, self.db.add_agent(payload["groupId"], payload["userId"], seen_only=True)]
        job, created = await self.queue.enqueue(
            kind, payload, key or f"{kind}:{uuid.uuid4().hex}", ordering_key, claim=True, also=also
        )
        return await self.finish_inline(job, leased=created and job.status == JobStatus.RUNNING)

    async def finish_inline(self, job: Job, leased: bool) -> Outcome:
        """Run `job` when this request holds its lease (`leased`); otherwise wait (at most INLINE_WAIT_SECONDS) for
        whoever runs it: the worker of this process sets the job's event, another process's outcome is read from
        the database at growing intervals. Answers queued (202) when it is not over by then."""
        if leased:
            job = await self.queue.run(job, permanent_status=JobStatus.FAILED)
        elif job.status in (JobStatus.PENDING, JobStatus.RUNNING):
            if job.status == JobStatus.PENDING and (job.attempts > 0 or await self.queue.behind_a_retry(job)):
                return Outcome(job, queued=True)  # the group waits for IM to come back: answer now
            job = await self._wait_for(job)
        if job.status == JobStatus.DONE:
            return Outcome(job, queued=False, result=json.loads(job.result_json or "{}"))
        if job.status in (JobStatus.FAILED, JobStatus.DEAD):
            raise _stored_error(job)
        return Outcome(job, queued=True)  # retrying later, or still running: the worker takes it from here

    async def _wait_for(self, job: Job) -> Job:
        """Wait for a job stored behind another of its group (or run by someone else): woken when a job of the group
        records its outcome in this process, it takes its own job as soon as the group lets it, and runs it here.
        Another process's progress is read at short, growing intervals."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + INLINE_WAIT_SECONDS
        event = self.queue.waiter(job)
        pause = 0.02
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(pause, left))
                event.clear()
                if job.status == JobStatus.PENDING and job.attempts == 0:
                    claimed = await self.queue.claim(1, job_id=job.id)
                    if claimed:
                        return await self.queue.run(claimed[0], permanent_status=JobStatus.FAILED)
                job = await self.queue.get(job.id or 0) or job
                if job.status not in (JobStatus.PENDING, JobStatus.RUNNING) or (
                    job.status == JobStatus.PENDING and job.attempts > 0
                ):
                    return job  # over, or failed once and waiting for its retry
                pause = min(pause * 1.5, 0.25)
        finally:
            self.queue.forget_waiter(job)

    # --- connectors ---------------------------------------------------------------------------------------------

    def connector(self, name: str) -> Connector:
        try:
            return self.connectors[name]
        except KeyError:
            enabled = ", ".join(sorted(self.connectors)) or "none"
            raise NotFound(
                f"connector {name!r} is not enabled (enabled: {enabled})", code="unknown_connector"
            ) from None

    def owner_of(self, group_id: str) -> Connector | None:
        """The connector whose ticket group IDs include `group_id`, if any."""
        return next((c for c in self.connectors.values() if c.ticket_id(group_id) is not None), None)

    # --- accounts -----------------------------------------------------------------------------------------------

    def is_reserved(self, user_id: str) -> bool:
        """True for accounts no customer may use: the IM admin's, and anything an agent's account could be."""
        return user_id == self.settings.im_admin_userid or user_id.startswith(self.settings.agent_prefixes)

    def check_customer(self, user_id: str) -> None:
        if self.is_reserved(user_id):
            prefixes = ", ".join(self.settings.agent_prefixes)
            raise BadRequest(
                f"userId {user_id!r} is reserved: it is the IM admin account or starts with an agent account prefix "
                f"({prefixes}); give the customer an IM account of their own",
                code="reserved_user_id",
            )

    # --- membership primitives ----------------------------------------------------------------------------------

    async def _join(self, job: Job) -> dict[str, Any]:
        """The account into the group, then into the link's agents (unless it is the requester), with the outcome.
        Stored with the job: the account among the agents the link has seen, before IM lets it speak."""
        group_id, user_id = job.payload["groupId"], job.payload["userId"]
        try:
            await self.im.add_members(group_id, [user_id])  # one round trip when IM knows the account
        except AccountNotFound:
            link = await self.db.link_by_group(group_id)
            if link and self.agents.helpdesk_user(link.provider, user_id) is not None:
                await self.agents.import_agent(link.provider, user_id)  # with the agent's name as its Nick
            else:
                await self.im.import_account(user_id)
            await self.im.add_members(group_id, [user_id])
        self.queue.after(job, self.db.add_agent(group_id, user_id))
        return {}

    async def _leave(self, job: Job) -> dict[str, Any]:
        group_id, user_id = job.payload["groupId"], job.payload["userId"]
        await self.im.delete_members(group_id, [user_id])
        link = await self.db.link_by_group(group_id)
        if link:
            await self.db.update_link(group_id, agents=[a for a in link.agents if a != user_id])
        return {}

    async def _delete_group(self, job: Job) -> dict[str, Any]:
        group_id = job.payload["groupId"]
        try:
            await self.im.destroy_group(group_id)
        except GroupNotFound:
            pass  # already gone is success
        await self.db.update_link(group_id, state=LinkState.DISMISSED, agents=[])
        return {}

    async def _assignment(self, job: Job) -> dict[str, Any]:
        """Converge a linked group on its ticket's owner; apply the callout's delta to a group with no link, as the
        agents' accounts of the connector whose group ID it is."""
        group_id = job.payload["groupId"]
        if await self.db.link_by_group(group_id) is not None:
            return await self._converge(job)
        connector = self.owner_of(group_id)
        if connector is None:
            raise NotFound(
                f"{group_id!r} is not a ticket's group ID of an enabled connector, so its owners have no agent "
                "accounts; use /joingroup and /leavegroup for other groups",
                code="unknown_group",
            )
        joined, left = [], []
        new, old = job.payload.get("newOwnerId"), job.payload.get("oldOwnerId")
        new_agent = connector.agent_id(new) if new else None
        old_agent = connector.agent_id(old) if old else None
        if old_agent and old_agent != new_agent:
            await self.im.delete_members(group_id, [old_agent])
            left.append(old_agent)
        if new_agent:
            await self.agents.import_agent(connector.name, new_agent)
            await self.im.add_members(group_id, [new_agent])
            joined.append(new_agent)
        return {"joined": joined, "left": left}

    # --- convergence and closing --------------------------------------------------------------------------------

    async def _converge(self, job: Job) -> dict[str, Any]:
        """Make the group's agents equal to the ticket's current owner, and follow its status."""
        group_id = job.payload["groupId"]
        link = await self.db.link_by_group(group_id)
        if link is None:
            # Helpdesks report every ticket; only those opened through the bridge have a group.
            return {"joined": [], "left": [], "ignored": "no linked group"}
        if link.state == LinkState.PENDING:
            # The ticket exists, its group is still being opened (an owner set by an assignment rule at insert
            # reaches us that early): wait for it.
            raise RetriableError(f"the group {group_id} is still being opened", upstream="bridge", retry_after=1.0)
        if job.payload.get("greet"):
            await self._greet(job, group_id)
        connector = self.connector(link.provider)
        ticket = await connector.get_ticket(link.ticket_id)
        if ticket.status is TicketStatus.DELETED:
            await self._delete_group(job)
            return {"joined": [], "left": link.agents, "state": LinkState.DISMISSED}
        if link.state == LinkState.DISMISSED:
            return {"joined": [], "left": [], "state": LinkState.DISMISSED}

        members = await self.im.member_ids(group_id)
        current = {m for m in members if m not in (link.requester_id, self.im.admin)}
        wanted = set()
        if ticket.agent_id and ticket.status is not TicketStatus.CLOSED:
            wanted.add(ticket.agent_id)
        joined = sorted(wanted - current)
        left = sorted(current - wanted)
        if link.state == LinkState.CLOSED and ticket.status is not TicketStatus.CLOSED:
            await self.im.mute_all(group_id, False)
            await self.im.system_notification(group_id, REOPENED_NOTICE)
        await self.db.see_agents(group_id, joined)  # before IM lets them speak: their first message is theirs
        for agent in joined:
            await self.agents.import_agent(link.provider, agent)
        for agent in sorted(wanted & current):
            await self.agents.keep_fresh(link.provider, agent)  # a rename reaches agents who stay, within a day
        if joined:
            await self.im.add_members(group_id, joined)
        if left:
            await self.im.delete_members(group_id, left)
        state = {TicketStatus.SOLVED: LinkState.SOLVED, TicketStatus.CLOSED: LinkState.CLOSED}.get(
            ticket.status, LinkState.OPEN
        )
        if state != link.state:
            if state == LinkState.CLOSED:
                await self.im.system_notification(group_id, CLOSED_NOTICE)
                await self.im.mute_all(group_id, True)
            elif state == LinkState.SOLVED:
                await self.im.system_notification(group_id, SOLVED_NOTICE)
        if not wanted and current and state == LinkState.OPEN:
            await self.im.system_notification(group_id, WAITING_NOTICE)
        if (sorted(wanted), state) != (link.agents, link.state):
            await self.db.update_link(group_id, agents=sorted(wanted), state=state)
        return {"joined": joined, "left": left, "state": state}

    # --- events from the helpdesks -------------------------------------------------------------------------------

    async def take_events(self, events: Sequence[TicketEvent]) -> list[EventReceipt]:
        """Store each event as the next job of its group, in order: a convergence, the group's dismissal for a
        deleted ticket, or an added comment's relay (bridge/replies.py). The worker applies them; a redelivered
        event is stored once (see TicketEvent)."""
        receipts = []
        for event in events:
            group_id = event.group_id
            if event.linked_only and await self.db.link_by_group(group_id) is None:
                receipts.append(EventReceipt(group_id, EventOutcome.IGNORED))
                continue
            # Kept until the delivery's signed timestamp is stale for sure.
            if event.replay_key and not await self.db.remember_signature(event.replay_key, event.replay_until):
                receipts.append(EventReceipt(group_id, EventOutcome.DUPLICATE))
                continue
            payload: dict[str, Any] = {"groupId": group_id}
            if event.reason:
                payload["reason"] = event.reason
            payload["event"] = dict(event.hints)
            kind, key = (JobKind.DELETE_GROUP if event.kind is EventKind.DELETED else JobKind.CONVERGE), event.key
            if event.kind is EventKind.COMMENT_ADDED:
                if not event.comment_id:
                    raise BadRequest("a comment_added event names no comment", code="invalid_request")
                # Keyed by the comment, not the delivery: however often and by whichever route a comment is
                # reported, it is one job.
                kind, key = JobKind.RELAY_REPLY, replies.job_key(event.provider, event.comment_id)
                payload["commentId"] = event.comment_id
            # The job key's unique constraint is what makes a repeated event do nothing.
            job, created = await self.queue.enqueue(kind, payload, key=key, ordering_key=group_id)
            receipts.append(
                EventReceipt(group_id, EventOutcome.QUEUED, job.id)
                if created
                else EventReceipt(group_id, EventOutcome.DUPLICATE)
            )
        return receipts

    # --- opening a ticket ---------------------------------------------------------------------------------------

    async def create_ticket(
        self,
        provider: str,
        body: dict[str, Any],
        idempotency_key: str | None,
        caller: str,
        also: Sequence[Statement] = (),
    ) -> Outcome:
        """Open the ticket, then its group; a repeated Idempotency-Key of the same caller returns the first outcome.

        `caller` is who asks: `user:<userId>` (a UserSig), `app` or `callout` (the secret that signed), `insecure`.
        Keys are the caller's own: another caller's key never collides with them."""
        self.connector(provider)  # an unknown connector is a 404 before anything is stored
        self.check_customer(body["userId"])
        user_id, limit = body["userId"], self.settings.bridge_create_per_user
        if self.open_creates[user_id] >= limit:
            raise TooManyRequests(
                f"this user already has {limit} tickets being opened; retry once one of them is answered",
                retry_after=CREATE_BUSY_RETRY_AFTER,
            )
        self.open_creates[user_id] += 1
        try:
            async with self.create_slots:
                return await self._create_ticket(provider, body, idempotency_key, caller, also)
        finally:
            self.open_creates[user_id] -= 1
            if not self.open_creates[user_id]:
                del self.open_creates[user_id]

    async def _create_ticket(
        self, provider: str, body: dict[str, Any], idempotency_key: str | None, caller: str, also: Sequence[Statement]
    ) -> Outcome:
        digest = request_hash({"provider": provider, **body})
        key = f"{JobKind.CREATE_TICKET}:{uuid.uuid4().hex}"
        if idempotency_key:
            scoped = f"{caller}:{idempotency_key}"
            # Job keys hold 300 characters; a long user id and key together are hashed into them.
            key = f"{JobKind.CREATE_TICKET}:{scoped if len(scoped) <= 280 else 'sha256-' + _sha256(scoped)}"
        payload = {"provider": provider, "request": body, "hash": digest, "requestKey": key, "caller": caller}
        job, created = await self.queue.enqueue(JobKind.CREATE_TICKET, payload, key, claim=True, also=also)
        if not created and job.payload.get("hash") != digest:
            raise Conflict("this Idempotency-Key was used with a different request body", code="idempotency_conflict")
        leased = created and job.status == JobStatus.RUNNING
        if not created and job.status in ("failed", "dead"):
            # The caller retries a request that failed: try again (every step is idempotent), do not replay the error.
            await self.queue.retry(job_id=job.id)
            claimed = await self.queue.claim(1, job_id=job.id)
            job, leased = (claimed[0], True) if claimed else (await self.queue.get(job.id or 0) or job, False)
        return await self.finish_inline(job, leased)

    async def _open_ticket(self, job: Job) -> dict[str, Any]:
        """The ticket (with the customer's IM account, at the same time), then the group: two round trips before the
        answer. The greeting and the owner check follow as the group's first job, stored with this one's outcome."""
        payload = job.payload
        provider, request = payload["provider"], payload["request"]
        connector = self.connector(provider)
        info, user_id = request["caseInfo"], request["userId"]
        if "ticketId" not in payload:
            ticket = NewTicket(
                user_id=user_id,
                subject=info["subject"],
                description=info.get("desc") or "",
                name=info.get("name"),
                email=info.get("email"),
                request_key=payload["requestKey"],
                # Only a signed call is trusted to name the requester by email; an end user's email is just data.
                requester_by_email=payload.get("caller") in ("app", "callout"),
            )
            created, imported = await asyncio.gather(
                self._create_ticket_in_time(connector, ticket, first_attempt=job.attempts <= 1),
                self.im.import_account(user_id, nick=info.get("name")),  # idempotent: done again on a retry
                return_exceptions=True,
            )
            if isinstance(created, BaseException):
                raise created
            ticket_id = created
            crash_point("ticket_created", job.kind)
            group_id = connector.group_id(ticket_id)
            link = Link(
                provider=provider,
                ticket_id=ticket_id,
                group_id=group_id,
                requester_id=user_id,
                subject=info["subject"],
                state=LinkState.PENDING,
            )
            await self.queue.checkpoint(job, self.db.insert_link(link), ticketId=ticket_id, groupId=group_id)
            payload = job.payload
            if isinstance(imported, BaseException):
                raise imported  # the ticket is recorded: a retry opens only the group
            payload["imported"] = True
        ticket_id, group_id = payload["ticketId"], payload["groupId"]
        ids = {"provider": provider, "ticketId": ticket_id, "groupId": group_id}
        try:
            if not payload.get("imported"):
                await self.im.import_account(user_id, nick=info.get("name"))
            await self._open_group(ticket_id, group_id, user_id, info)
        except RetriableError as exc:
            exc.details.update(ids)
            raise
        # The link is open with the job's outcome, and the group's first job (greeting, then the owner an assignment
        # rule may have set meanwhile) is stored with it: durable, but after the answer.
        self.queue.after(job, self.db.change_link(group_id, state=LinkState.OPEN))
        self.queue.follow_up(
            job,
            JobKind.CONVERGE,
            {"groupId": group_id, "reason": "opened", "greet": True},
            f"opened:{group_id}",
            group_id,
        )
        return ids

    async def _create_ticket_in_time(self, connector: Connector, ticket: NewTicket, first_attempt: bool) -> str:
        """Create the ticket (the request key makes a repeat safe), under one retry policy at a time.

        The caller's own attempt waits out short rate limits and blips (BRIDGE_CREATE_PATIENCE_SECONDS), then
        reports the failure (502) and is not retried: no ticket is opened later that nobody waits for. A later
        attempt (the job taken again after a crash) calls once and leaves retrying to the queue's schedule."""
        if not first_attempt:
            return await connector.create_ticket(ticket)
        deadline = asyncio.get_running_loop().time() + self.settings.bridge_create_patience_seconds
        delay = 0.2
        while True:
            try:
                return await connector.create_ticket(ticket)
            except RetriableError as exc:
                wait = exc.retry_after if exc.retry_after is not None else delay
                if asyncio.get_running_loop().time() + wait > deadline:
                    raise PermanentError(str(exc), upstream=exc.upstream, upstream_code=exc.upstream_code) from None
                await asyncio.sleep(wait)
                delay = min(delay * 2, 5.0)

    async def _reclaim_group(self, group_id: str, name: str, user_id: str) -> None:
        """10021: an app user created the ticket's group ID first (the client SDK lets anyone choose a group ID).
        Never adopted: dismissed with the admin's rights and created afresh; if IM will not, the request fails."""
        try:
            group = await self.im.get_group(group_id)
            squatter = (group or {}).get("Owner_Account") or "no owner"
            log.warning(
                "IM group %s was not created by the bridge (owner: %s): dismissing it and creating the ticket's group",
                group_id,
                squatter,
            )
            try:
                await self.im.destroy_group(group_id)
            except GroupNotFound:
                pass  # dismissed meanwhile: the ID is free
            await self.im.create_group(group_id, name, members=[user_id])
        except IMError as exc:
            # The squatter's account is in the log, not in the customer's answer.
            raise PermanentError(
                f"the IM group ID {group_id} is taken by another IM user and the bridge could not reclaim it "
                f"({exc.message})",
                upstream="im",
                upstream_code=exc.upstream_code,
            ) from None

    async def _open_group(self, ticket_id: str, group_id: str, user_id: str, info: dict[str, Any]) -> None:
        """The ticket's group with the customer in it; a retry after a lost answer finds it made (10025)."""
        name = self.settings.group_name(ticket_id, info["subject"])
        try:
            await self.im.create_group(group_id, name, members=[user_id])
        except GroupExists:
            # 10025, "used, and you are its owner": only this app's admin creates groups without an owner, so
            # this is a retried create after a lost answer; make sure the customer is in.
            if user_id not in await self.im.member_ids(group_id):
                await self.im.add_members(group_id, [user_id])
        except GroupIdTaken:
            await self._reclaim_group(group_id, name, user_id)

    async def _greet(self, job: Job, group_id: str) -> None:
        """The greeting, once: a group message whose Random is the group's own, so IM drops a repeat within five
        minutes (a retry after IM's answer was lost, or after a crash before the record below). Online only, as a
        system notification is: kept out of the group's history, and no callback."""
        if "greeting" in job.payload.get("done", []):
            return
        await self.im.send_text(
            group_id, self.settings.bridge_greeting, greeting_random(group_id), forbid_callback=True, online_only=True
        )
        await self.queue.checkpoint(job, done=["greeting"])


def greeting_random(group_id: str) -> int:
    """The greeting's Random: the same for every attempt in one group, so IM keeps one of them."""
    return int(_sha256(f"greeting:{group_id}")[:8], 16)


def _stored_error(job: Job) -> BridgeError:
    """Rebuild the error a job ended with, for the HTTP answer."""
    body = json.loads(job.result_json or "{}").get("error") or {}
    code = body.get("code", "upstream_error")
    message = body.get("message") or job.last_error or "the request failed"
    extra = {k: v for k, v in body.items() if k not in ("code", "message")}
    cls = {
        "bad_request": BadRequest,
        "not_found": NotFound,
        "group_not_found": NotFound,
        "unknown_group": NotFound,
        "unknown_connector": NotFound,
    }.get(code)
    if cls is None:
        err: BridgeError = PermanentError(
            message, upstream=extra.pop("upstream", "upstream"), upstream_code=extra.pop("upstreamCode", None)
        )
        err.code = code
    else:
        err = cls(message, code=code)
    err.details.update(extra)
    return err
