"""An emulator of the Salesforce APIs the bridge uses, served over real HTTP (Starlette).

Built from Salesforce's public documentation, and shaped by what simple-salesforce sends and parses, one module per
API: auth.py (SOAP `login()` and OAuth 2.0 tokens), sobjects.py (Case, CaseComment, User, Group), query.py (a tiny
SOQL), and app.py (`create_app`, the REST entry with sessions and the daily API limit, the request log, control
routes); core.py holds the org's state, Ids, sessions and error answers.
"""

from bridge.sandbox.salesforce.app import create_app

__all__ = ["create_app"]
