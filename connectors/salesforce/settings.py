"""SALESFORCE_*: the org's login (username-password, OAuth client credentials or JWT bearer), the API version, the
agents' IM account prefix and the bridge's budget of calls."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from bridge.api import ConnectorSettings, base_url, readable_file


class SalesforceSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="SALESFORCE_")

    login_url: str = "https://login.salesforce.com"
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    consumer_key: str | None = None
    consumer_secret: SecretStr | None = None
    private_key_file: str | None = None
    api_version: str = "62.0"
    agent_prefix: str = "sf_"
    rate_limit: int = Field(0, ge=0, description="Salesforce calls per minute (0: no limit of our own)")

    @field_validator("login_url", mode="after")
    @classmethod
    def _url(cls, value: str | None, info: Any) -> str | None:
        return base_url(cls.variable(info.field_name), value)

    @field_validator("private_key_file")
    @classmethod
    def _key_file(cls, value: str | None) -> str | None:
        # Read now so a wrong path stops the start, not the first Salesforce login.
        return readable_file(value)

    @model_validator(mode="after")
    def _complete(self) -> SalesforceSettings:
        jwt_login = self.consumer_key and self.private_key_file
        if self.username and not self.password and not jwt_login:
            raise ValueError(
                "SALESFORCE_PASSWORD is required with SALESFORCE_USERNAME "
                "(or SALESFORCE_CONSUMER_KEY and SALESFORCE_PRIVATE_KEY_FILE for JWT login)"
            )
        if self.consumer_key and not (self.consumer_secret or self.private_key_file or self.username):
            raise ValueError(
                "SALESFORCE_CONSUMER_SECRET or SALESFORCE_PRIVATE_KEY_FILE is required with SALESFORCE_CONSUMER_KEY"
            )
        return self
