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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from bridge import replies, transcript
from bridge.agents import AgentNames
from bridge.config import Settings
from bridge.errors import (
    BadRequest,
    BridgeError,
    Conflict,
    PermanentError,
    RetriableError,
    TooManyRequests,
    UnknownConnector,
    UnknownGroup,
    rebuild,
)
from bridge.im import AccountNotFound, GroupExists, GroupIdTaken, GroupNotFound, IMClient, IMError
from bridge.jobs import JobQueue, crash_point
from bridge.lookups import Lookups
from bridge.metrics import Metrics
from bridge.models import CaseInfo, CreateTicketBody
from bridge.outcomes import GroupChange, Outcome, TicketOpened
from bridge.payloads import (
    AgentName,
    Assignment,
    Converge,
    CreateTicket,
    DeleteGroup,
    GroupJob,
    JobPayload,
    Join,
    Leave,
    RelayReply,
    SyncMessage,
)
from bridge.states import JobKind, JobStatus, LinkState
from bridge.store import Database, Job, Link, Statement
from connectors.base import Connector, EventKind, EventOutcome, EventReceipt, NewTicket, TicketEvent, TicketStatus

log = logging.getLogger(__name__)
P = TypeVar("P", bound=JobPayload)

WAITING_NOTICE = "Your ticket is waiting for the next available agent."
SOLVED_NOTICE = "This ticket has been marked as solved. Reply here if you still need help."
CLOSED_NOTICE = "This ticket is closed. Thank you for contacting us."
REOPENED_NOTICE = "This ticket has been reopened."
INLINE_WAIT_SECONDS = 3.0  # how long a request waits for earlier work of its group before answering 202
CREATE_BUSY_RETRY_AFTER = 5  # seconds: about how long opening a ticket takes


def request_hash(body: Any) -> str:
    return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":")))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Bridge(Lookups):
    """The service: settings, storage, the IM client, the connectors and the job queue, wired together (and the
    answers that store nothing: bridge/lookups.py)."""

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
        self.agents = AgentNames(settings, db, im, connectors, self.enqueue)
        self.transcript = transcript.Transcript(settings, db, im, self.queue, self.metrics, self.connector)
        self._handle(Join, self._join)
        self._handle(Leave, self._leave)
        self._handle(DeleteGroup, lambda job, payload: self._dismiss(payload.groupId))
        self._handle(Converge, self._converge)
        self._handle(CreateTicket, self._open_ticket)
        self._handle(Assignment, self._assignment)
        self._handle(SyncMessage, self.transcript.sync)
        self._handle(RelayReply, lambda job, payload: replies.relay_reply(job, payload, db, im, self.connector))
        self._handle(AgentName, lambda job, payload: self.agents.refresh(payload))

    def _handle(self, model: type[P], run: Callable[[Job, P], Awaitable[dict[str, Any]]]) -> None:
        """Run the jobs of `model`'s kind with their payload read back (and checked) as a `model`."""

        async def handle(job: Job) -> dict[str, Any]:
            return await run(job, model.of(job))

        self.queue.handler(model.kind)(handle)

    async def enqueue(
        self, payload: JobPayload, key: str, ordering_key: str | None = None, delay: float = 0.0, **options: Any
    ) -> tuple[Job, bool]:
        """Store a job of the payload's kind (see JobQueue.enqueue, and its `claim` and `also` options)."""
        return await self.queue.enqueue(payload.kind, payload.stored(), key, ordering_key, delay, **options)

    async def checkpoint(self, job: Job, payload: P, *also: Statement) -> P:
        """Record `payload` (the job's, with the steps done so far) as the job's own; see JobQueue.checkpoint."""
        await self.queue.checkpoint(job, *also, **payload.stored())
        return payload

    # --- running jobs inline ------------------------------------------------------------------------------------

    async def submit(
        self,
        payload: JobPayload,
        key: str | None = None,
        ordering_key: str | None = None,
        also: Sequence[Statement] = (),
    ) -> Outcome:
        """Store a job, leased to this request when nothing earlier in its group is open, and run it now.

        Raises the job's error when it failed permanently; returns queued=True when it will finish later. `also`:
        statements stored with the job (see JobQueue.enqueue)."""
        if isinstance(payload, Join):  # see _join
            also = [*also, self.db.add_agent(payload.groupId, payload.userId, seen_only=True)]
        key = key or f"{payload.kind}:{uuid.uuid4().hex}"
        job, created = await self.enqueue(payload, key, ordering_key, claim=True, also=also)
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
            raise UnknownConnector(f"connector {name!r} is not enabled (enabled: {enabled})") from None

    def owner_of(self, group_id: str) -> Connector | None:
        """The connector whose ticket group IDs include `group_id`, if any."""
        return next((c for c in self.connectors.values() if c.ticket_id(group_id) is not None), None)

    # --- membership primitives ----------------------------------------------------------------------------------

    async def change_group(self, payload: GroupJob, also: Sequence[Statement] = ()) -> GroupChange:
        """A seed primitive, stored as the group's next job and run now when nothing earlier of the group waits.
        `also`: statements stored with the job (a signed call's claim)."""
        outcome = await self.submit(payload, ordering_key=payload.groupId, also=also)
        if outcome.queued:
            return GroupChange(queued=True, job_id=outcome.job.id)
        result = outcome.result
        return GroupChange(False, outcome.job.id, result.get("joined", []), result.get("left", []))

    async def _join(self, job: Job, payload: Join) -> dict[str, Any]:
        """The account into the group, then into the link's agents (unless it is the requester), with the outcome.
        Stored with the job: the account among the agents the link has seen, before IM lets it speak."""
        group_id, user_id = payload.groupId, payload.userId
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

    async def _leave(self, job: Job, payload: Leave) -> dict[str, Any]:
        group_id, user_id = payload.groupId, payload.userId
        await self.im.delete_members(group_id, [user_id])
        link = await self.db.link_by_group(group_id)
        if link:
            await self.db.update_link(group_id, agents=[a for a in link.agents if a != user_id])
        return {}

    async def _dismiss(self, group_id: str) -> dict[str, Any]:
        try:
            await self.im.destroy_group(group_id)
        except GroupNotFound:
            pass  # already gone is success
        await self.db.update_link(group_id, state=LinkState.DISMISSED, agents=[])
        return {}

    async def _assignment(self, job: Job, payload: Assignment) -> dict[str, Any]:
        """Converge a linked group on its ticket's owner; apply the callout's delta to a group with no link, as the
        agents' accounts of the connector whose group ID it is."""
        group_id = payload.groupId
        if await self.db.link_by_group(group_id) is not None:
            return await self._converge(job, payload)
        connector = self.owner_of(group_id)
        if connector is None:
            raise UnknownGroup(
                f"{group_id!r} is not a ticket's group ID of an enabled connector, so its owners have no agent "
                "accounts; use /joingroup and /leavegroup for other groups"
            )
        joined, left = [], []
        new, old = payload.newOwnerId, payload.oldOwnerId
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

    async def _converge(self, job: Job, payload: Converge | Assignment) -> dict[str, Any]:
        """Make the group's agents equal to the ticket's current owner, and follow its status."""
        group_id = payload.groupId
        link = await self.db.link_by_group(group_id)
        if link is None:
            # Helpdesks report every ticket; only those opened through the bridge have a group.
            return {"joined": [], "left": [], "ignored": "no linked group"}
        if link.state == LinkState.PENDING:
            # The ticket exists, its group is still being opened (an owner set by an assignment rule at insert
            # reaches us that early): wait for it.
            raise RetriableError(f"the group {group_id} is still being opened", upstream="bridge", retry_after=1.0)
        if isinstance(payload, Converge) and payload.greet:
            await self._greet(job, payload)
        connector = self.connector(link.provider)
        ticket = await connector.get_ticket(link.ticket_id)
        if ticket.status is TicketStatus.DELETED:
            await self._dismiss(group_id)
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
            payload: JobPayload
            reason, hints = event.reason or None, dict(event.hints)
            if event.kind is EventKind.COMMENT_ADDED:
                if not event.comment_id:
                    raise BadRequest("a comment_added event names no comment", code="invalid_request")
                # Keyed by the comment, not the delivery: however often and by whichever route a comment is
                # reported, it is one job.
                key = replies.job_key(event.provider, event.comment_id)
                payload = RelayReply(groupId=group_id, reason=reason, event=hints, commentId=event.comment_id)
            else:
                model = DeleteGroup if event.kind is EventKind.DELETED else Converge
                key, payload = event.key, model(groupId=group_id, reason=reason, event=hints)
            # The job key's unique constraint is what makes a repeated event do nothing.
            job, created = await self.enqueue(payload, key=key, ordering_key=group_id)
            receipts.append(
                EventReceipt(group_id, EventOutcome.QUEUED, job.id)
                if created
                else EventReceipt(group_id, EventOutcome.DUPLICATE)
            )
        return receipts

    # --- opening a ticket ---------------------------------------------------------------------------------------

    async def create_ticket(
        self,
        provider: str | None,
        body: CreateTicketBody,
        idempotency_key: str | None,
        caller: str,
        also: Sequence[Statement] = (),
    ) -> TicketOpened:
        """Open the ticket, then its group, on `provider` (None: the default connector); a repeated Idempotency-Key of
        the same caller returns the first outcome. `also`: statements stored with the job (a signed call's claim).

        `caller` is who asks: `user:<userId>` (a UserSig), `app` or `callout` (the secret that signed), `insecure`.
        Keys are the caller's own: another caller's key never collides with them."""
        if provider is None:
            provider = self.settings.default_connector
            if provider is None:
                raise BadRequest(
                    "no default connector: set BRIDGE_DEFAULT_CONNECTOR or call /{connector}/createticket",
                    code="no_default_connector",
                )
        self.connector(provider)  # an unknown connector is a 404 before anything is stored
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
            raise BadRequest("Idempotency-Key must be 1 to 255 characters", code="invalid_request")
        self.check_customer(body.userId)
        user_id, limit = body.userId, self.settings.bridge_create_per_user
        if self.open_creates[user_id] >= limit:
            raise TooManyRequests(
                f"this user already has {limit} tickets being opened; retry once one of them is answered",
                retry_after=CREATE_BUSY_RETRY_AFTER,
            )
        self.open_creates[user_id] += 1
        try:
            async with self.create_slots:
                outcome = await self._create_ticket(provider, body.model_dump(), idempotency_key, caller, also)
        finally:
            self.open_creates[user_id] -= 1
            if not self.open_creates[user_id]:
                del self.open_creates[user_id]
        if not outcome.queued:
            result = outcome.result
            return TicketOpened(provider, result["ticketId"], result["groupId"], False, outcome.job.id)
        payload = CreateTicket.of(outcome.job)
        if payload.ticketId is None or payload.groupId is None:
            # Another request with this Idempotency-Key is still opening the ticket.
            raise Conflict(
                "a request with this Idempotency-Key is still in progress; retry in a few seconds",
                code="request_in_progress",
            )
        return TicketOpened(provider, payload.ticketId, payload.groupId, True, outcome.job.id)

    async def _create_ticket(
        self, provider: str, body: dict[str, Any], idempotency_key: str | None, caller: str, also: Sequence[Statement]
    ) -> Outcome:
        digest = request_hash({"provider": provider, **body})
        key = f"{JobKind.CREATE_TICKET}:{uuid.uuid4().hex}"
        if idempotency_key:
            scoped = f"{caller}:{idempotency_key}"
            # Job keys hold 300 characters; a long user id and key together are hashed into them.
            key = f"{JobKind.CREATE_TICKET}:{scoped if len(scoped) <= 280 else 'sha256-' + _sha256(scoped)}"
        payload = CreateTicket(provider=provider, request=body, hash=digest, requestKey=key, caller=caller)
        job, created = await self.enqueue(payload, key, claim=True, also=also)
        if not created and CreateTicket.of(job).hash != digest:
            raise Conflict("this Idempotency-Key was used with a different request body", code="idempotency_conflict")
        leased = created and job.status == JobStatus.RUNNING
        if not created and job.status in (JobStatus.FAILED, JobStatus.DEAD):
            # The caller retries a request that failed: try again (every step is idempotent), do not replay the error.
            await self.queue.retry(job_id=job.id)
            claimed = await self.queue.claim(1, job_id=job.id)
            job, leased = (claimed[0], True) if claimed else (await self.queue.get(job.id or 0) or job, False)
        return await self.finish_inline(job, leased)

    async def _open_ticket(self, job: Job, payload: CreateTicket) -> dict[str, Any]:
        """The ticket (with the customer's IM account, at the same time), then the group: two round trips before the
        answer. The greeting and the owner check follow as the group's first job, stored with this one's outcome."""
        provider, request = payload.provider, payload.request
        connector = self.connector(provider)
        info, user_id = request.caseInfo, request.userId
        imported_now = False
        ticket_id, group_id = payload.ticketId, payload.groupId
        if ticket_id is None or group_id is None:
            ticket = NewTicket(
                user_id=user_id,
                subject=info.subject,
                description=info.desc or "",
                name=info.name,
                email=info.email,
                request_key=payload.requestKey,
                # Only a signed call is trusted to name the requester by email; an end user's email is just data.
                requester_by_email=payload.caller in ("app", "callout"),
            )
            created, imported = await asyncio.gather(
                self._create_ticket_in_time(connector, ticket, first_attempt=job.attempts <= 1),
                self.im.import_account(user_id, nick=info.name),  # idempotent: done again on a retry
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
                subject=info.subject,
                state=LinkState.PENDING,
            )
            payload = await self.checkpoint(
                job, payload.but(ticketId=ticket_id, groupId=group_id), self.db.insert_link(link)
            )
            if isinstance(imported, BaseException):
                raise imported  # the ticket is recorded: a retry opens only the group
            imported_now = True
        ids = {"provider": provider, "ticketId": ticket_id, "groupId": group_id}
        try:
            if not imported_now:
                await self.im.import_account(user_id, nick=info.name)
            await self._open_group(ticket_id, group_id, user_id, info)
        except RetriableError as exc:
            exc.details.update(ids)
            raise
        # The link is open with the job's outcome, and the group's first job (greeting, then the owner an assignment
        # rule may have set meanwhile) is stored with it: durable, but after the answer.
        self.queue.after(job, self.db.change_link(group_id, state=LinkState.OPEN))
        opened = Converge(groupId=group_id, reason="opened", greet=True)
        self.queue.follow_up(job, opened.kind, opened.stored(), f"opened:{group_id}", group_id)
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

    async def _open_group(self, ticket_id: str, group_id: str, user_id: str, info: CaseInfo) -> None:
        """The ticket's group with the customer in it; a retry after a lost answer finds it made (10025)."""
        name = self.settings.group_name(ticket_id, info.subject)
        try:
            await self.im.create_group(group_id, name, members=[user_id])
        except GroupExists:
            # 10025, "used, and you are its owner": only this app's admin creates groups without an owner, so
            # this is a retried create after a lost answer; make sure the customer is in.
            if user_id not in await self.im.member_ids(group_id):
                await self.im.add_members(group_id, [user_id])
        except GroupIdTaken:
            await self._reclaim_group(group_id, name, user_id)

    async def _greet(self, job: Job, payload: Converge) -> None:
        """The greeting, once: a group message whose Random is the group's own, so IM drops a repeat within five
        minutes (a retry after IM's answer was lost, or after a crash before the record below). Online only, as a
        system notification is: kept out of the group's history, and no callback."""
        if "greeting" in payload.done:
            return
        group_id = payload.groupId
        await self.im.send_text(
            group_id, self.settings.bridge_greeting, greeting_random(group_id), forbid_callback=True, online_only=True
        )
        await self.checkpoint(job, payload.but(done=["greeting"]))


def greeting_random(group_id: str) -> int:
    """The greeting's Random: the same for every attempt in one group, so IM keeps one of them."""
    return int(_sha256(f"greeting:{group_id}")[:8], 16)


def _stored_error(job: Job) -> BridgeError:
    """Rebuild the error a job ended with, for the HTTP answer."""
    error = json.loads(job.result_json or "{}").get("error") or {}
    return rebuild(error, job.last_error or "the request failed")
