"""The built-in Salesforce connector (simple-salesforce behind `connectors.base.Connector`).

Modules: `connector` (the protocol methods), `client` (one login per process, one re-login on expiry),
`transport` (reaching any login host over https or http), `errors` (the exception table).
"""

from __future__ import annotations

from connectors.salesforce.connector import REQUEST_KEY_FIELD, SalesforceConnector, canonical_id

__all__ = ["REQUEST_KEY_FIELD", "SalesforceConnector", "canonical_id"]
