"""The service's answers that store nothing: who may be a customer, UserSigs, readiness, links, metrics. A base of
Bridge (bridge/service.py), kept apart so each module stays a size a reader takes in."""

from __future__ import annotations

import time

from bridge import auth, ids
from bridge.config import Settings
from bridge.errors import BadRequest, Forbidden, NotFound
from bridge.jobs import JobQueue
from bridge.metrics import Metrics
from bridge.outcomes import IssuedUserSig
from bridge.store import Database, Link


class Lookups:
    settings: Settings
    db: Database
    queue: JobQueue
    metrics: Metrics

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
