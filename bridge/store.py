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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Column, Executable, Index, Text, UniqueConstraint, delete, event, insert, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.states import JobStatus, LinkState


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
        return list(json.loads(self.agents_json))

    @agents.setter
    def agents(self, value: list[str]) -> None:
        self.agents_json = json.dumps(sorted(set(value)))

    @property
    def agents_seen(self) -> list[str]:
        return list(json.loads(self.agents_seen_json))

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

    __table_args__ = (Index("ix_job_claim", "status", "next_attempt_at"),)  # the worker's claim query

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)  # a JobKind
    key: str = Field(max_length=300, unique=True)
    ordering_key: str | None = Field(default=None, max_length=128, index=True)
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
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
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

    async def keep_answer(self, signature: str, status: int, response_json: str) -> None:
        """Store the answer given to the call that claimed `signature`: its retries get it again."""
        async with self.session() as s:
            await s.exec(  # type: ignore[call-overload]
                update(SeenSignature)
                .where(col(SeenSignature.signature) == signature)
                .values(status=status, response_json=response_json)
            )

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
