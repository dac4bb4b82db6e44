"""The use cases, as the README tells them: open a ticket with its group, converge a group on the ticket's owner,
close it, and the seed's membership primitives. Each is a job (bridge/jobs.py): stored first, then run inline
when it can be, else later by the worker, in order per group.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Executable

from bridge import auth, ids, replies, transcript
from bridge.agents import AgentNames
from bridge.config import Settings
from bridge.errors import (
    BadRequest,
    BridgeError,
    Conflict,
    Forbidden,
    NotFound,
    PermanentError,
    RetriableError,
    TooManyRequests,
    UnknownConnector,
    UnknownGroup,
    rebuild,
)
from bridge.im import GroupExists, GroupIdTaken, GroupNotFound, IMClient, IMError
from bridge.jobs import JobQueue, crash_point
from bridge.metrics import Metrics
from bridge.models import CreateTicketBody
from bridge.outcomes import GroupChange, IssuedUserSig, Outcome, TicketOpened
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
from bridge.store import Database, Job, Link
from connectors.base import Connector, EventKind, EventOutcome, EventReceipt, NewTicket, TicketEvent, TicketStatus

log = logging.getLogger(__name__)
P = TypeVar("P", bound=JobPayload)

WAITING_NOTICE = "Your ticket is waiting for the next available agent."
SOLVED_NOTICE = "This ticket has been marked as solved. Reply here if you still need help."
CLOSED_NOTICE = "This ticket is closed. Thank you for contacting us."
REOPENED_NOTICE = "This ticket has been reopened."
INLINE_WAIT_SECONDS = 3.0  # how long a request waits for earlier work of its group before answering 202
# A request runs the job it stored itself; the worker leaves it alone this long (and takes it if the request died).
INLINE_GRACE_SECONDS = 15.0
CREATE_BUSY_RETRY_AFTER = 5  # seconds: about how long opening a ticket takes


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
        self._handle(Join, self._join)
        self._handle(Leave, self._leave)
        self._handle(DeleteGroup, lambda job, payload: self._dismiss(payload.groupId))
        self._handle(Converge, lambda job, payload: self._converge(payload.groupId))
        self._handle(CreateTicket, self._open_ticket)
        self._handle(Assignment, self._assignment)
        self.transcript = transcript.Transcript(settings, db, im, self.queue, self.metrics, self.connector)
        self._handle(SyncMessage, self.transcript.sync)
        self._handle(
            RelayReply, lambda job, payload: replies.relay_reply(job, payload, self.db, self.im, self.connector)
        )
        self.agents = AgentNames(settings, db, im, connectors, self.enqueue)
        self._handle(AgentName, lambda job, payload: self.agents.refresh(payload))

    def _handle(self, model: type[P], run: Callable[[Job, P], Awaitable[dict[str, Any]]]) -> None:
        """Run the jobs of `model`'s kind with their payload read back (and checked) as a `model`."""

        async def handle(job: Job) -> dict[str, Any]:
            return await run(job, model.of(job))

        self.queue.handler(model.kind)(handle)

    async def enqueue(
        self, payload: JobPayload, key: str, ordering_key: str | None = None, delay: float = 0.0
    ) -> tuple[Job, bool]:
        """Store a job of the payload's kind (see JobQueue.enqueue)."""
        return await self.queue.enqueue(payload.kind, payload.stored(), key, ordering_key, delay)

    async def checkpoint(self, job: Job, payload: P, *also: Executable) -> P:
        """Record `payload` (the job's, with the steps done so far) as the job's own; see JobQueue.checkpoint."""
        await self.queue.checkpoint(job, *also, **payload.stored())
        return payload

    # --- running jobs inline ------------------------------------------------------------------------------------

    async def submit(self, payload: JobPayload, key: str | None = None, ordering_key: str | None = None) -> Outcome:
        """Store a job, then run it now when nothing earlier in its group is waiting.

        Raises the job's error when it failed permanently; returns queued=True when it will finish later."""
        key = key or f"{payload.kind}:{uuid.uuid4().hex}"
        job, _ = await self.enqueue(payload, key, ordering_key, delay=INLINE_GRACE_SECONDS)
        return await self.finish_inline(job)

    async def finish_inline(self, job: Job) -> Outcome:
        deadline = asyncio.get_running_loop().time() + INLINE_WAIT_SECONDS
        while True:
            if job.status in (JobStatus.PENDING, JobStatus.RUNNING):
                claimed = await self.queue.claim(1, job_id=job.id)
                if claimed:
                    job = await self.queue.run(claimed[0], permanent_status=JobStatus.FAILED)
                elif await self.queue.behind_a_retry(job):
                    return await self._queued(job)  # the group waits for IM to come back: answer now
                else:
                    job = await self.queue.get(job.id or 0) or job
            if job.status == JobStatus.DONE:
                return Outcome(job, queued=False, result=json.loads(job.result_json or "{}"))
            if job.status in (JobStatus.FAILED, JobStatus.DEAD):
                raise _stored_error(job)
            if job.attempts > 0 and job.status == JobStatus.PENDING:
                return Outcome(job, queued=True)  # it failed retriably: the worker takes it from here
            if asyncio.get_running_loop().time() > deadline:
                return await self._queued(job)
            await asyncio.sleep(0.05)

    async def _queued(self, job: Job) -> Outcome:
        await self.queue.hand_over(job)
        return Outcome(job, queued=True)

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

    def issue_usersig(self, user_id: str, expire_seconds: int, customers_only: bool) -> IssuedUserSig:
        """A UserSig for `user_id`: never the IM admin's; with `customers_only` (a customer backend asks) never an
        account reserved for agents either (400 reserved_user_id)."""
        if user_id == self.settings.im_admin_userid:
            # The admin's UserSig is every REST power over the whole IM application: never handed out.
            raise Forbidden("no UserSig is issued for IM_ADMIN_USERID, whoever asks")
        if customers_only:
            self.check_customer(user_id)
        key = self.settings.im_secret_key.get_secret_value()
        sig = auth.gen_usersig(self.settings.im_sdkappid, key, user_id, expire_seconds)
        return IssuedUserSig(user_id, sig, int(time.time()) + expire_seconds, self.settings.im_sdkappid)

    async def refresh_metrics(self) -> None:
        """Bring the job and database gauges up to date (before a scrape)."""
        self.metrics.refresh(await self.queue.stats(), self.db.commits)

    # --- links --------------------------------------------------------------------------------------------------

    async def ready(self) -> bool:
        """True when the database answers."""
        return await self.db.ping()

    async def link_of_group(self, group_id: str) -> Link:
        link = await self.db.link_by_group(group_id)
        if link is None:
            raise NotFound(f"no link for group {group_id!r}", code="link_not_found")
        return link

    async def link_of_ticket(self, provider: str, ticket_id: str) -> Link:
        link = await self.db.link_by_ticket(provider, ids.normalize(ticket_id))
        if link is None:
            raise NotFound(f"no link for {provider} ticket {ticket_id!r}", code="link_not_found")
        return link

    # --- membership primitives ----------------------------------------------------------------------------------

    async def change_group(self, payload: GroupJob) -> GroupChange:
        """A seed primitive, stored as the group's next job and run now when nothing earlier of the group waits."""
        outcome = await self.submit(payload, ordering_key=payload.groupId)
        if outcome.queued:
            return GroupChange(queued=True, job_id=outcome.job.id)
        result = outcome.result
        return GroupChange(False, outcome.job.id, result.get("joined", []), result.get("left", []))

    async def _join(self, job: Job, payload: Join) -> dict[str, Any]:
        group_id, user_id = payload.groupId, payload.userId
        link = await self.db.link_by_group(group_id)
        if link and user_id != link.requester_id:
            await self.db.see_agents(group_id, [user_id])  # before IM lets them speak
        if link and self.agents.helpdesk_user(link.provider, user_id) is not None:
            await self.agents.import_agent(link.provider, user_id)
        else:
            await self.im.import_account(user_id)
        await self.im.add_members(group_id, [user_id])
        if link and user_id != link.requester_id:
            await self.db.update_link(group_id, agents=[*link.agents, user_id])
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
            return await self._converge(group_id)
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

    async def _converge(self, group_id: str) -> dict[str, Any]:
        """Make the group's agents equal to the ticket's current owner, and follow its status."""
        link = await self.db.link_by_group(group_id)
        if link is None:
            # Helpdesks report every ticket; only those opened through the bridge have a group.
            return {"joined": [], "left": [], "ignored": "no linked group"}
        if link.state == LinkState.PENDING:
            # The ticket exists, its group is still being opened (an owner set by an assignment rule at insert
            # reaches us that early): wait for it.
            raise RetriableError(f"the group {group_id} is still being opened", upstream="bridge", retry_after=1.0)
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
            if event.kind is EventKind.COMMENT_ADDED:
                if not event.comment_id:
                    raise BadRequest("a comment_added event names no comment", code="invalid_request")
                # Keyed by the comment, not the delivery: however often and by whichever route a comment is
                # reported, it is one job.
                key = replies.job_key(event.provider, event.comment_id)
                payload = RelayReply(
                    groupId=group_id, reason=event.reason or None, event=dict(event.hints), commentId=event.comment_id
                )
            else:
                model = DeleteGroup if event.kind is EventKind.DELETED else Converge
                key, payload = event.key, model(groupId=group_id, reason=event.reason or None, event=dict(event.hints))
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
        self, provider: str | None, body: CreateTicketBody, idempotency_key: str | None, caller: str
    ) -> TicketOpened:
        """Open the ticket, then its group, on `provider` (None: the default connector); a repeated Idempotency-Key of
        the same caller returns the first outcome.

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
                outcome = await self._create_ticket(provider, body.model_dump(), idempotency_key, caller)
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
        self, provider: str, body: dict[str, Any], idempotency_key: str | None, caller: str
    ) -> Outcome:
        digest = request_hash({"provider": provider, **body})
        key = f"{JobKind.CREATE_TICKET}:{uuid.uuid4().hex}"
        if idempotency_key:
            scoped = f"{caller}:{idempotency_key}"
            # Job keys hold 300 characters; a long user id and key together are hashed into them.
            key = f"{JobKind.CREATE_TICKET}:{scoped if len(scoped) <= 280 else 'sha256-' + _sha256(scoped)}"
        payload = CreateTicket(provider=provider, request=body, hash=digest, requestKey=key, caller=caller)
        job, created = await self.enqueue(payload, key, delay=INLINE_GRACE_SECONDS)
        if not created and CreateTicket.of(job).hash != digest:
            raise Conflict("this Idempotency-Key was used with a different request body", code="idempotency_conflict")
        if not created and job.status in (JobStatus.FAILED, JobStatus.DEAD):
            # The caller retries a request that failed: try again (every step is idempotent), do not replay the error.
            await self.queue.retry(job_id=job.id)
            job = await self.queue.get(job.id or 0) or job
        return await self.finish_inline(job)

    async def _open_ticket(self, job: Job, payload: CreateTicket) -> dict[str, Any]:
        provider, request = payload.provider, payload.request
        connector = self.connector(provider)
        info = request.caseInfo
        ticket_id, group_id = payload.ticketId, payload.groupId
        if ticket_id is None or group_id is None:
            ticket = NewTicket(
                user_id=request.userId,
                subject=info.subject,
                description=info.desc or "",
                name=info.name,
                email=info.email,
                request_key=payload.requestKey,
                # Only a signed call is trusted to name the requester by email; an end user's email is just data.
                requester_by_email=payload.caller in ("app", "callout"),
            )
            ticket_id = await self._create_with_patience(connector, ticket, first_attempt=job.attempts <= 1)
            crash_point("ticket_created", job.kind)
            group_id = connector.group_id(ticket_id)
            link = Link(
                provider=provider,
                ticket_id=ticket_id,
                group_id=group_id,
                requester_id=request.userId,
                subject=info.subject,
                state=LinkState.PENDING,
            )
            payload = await self.checkpoint(
                job, payload.but(ticketId=ticket_id, groupId=group_id), self.db.insert_link(link)
            )
        ids = {"provider": provider, "ticketId": ticket_id, "groupId": group_id}
        try:
            await self._open_group(job, payload, ticket_id, group_id)
        except RetriableError as exc:
            exc.details.update(ids)
            raise
        # An owner given while the group was being opened (assignment rules, triggers) is applied now; if that
        # fails, a queued convergence does it later rather than failing a ticket that is otherwise open.
        try:
            await self._converge(group_id)
        except BridgeError:
            opened = Converge(groupId=group_id, reason="opened")
            await self.enqueue(opened, key=f"opened:{group_id}", ordering_key=group_id)
        return ids

    async def _create_with_patience(self, connector: Connector, ticket: NewTicket, first_attempt: bool) -> str:
        """Create the ticket, waiting out short rate limits and outages (the request key makes retries safe).

        On the caller's own attempt a longer failure is reported (502) rather than left to open a ticket later
        that nobody is waiting for; after a crash, the job keeps retrying on its schedule."""
        deadline = asyncio.get_running_loop().time() + self.settings.bridge_create_patience_seconds
        delay = 0.2
        while True:
            try:
                return await connector.create_ticket(ticket)
            except RetriableError as exc:
                wait = exc.retry_after if exc.retry_after is not None else delay
                if asyncio.get_running_loop().time() + wait > deadline:
                    if first_attempt:
                        raise PermanentError(str(exc), upstream=exc.upstream, upstream_code=exc.upstream_code) from None
                    raise
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

    async def _open_group(self, job: Job, payload: CreateTicket, ticket_id: str, group_id: str) -> None:
        """Group, greeting, then the link marked open, each recorded once done so a retry skips it."""
        steps, user_id, info = set(payload.done), payload.request.userId, payload.request.caseInfo
        if "group" not in steps:
            await self.im.import_account(user_id, nick=info.name)
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
            steps.add("group")
        if "greeting" not in steps:
            # Recorded first, which also checks this runner still holds the job: one that lost it stops here
            # rather than greet again. At least once: IM offers no way to see whether a system notification went
            # out, and a customer who never sees the greeting is worse off than one who sees it twice after a crash
            # in the moment between IM's answer and the record below.
            payload = await self.checkpoint(job, payload.but(done=sorted(steps)))
            await self.im.system_notification(group_id, self.settings.bridge_greeting)
            steps.add("greeting")
        await self.checkpoint(job, payload.but(done=sorted(steps)), self.db.change_link(group_id, state=LinkState.OPEN))


def _stored_error(job: Job) -> BridgeError:
    """Rebuild the error a job ended with, for the HTTP answer."""
    error = json.loads(job.result_json or "{}").get("error") or {}
    return rebuild(error, job.last_error or "the request failed")
