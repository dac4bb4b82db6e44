"""Agents' IM accounts carry their helpdesk display name as `Nick` (Zendesk user `name`, Salesforce `User.Name`), so
the customer sees who answers rather than an account like `zd_90210`.

The name is read from the helpdesk through the connector's optional `user_name`, stored with when it was read, and
read again only once that is older than BRIDGE_AGENT_NAME_SECONDS (a day): a busy agent joining many groups costs
the helpdesk one call a day. A helpdesk that cannot answer never holds up a join: the account is imported without a
new name, and a job asks again later. A name that changed is written with `portrait_set`, since Tencent documents
`account_import` as creating an account, not as updating one that exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.errors import BridgeError
from bridge.payloads import AgentName

if TYPE_CHECKING:
    from bridge.config import Settings
    from bridge.im import IMClient
    from bridge.store import Database
    from connectors.base import Connector

log = logging.getLogger(__name__)

RETRY_BUCKET_SECONDS = 3600  # at most one retry job per agent this often while the helpdesk keeps failing


class AgentNames:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        im: IMClient,
        connectors: dict[str, Connector],
        enqueue: Callable[..., Any],
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.db = db
        self.im = im
        self.connectors = connectors
        self.enqueue = enqueue  # Bridge.enqueue (a payload and its key): the retry when a helpdesk fails to answer
        self.clock = clock  # wall-clock seconds, as stored in read_at

    def helpdesk_user(self, provider: str, account: str) -> str | None:
        """The helpdesk user id behind an agent's IM account (`<prefix><user id>`), None for any other account."""
        connector, own = self.connectors.get(provider), self.settings.connectors.get(provider)
        if connector is None or own is None or not account.startswith(own.agent_prefix):
            return None
        user_id = account[len(own.agent_prefix) :]
        return user_id if connector.agent_id(user_id) == account else None

    async def import_agent(self, provider: str, account: str) -> str | None:
        """Make sure an agent's IM account exists, its Nick the name the helpdesk gives the agent; return that name
        (None when unknown). Never fails because the helpdesk did: the name is then asked for again later; IM's
        errors are raised (the caller's job retries)."""
        return await self._import(provider, account, strict=False)

    async def keep_fresh(self, provider: str, account: str) -> None:
        """For an agent who stays in a group: once their name is stale, read it again and update the Nick; until
        then nothing is done (one database read)."""
        await self._import(provider, account, strict=False, stale_only=True)

    async def refresh(self, payload: AgentName) -> dict[str, Any]:
        """The retry job: ask the helpdesk again (its failure retries the job on the queue's schedule)."""
        name = await self._import(payload.provider, payload.account, strict=True)
        return {"name": name}

    async def _import(self, provider: str, account: str, strict: bool, stale_only: bool = False) -> str | None:
        now = self.clock()
        known = await self.db.agent_name(account)
        if known is not None and now - known.read_at < self.settings.bridge_agent_name_seconds:
            if not stale_only:
                await self.im.import_account(account, nick=known.name or None)
            return known.name or None
        name = await self._read(provider, account, strict)
        if name is None:  # the helpdesk did not answer: keep what IM has, ask again later
            await self.im.import_account(account, nick=known.name if known else None)
            bucket = int(now // RETRY_BUCKET_SECONDS)
            await self.enqueue(AgentName(provider=provider, account=account), key=f"agent_name:{account}:{bucket}")
            return (known.name or None) if known else None
        await self.im.import_account(account, nick=name or None)
        if name and (known is None or known.name != name):
            await self.im.set_nick(account, name)
        await self.db.keep_agent_name(account, name, now)
        return name or None

    async def _read(self, provider: str, account: str, strict: bool) -> str | None:
        """The helpdesk's name for the agent ("" when it has none); None when it failed to answer."""
        user_id = self.helpdesk_user(provider, account)
        name_of = getattr(self.connectors.get(provider), "user_name", None)  # optional in the connector protocol
        if user_id is None or name_of is None:
            return ""
        try:
            return str(await name_of(user_id) or "").strip()
        except BridgeError as exc:
            if strict:
                raise
            log.warning("%s did not give the name of agent %s (asked again later): %s", provider, account, exc)
            return None
