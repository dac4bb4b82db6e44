"""An emulator of the Salesforce APIs the bridge uses, served over real HTTP (Starlette).

Built from Salesforce's public documentation, and shaped by what simple-salesforce sends and parses, one module per
API: auth.py (SOAP `login()` and OAuth 2.0 tokens), sobjects.py (Case, CaseComment, User, Group), query.py (a tiny
SOQL, with `CreatedBy.<User field>`), and app.py (`create_app`, the REST entry with sessions and the daily API limit,
the request log, control routes); core.py holds the org's state, Ids, sessions and error answers.

The org has an integration user (the `username` given to `create_app`, whom every login of those credentials is)
and two agents, Alice Agent and Bob Agent (`/_emulator/state`: `api_user_id`, `agent_ids`). To write as an agent,
as Salesforce records it, open a session of that agent with `POST /_emulator/sessions {"userId": "005..."}` and use
its `access_token` with the REST API: a CaseComment inserted so has the agent as `CreatedById`. Who a session
belongs to is in the SOAP login's `<userId>`, the OAuth answer's `id` and the REST resource list's `identity`.
"""

from bridge.sandbox.salesforce.app import create_app

__all__ = ["create_app"]
