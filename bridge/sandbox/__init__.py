"""Built-in emulators of Tencent IM, Salesforce and Zendesk, and the `sandbox` command that runs them."""
