"""The built-in Salesforce connector (simple-salesforce behind `connectors.base.Connector`).

Modules: `connector` (the protocol methods), `settings` (SALESFORCE_*), `ids` (15- and 18-character Ids), `events`
(`POST /salesforce/events`, what the apex/ package sends), `client` (one login per process, one re-login on expiry),
`transport` (reaching any login host over https or http), `errors` (the exception table).
"""

from __future__ import annotations

from connectors.salesforce.connector import REQUEST_KEY_FIELD, SalesforceConnector
from connectors.salesforce.ids import canonical_id

__all__ = ["REQUEST_KEY_FIELD", "SalesforceConnector", "canonical_id"]
