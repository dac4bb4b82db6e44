"""The agent console: one chat page served by the bridge, opened from Zendesk, Salesforce and the sandbox."""
