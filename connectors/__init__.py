"""Helpdesk connectors: plugins found through the entry-point group `helpdesk_bridge.connectors`."""
