"""One typed Settings object, read from the environment and `.env`, validated once at start."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_GREETING = "We're assigning an agent to your subject, please wait..."
DEFAULT_GROUP_NAME = "Support ticket {ticketId}"
GROUP_NAME_FIELDS = ("ticketId", "subject")
# Agents' IM account prefixes: characters IM UserIDs (and the bridge's userId rule) allow, short enough that a prefix
# and an 18-character Salesforce Id or a 20-digit Zendesk id stay within IM's 32 bytes.
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,12}$")
# Values people paste from examples; refused as secrets outside the sandbox.
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "xxx", "your-secret", "todo", "test"}


class ConfigError(Exception):
    """The configuration cannot start the service; the message names the variable."""


def base_url(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not echoed whole: a URL can carry a password.
        raise ValueError(f"must be an http:// or https:// URL with a host (this one's scheme: {parts.scheme!r})")
    return value


def database_url(value: str) -> str:
    # Never echo the value: it may carry the database password.
    try:
        backend = make_url(value).get_backend_name()
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ValueError("is not a database URL: use sqlite:///PATH or postgresql+psycopg://...") from None
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"names the {backend!r} backend: use sqlite:///PATH or postgresql+psycopg://...")
    return value


class Settings(BaseSettings):
    """The contract's configuration table. Field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
        env_ignore_empty=True,
    )

    im_sdkappid: int = Field(gt=0)
    im_secret_key: SecretStr
    im_admin_userid: str = "administrator"
    im_api_base: str = "https://console.tim.qq.com"
    im_callback_token: SecretStr | None = None
    im_rate_limit: int = Field(200, gt=0, description="IM calls per second per command")
    im_timeout: float = Field(10.0, gt=0, description="IM answers in 3 s server side; give it room")

    salesforce_login_url: str = "https://login.salesforce.com"
    salesforce_username: str | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_consumer_key: str | None = None
    salesforce_consumer_secret: SecretStr | None = None
    salesforce_private_key_file: str | None = None
    salesforce_api_version: str = "62.0"

    zendesk_url: str | None = None
    zendesk_email: str | None = None
    zendesk_api_token: SecretStr | None = None
    zendesk_webhook_secret: SecretStr | None = None
    # The agent console's Zendesk app (connectors/zendesk/app): its signed-URL JWTs are checked against these.
    zendesk_app_public_key: str | None = Field(None, description="the app's public key (PEM), or use the _FILE form")
    zendesk_app_public_key_file: str | None = None
    zendesk_app_installation_id: str | None = Field(None, pattern=r"^[0-9]{1,20}$")
    zendesk_app_sdk_url: str = "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"

    bridge_database_url: str = "sqlite:///./bridge.db"
    bridge_default_connector: str | None = None
    bridge_callout_secret: SecretStr | None = None
    bridge_app_secret: SecretStr | None = None
    bridge_allowed_origins: Annotated[list[str], NoDecode] = []
    bridge_greeting: str = DEFAULT_GREETING
    bridge_group_name: str = DEFAULT_GROUP_NAME
    zendesk_agent_prefix: str = "zd_"
    salesforce_agent_prefix: str = "sf_"
    bridge_host: str = "127.0.0.1"
    bridge_port: int = Field(8000, gt=0, lt=65536, validation_alias=AliasChoices("bridge_port", "port"))
    bridge_max_header_bytes: int = Field(32 * 1024, ge=1024, description="request line and headers, at most")
    bridge_header_timeout_seconds: float = Field(10.0, gt=0, description="a request head must arrive within this")
    bridge_idle_timeout_seconds: float = Field(
        65.0, gt=0, description="a connection without a request is closed after this (longer than a balancer's 60 s)"
    )
    bridge_max_connections: int = Field(1000, gt=0, description="open connections; past it the longest idle is closed")
    bridge_insecure_no_auth: bool = False
    bridge_sandbox: bool = False
    bridge_helpdesk_threads: int = Field(
        200,
        gt=0,
        description="worker threads for the blocking helpdesk clients; also createticket requests worked on at once",
    )
    bridge_create_per_user: int = Field(
        5, gt=0, description="createticket requests one end user may have open at once (per process); more get 429"
    )
    bridge_job_retry_scale: float = Field(1.0, gt=0, description="multiplies the retry schedule (tests shrink it)")
    bridge_job_lease_seconds: float = Field(
        60.0, gt=0, description="a running job renews its lease; one not renewed this long is taken again"
    )
    bridge_create_patience_seconds: float = Field(
        20.0, ge=0, description="how long /createticket waits out helpdesk rate limits and blips before a 502"
    )
    zendesk_rate_limit: int = Field(700, ge=0, description="Zendesk calls per minute (0: no limit of our own)")
    salesforce_rate_limit: int = Field(0, ge=0, description="Salesforce calls per minute (0: no limit of our own)")
    bridge_console_session_seconds: int = Field(
        600, ge=30, le=86400, description="an agent console session lasts this long; the open page renews it"
    )
    bridge_console_poll_seconds: float = Field(
        5.0, gt=0, description="the console pulls the group's history this often when IM callbacks do not arrive"
    )

    @field_validator("im_api_base", "salesforce_login_url", "zendesk_url", mode="after")
    @classmethod
    def _urls(cls, value: str | None, info: Any) -> str | None:
        return base_url(info.field_name.upper(), value)

    @field_validator("bridge_allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("im_admin_userid")
    @classmethod
    def _admin(cls, value: str) -> str:
        if not value or len(value.encode()) > 32:
            raise ValueError("must be 1 to 32 bytes")
        return value

    @field_validator("bridge_group_name")
    @classmethod
    def _group_name(cls, value: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
            unknown = sorted(fields - set(GROUP_NAME_FIELDS))
            if not unknown:
                value.format(ticketId="1", subject="s")  # what parse() does not check: specs, conversions
        except (ValueError, KeyError, IndexError) as exc:
            raise ValueError(f"is not a valid template ({exc}); use {{ticketId}} and {{subject}}") from None
        if unknown:
            raise ValueError(f"may use {{ticketId}} and {{subject}} only, not {', '.join(repr(u) for u in unknown)}")
        return value

    @field_validator("zendesk_agent_prefix", "salesforce_agent_prefix")
    @classmethod
    def _agent_prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError("must be 1 to 12 letters, digits, '_' or '-'")
        return value

    @field_validator("bridge_database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        return database_url(value)

    @field_validator("salesforce_private_key_file")
    @classmethod
    def _key_file(cls, value: str | None) -> str | None:
        # Read now so a wrong path stops the start, not the first Salesforce login; the content is not shown.
        if value is not None:
            try:
                Path(value).read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot be read: {value}: {exc.strerror or type(exc).__name__}") from None
        return value

    @field_validator("zendesk_app_public_key_file")
    @classmethod
    def _app_key_file(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Path(value).read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot be read: {value}: {exc.strerror or type(exc).__name__}") from None
        return value

    @property
    def zendesk_app_key(self) -> str | None:
        """The Zendesk app's public key (PEM), from ZENDESK_APP_PUBLIC_KEY or its file."""
        if self.zendesk_app_public_key_file:
            return Path(self.zendesk_app_public_key_file).read_text()
        return self.zendesk_app_public_key

    @model_validator(mode="after")
    def _complete(self) -> Settings:
        jwt_login = self.salesforce_consumer_key and self.salesforce_private_key_file
        if self.salesforce_username and not self.salesforce_password and not jwt_login:
            raise ValueError(
                "SALESFORCE_PASSWORD is required with SALESFORCE_USERNAME "
                "(or SALESFORCE_CONSUMER_KEY and SALESFORCE_PRIVATE_KEY_FILE for JWT login)"
            )
        if self.salesforce_consumer_key and not (
            self.salesforce_consumer_secret or self.salesforce_private_key_file or self.salesforce_username
        ):
            raise ValueError(
                "SALESFORCE_CONSUMER_SECRET or SALESFORCE_PRIVATE_KEY_FILE is required with SALESFORCE_CONSUMER_KEY"
            )
        zendesk = {
            "ZENDESK_URL": self.zendesk_url,
            "ZENDESK_EMAIL": self.zendesk_email,
            "ZENDESK_API_TOKEN": self.zendesk_api_token,
        }
        if any(zendesk.values()) and not all(zendesk.values()):
            missing = ", ".join(k for k, v in zendesk.items() if not v)
            raise ValueError(
                f"{missing} must be set too: Zendesk needs ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN"
            )
        if not self.bridge_sandbox:
            for name in (
                "im_secret_key",
                "bridge_callout_secret",
                "bridge_app_secret",
                "zendesk_webhook_secret",
                "im_callback_token",
            ):
                secret = getattr(self, name)
                if secret is not None and secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name.upper()} is a placeholder value; set a real secret")
        if (
            self.bridge_app_secret is not None
            and self.bridge_callout_secret is not None
            and self.bridge_app_secret.get_secret_value() == self.bridge_callout_secret.get_secret_value()
        ):
            # The bridge tells the two apart by which one signed: the narrow one must not also be the full key.
            raise ValueError("BRIDGE_APP_SECRET must differ from BRIDGE_CALLOUT_SECRET")
        zd, sf = self.zendesk_agent_prefix, self.salesforce_agent_prefix
        if zd.startswith(sf) or sf.startswith(zd):
            # One account must never read as both a Zendesk and a Salesforce agent.
            raise ValueError(f"ZENDESK_AGENT_PREFIX ({zd!r}) and SALESFORCE_AGENT_PREFIX ({sf!r}) must not overlap")
        if self.bridge_default_connector and self.bridge_default_connector not in self.enabled_connectors:
            raise ValueError(
                f"BRIDGE_DEFAULT_CONNECTOR={self.bridge_default_connector!r} is not an enabled connector "
                f"(enabled: {', '.join(self.enabled_connectors) or 'none'})"
            )
        return self

    @property
    def enabled_connectors(self) -> list[str]:
        """Built-in connectors whose credentials are configured."""
        enabled = []
        if self.salesforce_username or self.salesforce_consumer_key:
            enabled.append("salesforce")
        if self.zendesk_url:
            enabled.append("zendesk")
        return enabled

    @property
    def agent_prefixes(self) -> tuple[str, ...]:
        """Every agent account prefix: customer userIds may not start with one."""
        return (self.zendesk_agent_prefix, self.salesforce_agent_prefix)

    def group_name(self, ticket_id: str, subject: str) -> str:
        """The IM group's Name from BRIDGE_GROUP_NAME (the IM client cuts it to IM's 30 bytes)."""
        return self.bridge_group_name.format(ticketId=ticket_id, subject=subject)

    @property
    def default_connector(self) -> str | None:
        if self.bridge_default_connector:
            return self.bridge_default_connector
        enabled = self.enabled_connectors
        return enabled[0] if len(enabled) == 1 else None


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment (and `.env`), turning validation errors into one ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise config_error(exc) from None


def config_error(exc: ValidationError) -> ConfigError:
    """One ConfigError naming each variable that failed validation."""
    problems = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper()
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "is required"
        problems.append(f"{name} {message}" if name else message)
    return ConfigError("invalid configuration: " + "; ".join(problems))
