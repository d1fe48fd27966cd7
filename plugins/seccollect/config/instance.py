"""Typed schema of a connector instance file (one YAML file = one instance = one DAG).

The schema is the contract a data engineer edits by hand, so every field has a default that makes
sense, unknown keys are rejected (a typo must not silently fall back to a default), and anything that
looks like a secret is refused before validation: secrets live only in Airflow connections.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from seccollect.registry import ContentType

# ASCII only, no spaces: the guides forbid multibyte names, and the name ends up in a dag_id, task
# logs, staging paths and warehouse rows.
_ASCII_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

#: Where an instance built in code (not read from a file) and given no start_date begins.
DEFAULT_START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


def check_ascii_name(value: str, what: str) -> str:
    if not value.isascii():
        raise ValueError(f"{what} must be ASCII only (multibyte characters are not accepted)")
    if not _ASCII_NAME.match(value):
        raise ValueError(
            f"{what} {value!r} may contain only letters, digits, '-', '_' and '.', start with a letter or "
            "digit, and be at most 63 characters"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class NotifySettings(_Strict):
    """Who hears about an instance's failures, coverage gaps and silence (Airflow notifiers).

    The servers and their credentials live in Airflow connections, never here: ``smtp_conn_id`` names an
    ``smtp`` connection (host, port, login, ``from_email`` in its extra) and ``http_conn_id`` an ``http``
    connection whose URL receives a JSON POST (a Slack or Teams incoming webhook, or any receiver: its
    ``text`` field holds the whole message).
    """

    smtp_conn_id: str | None = Field(default=None, description="Airflow SMTP connection that sends the mail.")
    to: tuple[str, ...] = Field(default=(), description="Mail recipients (with smtp_conn_id).")
    from_email: str | None = Field(default=None, description="Sender; default: the SMTP connection's from_email.")
    http_conn_id: str | None = Field(default=None, description="Airflow HTTP connection of a webhook (JSON POST).")
    on_failure: bool = Field(default=True, description="Notify when a task fails after its retries.")
    on_gap: bool = Field(default=True, description="Notify when the coverage check finds uncollected windows.")
    silence_windows: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Notify when this many windows in a row brought no records for a content type that "
        "normally has data (some records in the windows before); unset: no silence check.",
    )

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if not re.fullmatch(r"[^@\s]+@[^@\s]+", a)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _channels(self) -> NotifySettings:
        if self.smtp_conn_id and not self.to:
            raise ValueError("notify: smtp_conn_id needs 'to' (the recipients)")
        if self.to and not self.smtp_conn_id:
            raise ValueError("notify: 'to' needs smtp_conn_id (the Airflow SMTP connection that sends the mail)")
        if not self.smtp_conn_id and not self.http_conn_id:
            raise ValueError("notify: name smtp_conn_id (with 'to') or http_conn_id, or remove the notify section")
        return self


class InstanceBase(_Strict):
    """Settings every connector instance has, whatever its vendor.

    A vendor's model (in its folder) subclasses this, adds a ``type: Literal["<connector type>"]`` field
    and its own settings, and sets the class variables below.
    """

    #: Vendor-specific subclasses set these.
    connector_type: ClassVar[str]
    vendor: ClassVar[str]
    category: ClassVar[str]
    #: Every content type the connector offers, in the order tasks are laid out.
    content_type_specs: ClassVar[tuple[ContentType, ...]]
    #: What an instance that lists no ``content_types`` collects.
    default_content_types: ClassVar[tuple[str, ...]]
    #: Content types collected whether or not the file lists them (e.g. what others depend on).
    required_content_types: ClassVar[tuple[str, ...]] = ()
    default_interval_minutes: ClassVar[int] = 5

    name: str = Field(description="Instance name, ASCII only; part of the dag_id.")
    tenant: str = Field(description="Tenant name, ASCII only; stamped on every record.")
    conn_id: str = Field(description="Airflow connection holding this instance's credentials.")
    interval_minutes: int | None = Field(
        default=None, ge=1, le=1440, description="Collection window length; the DAG's data interval."
    )
    start_date: datetime | None = Field(
        default=None,
        description="The first window the DAG collects (the scheduler never goes further back); default: the "
        "hour the instance file was last written, so a new instance collects from when it was added.",
    )
    content_types: tuple[str, ...] | None = Field(default=None, description="What to collect.")
    verify_ssl: bool = Field(default=True, description="Verify TLS certificates; disabling logs a warning.")
    proxy: str | None = Field(
        default=None,
        description="Optional HTTP(S) proxy URL for vendor calls, without credentials (a proxy that needs a "
        "password belongs in the connection's extra 'proxy').",
    )
    retries: int = Field(
        default=10, ge=0, le=30, description="Airflow task retries; the default spans a vendor outage of ~5 hours."
    )
    retry_delay_seconds: int = Field(default=60, ge=1, description="First retry delay; doubles each try.")
    max_retry_delay_minutes: int = Field(default=60, ge=1, description="Cap for the exponential backoff.")
    max_active_runs: int = Field(default=4, ge=1, le=64, description="Concurrent runs (backfills).")
    catchup: bool = Field(
        default=True,
        description="Let the scheduler run the windows it missed (an outage of the scheduler) by itself, "
        "paced by max_active_runs and never before start_date or beyond the vendor's retention.",
    )
    enabled: bool = Field(default=True, description="A disabled instance produces no DAG.")
    notify: NotifySettings | None = Field(
        default=None, description="Who is told about failures, coverage gaps and silence (none by default)."
    )
    warehouse_conn_id: str = Field(
        default="seccollect_warehouse", description="Airflow connection of the warehouse (duckdb or postgres)."
    )
    load_pool: str = Field(
        default="warehouse_loads",
        description="Airflow pool load tasks run in; one slot serialises DuckDB's single writer.",
    )
    task_timeout_minutes: int | None = Field(
        default=None,
        ge=1,
        le=7 * 24 * 60,
        description="execution_timeout of every task; default 4 intervals, at least 60 and at most 1440 min.",
    )

    #: When the instance file was last written (set by the loader); the default start.
    _file_time: datetime | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name_ascii(cls, value: str) -> str:
        return check_ascii_name(value, "name")

    @field_validator("tenant")
    @classmethod
    def _tenant_ascii(cls, value: str) -> str:
        return check_ascii_name(value, "tenant")

    @field_validator("start_date")
    @classmethod
    def _start_date_utc(cls, value: datetime | None) -> datetime | None:
        # A naive date would be read in the deployment's default timezone; windows are UTC everywhere.
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("proxy")
    @classmethod
    def _proxy_without_credentials(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            # Never echo the value: it holds the credential.
            raise ValueError(
                "the proxy URL holds credentials, and instance files must not hold secrets; set 'proxy' "
                "(with its user and password) in the extra of the Airflow connection named by conn_id "
                "and remove it here"
            )
        if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
            raise ValueError("proxy must be a URL such as http://proxy.example.com:3128")
        return value

    @model_validator(mode="after")
    def _content_types_allowed(self) -> InstanceBase:
        chosen = self.content_types if self.content_types is not None else self.default_content_types
        unknown = [c for c in chosen if c not in self.allowed_content_types]
        if unknown:
            raise ValueError(
                f"content_types: {', '.join(map(repr, unknown))} not allowed for {self.connector_type}; "
                f"choose from {', '.join(self.allowed_content_types)}"
            )
        if not chosen:
            raise ValueError("content_types: choose at least one")
        if len(set(chosen)) != len(chosen):
            raise ValueError("content_types: each content type may be listed once")
        return self

    # --- derived settings -------------------------------------------------------------------------

    @property
    def dag_id(self) -> str:
        """``<tenant>-<type>-<name>``: the guides' ``tenantname-connectortype`` convention plus the name."""
        return f"{self.tenant}-{self.connector_type}-{self.name}".lower()

    @property
    def start(self) -> datetime:
        """The first window's start: ``start_date``, else the hour the file was last written."""
        if self.start_date is not None:
            return self.start_date
        if self._file_time is not None:
            return self._file_time.replace(minute=0, second=0, microsecond=0)
        return DEFAULT_START_DATE

    def with_file_time(self, moment: datetime) -> InstanceBase:
        """This instance, knowing when its file was last written (see :attr:`start`)."""
        self._file_time = moment.astimezone(UTC)
        return self

    @property
    def interval(self) -> int:
        return self.interval_minutes or self.default_interval_minutes

    @property
    def allowed_content_types(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.content_type_specs)

    @property
    def selected_content_types(self) -> tuple[str, ...]:
        """Content types in a stable order (the Grid view keeps task order); required ones included."""
        chosen = self.content_types if self.content_types is not None else self.default_content_types
        return tuple(c for c in self.allowed_content_types if c in chosen or c in self.required_content_types)

    @property
    def task_timeout(self) -> timedelta:
        """``execution_timeout`` of every task of the instance: nothing runs for ever."""
        if self.task_timeout_minutes is not None:
            return timedelta(minutes=self.task_timeout_minutes)
        return timedelta(minutes=min(max(60, 4 * self.interval), 1440))

    # --- content types ------------------------------------------------------------------------------

    @classmethod
    def content_type(cls, name: str) -> ContentType:
        for spec in cls.content_type_specs:
            if spec.name == name:
                return spec
        raise KeyError(f"{cls.connector_type} has no content type {name!r}")
