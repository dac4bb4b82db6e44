"""Helpdesk Bridge: customers chat in Tencent Cloud IM with the agent who owns their helpdesk ticket."""

__version__ = "0.1.0"
