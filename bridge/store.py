"""Storage: sqlmodel tables and the queries on them, one layer for SQLite and PostgreSQL.

The schema is owned by Alembic migrations in bridge/migrations (`helpdesk-bridge db upgrade`); the models here must
match them. Unique constraints carry idempotency: one link per ticket and per group, one row per seen signature,
per job key (the Idempotency-Key of a request, the id of a webhook delivery or of a chat message).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    Executable,
    Float,
    Index,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    delete,
    event,
    func,
    insert,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.states import JobStatus, LinkState

T = TypeVar("T")


@dataclass(frozen=True)
class Prepared:
    """A statement built once (with bindparams) and the values of one use: building a SQLAlchemy statement costs
    more CPU than running it, so the statements of every request's path are built once per process."""

    statement: Executable
    params: dict[str, Any]


Statement = Executable | Prepared  # what units of work take to run alongside their own writes


async def execute(s: AsyncSession, statement: Statement) -> Any:
    if isinstance(statement, Prepared):
        return await s.exec(statement.statement, params=statement.params)  # type: ignore[call-overload]
    return await s.exec(statement)  # type: ignore[call-overload]


def now() -> float:
    return time.time()


class Link(SQLModel, table=True):
    """One ticket tied to one group."""

    __table_args__ = (UniqueConstraint("provider", "ticket_id", name="uq_link_ticket"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    ticket_id: str = Field(max_length=64)
    group_id: str = Field(max_length=64, unique=True)
    requester_id: str = Field(max_length=64)
    agents_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    # Every agent the group ever had (current and past): whose chat messages may enter the ticket.
    agents_seen_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    state: str = Field(default=LinkState.OPEN.value, max_length=16)  # a LinkState
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)

    @property
    def agents(self) -> list[str]:
        return sorted(json.loads(self.agents_json))  # sorted when written; add_agent() appends

    @agents.setter
    def agents(self, value: list[str]) -> None:
        self.agents_json = json.dumps(sorted(set(value)))

    @property
    def agents_seen(self) -> list[str]:
        return sorted(json.loads(self.agents_seen_json))

    def public(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "ticketId": self.ticket_id,
            "groupId": self.group_id,
            "requesterId": self.requester_id,
            "agents": self.agents,
            "state": self.state,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


class SeenSignature(SQLModel, table=True):
    """Signatures already accepted, kept for the replay window; for a signed call, with the answer it was given
    (status None while the first call is still running)."""

    signature: str = Field(primary_key=True, max_length=128)
    expires_at: float = Field(index=True)
    status: int | None = None
    response_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


PENDING, RUNNING, OPEN = "status = 'pending'", "status = 'running'", "status IN ('pending', 'running')"


class AgentName(SQLModel, table=True):
    """An agent's display name as the helpdesk gave it (their IM Nick), and when it was read: the helpdesk is asked
    again only once this is old (bridge/agents.py)."""

    account: str = Field(primary_key=True, max_length=64)  # the agent's IM account
    name: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # "" when the helpdesk has none
    read_at: float = Field(default_factory=now)


class TicketWrite(SQLModel, table=True):
    """One update the transcript made to a ticket (a comment), kept while the connector's update budget counts it."""

    __table_args__ = (Index("ix_ticketwrite_group_at", "group_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    group_id: str = Field(max_length=64)
    at: float = Field(default_factory=now)


class Job(SQLModel, table=True):
    """Durable work: see bridge/jobs.py."""

    # The queue reads open jobs only, on partial indexes that leave finished rows out (see migration 0005).
    __table_args__ = (
        Index("ix_job_pending", "next_attempt_at", sqlite_where=text(PENDING), postgresql_where=text(PENDING)),
        Index("ix_job_running", "lease_until", sqlite_where=text(RUNNING), postgresql_where=text(RUNNING)),
        Index("ix_job_open_group", "ordering_key", "id", sqlite_where=text(OPEN), postgresql_where=text(OPEN)),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)  # a JobKind
    key: str = Field(max_length=300, unique=True)
    ordering_key: str | None = Field(default=None, max_length=128)
    payload_json: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default=JobStatus.PENDING.value, max_length=16, index=True)  # a JobStatus
    attempts: int = 0
    next_attempt_at: float = Field(default_factory=now)
    lease_until: float | None = None
    lease_token: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.payload_json))

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "orderingKey": self.ordering_key,
            "nextAttemptAt": self.next_attempt_at,
            "lastError": self.last_error,
            "createdAt": self.created_at,
            "payload": self.payload,
        }


def async_url(url: str) -> str:
    """The async driver URL for a configured database URL (sqlite -> aiosqlite, postgresql -> psycopg)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    return str(parsed.set(drivername="postgresql+psycopg"))


def sync_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.set(drivername="sqlite"))
    return str(parsed.set(drivername="postgresql+psycopg"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """The engine and session factory; `session()` is a unit of work that commits on success."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        # No pre-ping: it costs a round trip per checkout. A connection that was dropped fails its statement, the
        # pool discards it, and `run()` does the unit of work again on a fresh one.
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(async_url(url), **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        # SQLite has one writer: sessions of this process take turns here instead of meeting "database is locked"
        # and SQLite's sleeping busy handler (which backs off up to 100 ms a try). Units of work are short and never
        # wait on an upstream, so a turn is brief.
        self._turn = asyncio.Lock() if self.is_sqlite else None
        self.commits = 0  # units of work committed, for /metrics (bridge_db_transactions_total)
        self._answers: list[tuple[dict[str, Any], asyncio.Future[None]]] = []  # see keep_answer()
        self._keeper: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._turn or contextlib.nullcontext(), self._sessions() as session:
            try:
                yield session
                await session.commit()
                self.commits += 1
            except BaseException:
                await session.rollback()
                raise

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """One unit of work, done again once when its connection turned out to be dropped (a restarted database,
        an idle connection closed by a proxy): nothing of it was committed, and a fresh connection is taken."""
        for attempt in (1, 2):
            try:
                async with self.session() as s:
                    return await work(s)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self.engine.dispose()

    # --- links --------------------------------------------------------------------------------------------------

    async def link_by_group(self, group_id: str) -> Link | None:
        async with self.session() as s:
            return (await s.exec(select(Link).where(Link.group_id == group_id))).first()

    async def link_by_ticket(self, provider: str, ticket_id: str) -> Link | None:
        async with self.session() as s:
            return (await s.exec(select(Link).where(Link.provider == provider, Link.ticket_id == ticket_id))).first()

    def insert_link(self, link: Link) -> Executable:
        """The statement storing `link`, doing nothing when its ticket or group already has one."""
        insert = sqlite_insert if self.is_sqlite else postgresql_insert
        values = link.model_dump(exclude={"id"})
        return insert(Link).values(**values).on_conflict_do_nothing()

    @staticmethod
    def change_link(
        group_id: str,
        *,
        agents: list[str] | None = None,
        state: str | None = None,
        agents_seen: list[str] | None = None,
    ) -> Executable:
        """The statement setting a link's agents, state and/or the record of agents seen."""
        values: dict[str, Any] = {"updated_at": now()}
        if agents is not None:
            values["agents_json"] = json.dumps(sorted(set(agents)))
        if state is not None:
            values["state"] = state
        if agents_seen is not None:
            values["agents_seen_json"] = json.dumps(sorted(set(agents_seen)))
        return update(Link).where(col(Link.group_id) == group_id).values(**values)

    @staticmethod
    def add_agent(group_id: str, user_id: str, *, seen_only: bool = False) -> Prepared:
        """The statement adding `user_id` to the agents the link has seen (and, unless `seen_only`, to its agents),
        when the link exists and `user_id` is not its requester: one write, no read before it."""
        item = json.dumps(user_id)  # user IDs are plain ASCII (letters, digits, '_', '-'): no escaping in JSON
        pattern = "%" + item.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
        params: dict[str, Any] = {
            "group": group_id,
            "user": user_id,
            "pattern": pattern,
            "alone": f"[{item}]",
            "tail": f", {item}]",
        }
        params["now"] = now()
        return Prepared(_add_agent_statement(seen_only), params)

    async def update_link(self, group_id: str, *, agents: list[str] | None = None, state: str | None = None) -> None:
        """Set a link's agents and/or state; agents written here are added to the agents the link has seen."""
        async with self.session() as s:
            seen = None
            if agents:
                seen = await self._agents_seen(s, group_id, agents)
            await s.exec(self.change_link(group_id, agents=agents, state=state, agents_seen=seen))  # type: ignore[call-overload]

    async def see_agents(self, group_id: str, agents: list[str]) -> None:
        """Record agents as the link's own before they are let into its group, so their first message is theirs."""
        if not agents:
            return
        async with self.session() as s:
            seen = await self._agents_seen(s, group_id, agents)
            if seen is not None:
                await s.exec(self.change_link(group_id, agents_seen=seen))  # type: ignore[call-overload]

    @staticmethod
    async def _agents_seen(s: AsyncSession, group_id: str, agents: list[str]) -> list[str] | None:
        link = (await s.exec(select(Link).where(Link.group_id == group_id))).first()
        return None if link is None else sorted(set(link.agents_seen) | set(agents))

    # --- agents' names ------------------------------------------------------------------------------------------

    async def agent_name(self, account: str) -> AgentName | None:
        async with self.session() as s:
            return await s.get(AgentName, account)

    async def keep_agent_name(self, account: str, name: str, read_at: float) -> None:
        """Store (or replace) what the helpdesk called an agent, read at `read_at`."""
        insert = sqlite_insert if self.is_sqlite else postgresql_insert
        statement = insert(AgentName).values(account=account, name=name, read_at=read_at)
        statement = statement.on_conflict_do_update(index_elements=["account"], set_={"name": name, "read_at": read_at})
        async with self.session() as s:
            await s.exec(statement)  # type: ignore[call-overload]

    # --- the transcript's updates of tickets ---------------------------------------------------------------------

    async def ticket_writes(self, group_id: str, since: float) -> list[float]:
        """When the transcript updated the ticket of `group_id` since `since`, oldest first."""
        async with self.session() as s:
            query = select(TicketWrite.at).where(TicketWrite.group_id == group_id, col(TicketWrite.at) > since)
            return sorted((await s.exec(query)).all())

    @staticmethod
    def record_ticket_write(group_id: str, at: float) -> Executable:
        """The statement recording an update of the ticket of `group_id` (with the job step that made it)."""
        return insert(TicketWrite).values(group_id=group_id, at=at)

    @staticmethod
    def forget_ticket_writes(group_id: str, before: float) -> Executable:
        """The statement forgetting the updates of the ticket of `group_id` that no window counts any longer."""
        return delete(TicketWrite).where(col(TicketWrite.group_id) == group_id, col(TicketWrite.at) < before)

    # --- replay and deduplication -------------------------------------------------------------------------------

    async def remember_signature(self, signature: str, expires_at: float) -> bool:
        """Record a signature; False when it was already seen (a replay)."""
        return await self.claim_signature(signature, expires_at) is None

    async def claim_signature(self, signature: str, expires_at: float) -> SeenSignature | None:
        """Record a signature as in progress; None when it is new, else the row of the call that had it first."""
        try:
            async with self.session() as s:
                s.add(SeenSignature(signature=signature, expires_at=expires_at))
            return None
        except IntegrityError:
            async with self.session() as s:
                seen = await s.get(SeenSignature, signature)
            if seen is None:  # purged in between: it expired, so the window check refuses the call anyway
                return SeenSignature(signature=signature, expires_at=expires_at)
            return seen

    async def seen_signature(self, signature: str) -> SeenSignature | None:
        async with self.session() as s:
            return await s.get(SeenSignature, signature)

    async def keep_answer(self, signature: str, status: int, response_json: str) -> None:
        """Store the answer given to the call that claimed `signature`: its retries get it again.

        Answers are written together: those that come while one transaction runs wait for the next, which writes
        them all (each still returns only once its answer is committed)."""
        done = asyncio.get_running_loop().create_future()
        self._answers.append(({"signature": signature, "status": status, "response_json": response_json}, done))
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_answers())
        await done

    async def _keep_answers(self) -> None:
        while self._answers:
            batch, self._answers = self._answers, []
            try:
                async with self.session() as s:
                    # An UPDATE with a list of rows: one per row, matched by primary key.
                    await s.exec(update(SeenSignature), params=[answer for answer, _ in batch])  # type: ignore[call-overload]
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def forget_signature(self, signature: str) -> None:
        """Release a claimed signature whose call did nothing (it failed on the bridge's side): it may be retried."""
        from sqlmodel import delete

        async with self.session() as s:
            await s.exec(delete(SeenSignature).where(col(SeenSignature.signature) == signature))  # type: ignore[call-overload]

    async def purge(self, event_days: float = 8) -> None:
        """Forget expired signatures, and finished jobs (whose keys deduplicate deliveries) past `event_days`."""
        from sqlmodel import delete

        async with self.session() as s:
            await s.exec(delete(SeenSignature).where(col(SeenSignature.expires_at) < now()))  # type: ignore[call-overload]
            cutoff = now() - event_days * 86400
            await s.exec(delete(TicketWrite).where(col(TicketWrite.at) < cutoff))  # type: ignore[call-overload]
            # Finished jobs keep their keys (the deduplication of requests and events) for `event_days`.
            await s.exec(
                delete(Job).where(
                    col(Job.status).in_((JobStatus.DONE, JobStatus.FAILED)),  # type: ignore[call-overload]
                    col(Job.updated_at) < cutoff,
                )
            )


@cache
def _add_agent_statement(seen_only: bool) -> Executable:
    def added(column: Any) -> Any:
        # ["a", "b"] -> ["a", "b", "c"]: json.dumps' own separator, so the text stays what json.dumps writes.
        return case(
            (column.like(bindparam("pattern", type_=Text), escape="/"), column),
            (column == "[]", bindparam("alone", type_=Text)),
            else_=func.substr(column, 1, func.length(column) - 1) + bindparam("tail", type_=Text),
        )

    values: dict[str, Any] = {
        "agents_seen_json": added(col(Link.agents_seen_json)),
        "updated_at": bindparam("now", type_=Float),
    }
    if not seen_only:
        values["agents_json"] = added(col(Link.agents_json))
    return (
        update(Link)
        .where(
            col(Link.group_id) == bindparam("group", type_=Text),
            col(Link.requester_id) != bindparam("user", type_=Text),
        )
        .values(**values)
    )
