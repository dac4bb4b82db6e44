"""An emulator of the parts of the Zendesk Support API the bridge uses, as a real HTTP server (Starlette).

Shapes follow Zendesk's public API reference, one module per resource: tickets.py (requests, tickets with audits,
ticket comments), users.py, webhooks.py (with signing secrets, and the signed deliveries), triggers.py (and how a
ticket change runs them), apps.py (the installed app with signed URLs), and app.py (`create_app`, authentication,
rate limits, control routes); core.py holds the state, the error bodies and the helpers they share.

Deliberate fidelity points (each one a trap for a client that guesses):
- ticket responses carry `requester_id`, never a `requester` object;
- `{{ticket.status}}` renders the way Zendesk's placeholder does, capitalised (`Open`, `Solved`);
- a closed ticket cannot be updated (422); a comment on a solved ticket reopens it; assigning a new
  ticket opens it;
- `Idempotency-Key` on ticket creation (`POST /tickets`): a replay answers the first response with
  `x-idempotency-lookup: hit`, a different body with the same key answers 400 `IdempotentRequestError`; the
  Requests API ignores the key (Zendesk documents it for ticket creation only);
- the Requests API is the end user's view: its requester is the caller, and a `requester` object is honoured
  only on an anonymous request (no credentials), as "Creating anonymous requests" documents. The Tickets API
  takes `requester_id` or `requester: {name, email}` (resolved by email);
- users carry `external_id`, unique per account and matched without regard to case; an email another user
  has is a 422 `DuplicateValue`; `create_or_update` matches an existing user by external_id or email.
"""

from bridge.sandbox.zendesk.app import create_app

__all__ = ["create_app"]
