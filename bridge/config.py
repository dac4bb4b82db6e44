"""One typed Settings object, read from the environment and `.env`, validated once at start.

`Settings` holds the core's variables (IM_*, BRIDGE_*); each installed connector has its own settings class under its
own prefix (ZENDESK_*, SALESFORCE_*, ...). `load_settings` builds them all, decides once which connectors are
enabled, and checks what spans them (the default connector, agent account prefixes, placeholder secrets)."""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connectors.base import ConnectorSettings, load_connector_classes

DEFAULT_GREETING = "We're assigning an agent to your subject, please wait..."
DEFAULT_GROUP_NAME = "Support ticket {ticketId}"
GROUP_NAME_FIELDS = ("ticketId", "subject")
# Values people paste from examples; refused as secrets outside the sandbox.
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "xxx", "your-secret", "todo", "test"}
S = TypeVar("S", bound=BaseSettings)
C = TypeVar("C", bound=ConnectorSettings)


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


def readable_file(value: str | None) -> str | None:
    """A path read now, so a wrong one stops the start rather than the first use; the content is not shown."""
    if value is not None:
        try:
            Path(value).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot be read: {value}: {exc.strerror or type(exc).__name__}") from None
    return value


def is_placeholder(secret: SecretStr | None) -> bool:
    return secret is not None and secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS


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
    """The core's part of the contract's configuration table. Field names are the environment variable names.

    The connectors' settings are in `connectors` (every installed connector's) when made by `load_settings`."""

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

    bridge_database_url: str = "sqlite:///./bridge.db"
    bridge_default_connector: str | None = None
    bridge_callout_secret: SecretStr | None = None
    bridge_app_secret: SecretStr | None = None
    bridge_allowed_origins: Annotated[list[str], NoDecode] = []
    bridge_greeting: str = DEFAULT_GREETING
    bridge_group_name: str = DEFAULT_GROUP_NAME
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
    bridge_transcript_linger_seconds: float = Field(
        1.0, ge=0, description="a chat message waits this long for the next ones, to share a comment with them"
    )
    bridge_transcript_batch_messages: int = Field(50, gt=0, description="chat messages in one comment, at most")
    bridge_create_patience_seconds: float = Field(
        20.0, ge=0, description="how long /createticket waits out helpdesk rate limits and blips before a 502"
    )
    bridge_console_session_seconds: int = Field(
        600, ge=30, le=86400, description="an agent console session lasts this long; the open page renews it"
    )
    bridge_console_poll_seconds: float = Field(
        5.0, gt=0, description="the console pulls the group's history this often when IM callbacks do not arrive"
    )

    bridge_agent_name_seconds: float = Field(
        86400.0,
        ge=0,
        description="an agent's name from the helpdesk (their IM Nick) is used this long, then read again",
    )

    _connectors: dict[str, ConnectorSettings] = PrivateAttr(default_factory=dict)
    _enabled: list[str] = PrivateAttr(default_factory=list)

    @field_validator("im_api_base", mode="after")
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

    @field_validator("bridge_database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        return database_url(value)

    @model_validator(mode="after")
    def _complete(self) -> Settings:
        if not self.bridge_sandbox:
            for name in ("im_secret_key", "bridge_callout_secret", "bridge_app_secret", "im_callback_token"):
                if is_placeholder(getattr(self, name)):
                    raise ValueError(f"{name.upper()} is a placeholder value; set a real secret")
        if (
            self.bridge_app_secret is not None
            and self.bridge_callout_secret is not None
            and self.bridge_app_secret.get_secret_value() == self.bridge_callout_secret.get_secret_value()
        ):
            # The bridge tells the two apart by which one signed: the narrow one must not also be the full key.
            raise ValueError("BRIDGE_APP_SECRET must differ from BRIDGE_CALLOUT_SECRET")
        return self

    @property
    def connectors(self) -> dict[str, ConnectorSettings]:
        """Every installed connector's settings, by connector name (enabled or not)."""
        return self._connectors

    @property
    def enabled_connectors(self) -> list[str]:
        """Connectors whose credentials are configured (decided once, by each connector class, in load_settings)."""
        return self._enabled

    @property
    def agent_prefixes(self) -> tuple[str, ...]:
        """Every installed connector's agent account prefix: customer userIds may not start with one."""
        return tuple(connector.agent_prefix for connector in self._connectors.values())

    def group_name(self, ticket_id: str, subject: str) -> str:
        """The IM group's Name from BRIDGE_GROUP_NAME (the IM client cuts it to IM's 30 bytes)."""
        return self.bridge_group_name.format(ticketId=ticket_id, subject=subject)

    @property
    def default_connector(self) -> str | None:
        if self.bridge_default_connector:
            return self.bridge_default_connector
        enabled = self.enabled_connectors
        return enabled[0] if len(enabled) == 1 else None


def load_settings(*, environment: bool = True, **values: Any) -> Settings:
    """The core's and every installed connector's settings from the environment (and `.env`), checked together: one
    ConfigError names each variable that is wrong.

    `values` override the environment, named as the variables are (`im_sdkappid`, `zendesk_url`: a connector's go to
    its settings class by its prefix); `_env_file` and other `_` options go to every class. `environment=False` reads
    nothing but `values` (the sandbox)."""
    classes = load_connector_classes()
    prefixes = {name: str(cls.settings_class.model_config.get("env_prefix")).lower() for name, cls in classes.items()}
    # Each value goes to the class whose prefix it starts with (the longest), unprefixed; the rest to the core's.
    options = {k: v for k, v in values.items() if k.startswith("_")}
    own: dict[str | None, dict[str, Any]] = {None: dict(options), **{name: dict(options) for name in classes}}
    for key, value in values.items():
        if key.startswith("_"):
            continue
        owner = max(
            (n for n, p in prefixes.items() if key.lower().startswith(p)), key=lambda n: len(prefixes[n]), default=None
        )
        own[owner][key[len(prefixes[owner]) :] if owner else key] = value
    problems: list[str] = []
    settings = _build(Settings, own[None], environment, "", problems)
    connectors = {
        name: built
        for name, cls in classes.items()
        if (built := _build(cls.settings_class, own[name], environment, prefixes[name], problems)) is not None
    }
    if settings is None or problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    enabled = sorted(name for name, connector in connectors.items() if classes[name].enabled(connector))
    problems = [*_across(settings, connectors, enabled)]
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    settings._connectors, settings._enabled = connectors, enabled
    return settings


def load_connector_settings(settings_class: type[C]) -> C:
    """One connector's settings alone, from the environment (commands that need nothing else, e.g. `zendesk setup`)."""
    prefix = str(settings_class.model_config.get("env_prefix") or "")
    problems: list[str] = []
    built = _build(settings_class, {}, True, prefix, problems)
    if built is not None:
        problems.extend(_placeholders(built))
    if built is None or problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return built


def _build(cls: type[S], values: dict[str, Any], environment: bool, prefix: str, problems: list[str]) -> S | None:
    try:
        return (cls if environment else _given_only(cls))(**values)
    except ValidationError as exc:
        problems.extend(_problems(exc, prefix))
        return None


@cache
def _given_only(cls: type[S]) -> type[S]:
    """`cls` reading only the values given to it: neither the environment nor `.env` (the sandbox)."""

    def sources(
        _: type[BaseSettings],
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        *a: Any,
        **k: Any,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    return type(cls.__name__, (cls,), {"settings_customise_sources": classmethod(sources)})


def _placeholders(connector: ConnectorSettings) -> list[str]:
    return [
        f"{connector.variable(name)} is a placeholder value; set a real secret"
        for name in connector.chosen_secrets
        if is_placeholder(getattr(connector, name))
    ]


def _across(settings: Settings, connectors: dict[str, ConnectorSettings], enabled: list[str]) -> list[str]:
    """What no single settings class can check."""
    problems = []
    if not settings.bridge_sandbox:
        for connector in connectors.values():
            problems.extend(_placeholders(connector))
    named = [(c.variable("agent_prefix"), c.agent_prefix) for c in connectors.values()]
    for i, (name, prefix) in enumerate(named):
        for other, other_prefix in named[i + 1 :]:
            if prefix.startswith(other_prefix) or other_prefix.startswith(prefix):
                # One account must never read as the agent of two helpdesks.
                problems.append(f"{name} ({prefix!r}) and {other} ({other_prefix!r}) must not overlap")
    if settings.bridge_default_connector and settings.bridge_default_connector not in enabled:
        problems.append(
            f"BRIDGE_DEFAULT_CONNECTOR={settings.bridge_default_connector!r} is not an enabled connector "
            f"(enabled: {', '.join(enabled) or 'none'})"
        )
    return problems


def config_error(exc: ValidationError) -> ConfigError:
    """One ConfigError naming each variable that failed validation."""
    return ConfigError("invalid configuration: " + "; ".join(_problems(exc)))


def _problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """A sentence per failed field, naming its variable (`prefix` and the field's name)."""
    problems = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper()
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "is required"
        problems.append(f"{prefix.upper()}{name} {message}" if name else message)
    return problems
