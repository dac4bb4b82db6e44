"""The Update Ticket endpoint's own limits (`PUT /api/v2/tickets/{id}`), as Zendesk's "Rate limits" page gives them:

- 30 updates per 10 minutes per user per ticket (counted for the user who makes the call, over a sliding window);
- 100 updates a minute per account (the endpoint's limit, apart from the plan's budget of all calls).

An update over either answers 429 with `Retry-After` (whole seconds until the oldest update in the window leaves it).
The per-ticket body is the one Zendesk's "Best practices for avoiding rate limiting" shows, `text/html`; Zendesk
documents no body for the per-account limit, which answers the plan limit's words. Updates refused with 429 are not
counted. `scale` shortens both windows for tests (`create_app(update_window_scale=...)`, or
`POST /_emulator/update_limits`); the counts stay Zendesk's unless set there too.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from bridge.sandbox.zendesk.core import ApiError

PER_TICKET = 30  # updates per user per ticket ...
TICKET_WINDOW = 600.0  # ... per 10 minutes
PER_MINUTE = 100  # updates per account ...
ACCOUNT_WINDOW = 60.0  # ... per minute
TICKET_LIMITED = "Rate limit for ticket updates exceeded, please wait before updating this ticket again"
ACCOUNT_LIMITED = "Number of allowed API requests per minute exceeded"


def _retry_after(oldest: float, window: float, moment: float) -> int:
    return max(1, math.ceil(oldest + window - moment))


class UpdateLimits:
    """Counts ticket updates per (user, ticket) and per account over sliding windows; `check` raises Zendesk's 429."""

    def __init__(self, scale: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.default_scale = scale
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.configure({"scale": self.default_scale})

    def configure(self, data: dict[str, Any]) -> dict[str, Any]:
        """Set the limits (`per_ticket`, `per_minute`: 0 turns one off) and their windows (`scale`, or `ticket_window`
        and `account_window` in seconds); the counts start afresh."""
        scale = float(data.get("scale", 1.0))
        self.per_ticket = int(data.get("per_ticket", PER_TICKET))
        self.per_minute = int(data.get("per_minute", PER_MINUTE))
        self.ticket_window = float(data.get("ticket_window", TICKET_WINDOW * scale))
        self.account_window = float(data.get("account_window", ACCOUNT_WINDOW * scale))
        self.by_ticket: defaultdict[tuple[int, int], deque[float]] = defaultdict(deque)
        self.account: deque[float] = deque()
        return self.describe()

    def describe(self) -> dict[str, Any]:
        return {
            "per_ticket": self.per_ticket,
            "ticket_window": self.ticket_window,
            "per_minute": self.per_minute,
            "account_window": self.account_window,
        }

    def check(self, user_id: int, ticket_id: int) -> None:
        """Count one update of `ticket_id` by `user_id`, or raise the 429 Zendesk answers."""
        moment = self.clock()
        mine = self.by_ticket[(user_id, ticket_id)]
        for calls, window in ((mine, self.ticket_window), (self.account, self.account_window)):
            while calls and calls[0] <= moment - window:
                calls.popleft()
        if self.per_ticket and len(mine) >= self.per_ticket:
            wait = _retry_after(mine[0], self.ticket_window, moment)
            raise ApiError(429, {}, headers={"Retry-After": str(wait)}, text=TICKET_LIMITED, media_type="text/html")
        if self.per_minute and len(self.account) >= self.per_minute:
            wait = _retry_after(self.account[0], self.account_window, moment)
            raise ApiError(429, {}, headers={"Retry-After": str(wait)}, text=ACCOUNT_LIMITED)
        mine.append(moment)
        self.account.append(moment)
