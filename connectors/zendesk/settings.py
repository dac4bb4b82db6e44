"""ZENDESK_*: the account, the webhook's signing secret, the ticket-sidebar app and the bridge's budget of calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from bridge.api import ConnectorSettings, base_url, readable_file


class ZendeskSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="ZENDESK_")
    chosen_secrets = ("webhook_secret",)

    url: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    # The agent console's Zendesk app (connectors/zendesk/app): its signed-URL JWTs are checked against these.
    app_public_key: str | None = Field(None, description="the app's public key (PEM), or use the _FILE form")
    app_public_key_file: str | None = None
    app_installation_id: str | None = Field(None, pattern=r"^[0-9]{1,20}$")
    app_sdk_url: str = "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"
    agent_prefix: str = "zd_"
    rate_limit: int = Field(700, ge=0, description="Zendesk calls per minute (0: no limit of our own)")
    # The Update Ticket endpoint's own limits (Zendesk's "Rate limits" page): 30 updates per 10 minutes per user per
    # ticket, which the transcript's pace keeps to, and 100 updates a minute per account, which each call waits for.
    ticket_updates: int = Field(30, ge=0, description="updates of one ticket per window (0: no limit of our own)")
    ticket_update_window: float = Field(600.0, gt=0, description="seconds of that window")
    update_rate_limit: int = Field(100, ge=0, description="ticket updates a minute per account (0: no limit)")

    @field_validator("url", mode="after")
    @classmethod
    def _url(cls, value: str | None, info: Any) -> str | None:
        return base_url(cls.variable(info.field_name), value)

    @field_validator("app_public_key_file")
    @classmethod
    def _app_key_file(cls, value: str | None) -> str | None:
        return readable_file(value)

    @model_validator(mode="after")
    def _complete(self) -> ZendeskSettings:
        account = {"ZENDESK_URL": self.url, "ZENDESK_EMAIL": self.email, "ZENDESK_API_TOKEN": self.api_token}
        if any(account.values()) and not all(account.values()):
            missing = ", ".join(k for k, v in account.items() if not v)
            raise ValueError(
                f"{missing} must be set too: Zendesk needs ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN"
            )
        return self

    @property
    def complete(self) -> bool:
        """The account is set: the connector is enabled."""
        return bool(self.url and self.email and self.api_token)

    @property
    def app_key(self) -> str | None:
        """The Zendesk app's public key (PEM), from ZENDESK_APP_PUBLIC_KEY or its file."""
        if self.app_public_key_file:
            return Path(self.app_public_key_file).read_text()
        return self.app_public_key
