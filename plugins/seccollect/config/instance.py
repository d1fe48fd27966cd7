"""Typed schema of a connector instance file (one YAML file = one instance = one DAG).

The schema is the contract a data engineer edits by hand, so every field has a default that makes
sense, unknown keys are rejected (a typo must not silently fall back to a default), and anything that
looks like a secret is refused before validation: secrets live only in Airflow connections.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# ASCII only, no spaces: the guides forbid multibyte names, and the name ends up in a dag_id, task
# logs, staging paths and warehouse rows.
_ASCII_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

DEFAULT_START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


def _check_ascii_name(value: str, what: str) -> str:
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


class InstanceBase(_Strict):
    """Settings every connector instance has, whatever its vendor."""

    #: Vendor-specific subclasses set these.
    connector_type: ClassVar[str]
    vendor: ClassVar[str]
    category: ClassVar[str]
    allowed_content_types: ClassVar[tuple[str, ...]]
    default_content_types: ClassVar[tuple[str, ...]]
    default_interval_minutes: ClassVar[int] = 5

    name: str = Field(description="Instance name, ASCII only; part of the dag_id.")
    tenant: str = Field(description="Tenant name, ASCII only; stamped on every record.")
    conn_id: str = Field(description="Airflow connection holding this instance's credentials.")
    interval_minutes: int | None = Field(
        default=None, ge=1, le=1440, description="Collection window length; the DAG's data interval."
    )
    start_date: datetime = Field(default=DEFAULT_START_DATE, description="First window a backfill may cover.")
    content_types: tuple[str, ...] | None = Field(default=None, description="What to collect.")
    verify_ssl: bool = Field(default=True, description="Verify TLS certificates; disabling logs a warning.")
    proxy: str | None = Field(default=None, description="Optional HTTP(S) proxy URL for vendor calls.")
    retries: int = Field(default=3, ge=0, le=20, description="Airflow task retries.")
    retry_delay_seconds: int = Field(default=60, ge=1, description="First retry delay; doubles each try.")
    max_retry_delay_minutes: int = Field(default=30, ge=1, description="Cap for the exponential backoff.")
    max_active_runs: int = Field(default=4, ge=1, le=64, description="Concurrent runs (backfills).")
    catchup: bool = Field(default=False, description="Let the scheduler fill missed intervals itself.")
    enabled: bool = Field(default=True, description="A disabled instance produces no DAG.")
    warehouse_conn_id: str = Field(
        default="seccollect_warehouse", description="Airflow connection of the warehouse (duckdb or postgres)."
    )
    load_pool: str = Field(
        default="warehouse_loads",
        description="Airflow pool load tasks run in; one slot serialises DuckDB's single writer.",
    )

    @field_validator("name")
    @classmethod
    def _name_ascii(cls, value: str) -> str:
        return _check_ascii_name(value, "name")

    @field_validator("tenant")
    @classmethod
    def _tenant_ascii(cls, value: str) -> str:
        return _check_ascii_name(value, "tenant")

    @field_validator("start_date")
    @classmethod
    def _start_date_utc(cls, value: datetime) -> datetime:
        # A naive date would be read in the deployment's default timezone; windows are UTC everywhere.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

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
    def interval(self) -> int:
        return self.interval_minutes or self.default_interval_minutes

    @property
    def selected_content_types(self) -> tuple[str, ...]:
        """Content types in a stable order (the Grid view keeps task order)."""
        chosen = self.content_types if self.content_types is not None else self.default_content_types
        return tuple(c for c in self.allowed_content_types if c in chosen)


class NetskopeInstance(InstanceBase):
    """A Netskope tenant collected over REST API v1 or v2."""

    connector_type: ClassVar[str] = "netskope"
    vendor: ClassVar[str] = "netskope"
    category: ClassVar[str] = "web_security"
    allowed_content_types: ClassVar[tuple[str, ...]] = ("alert", "event", "page", "pops", "tunnels")
    default_content_types: ClassVar[tuple[str, ...]] = ("alert", "event")

    type: Literal["netskope"]
    netskope_tenant: str = Field(description="Tenant host name part, e.g. 'companya' for companya.goskope.com.")
    api_version: Literal["v1", "v2"] = Field(default="v2", description="Must match the API token's version.")
    settle_lag_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="How long after a window closes Netskope is given to make its records queryable.",
    )

    @field_validator("api_version", mode="before")
    @classmethod
    def _version_lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("netskope_tenant")
    @classmethod
    def _tenant_not_url(cls, value: str) -> str:
        if "://" in value or "." in value or "/" in value:
            raise ValueError(
                f"{value!r} looks like a URL or host name; enter only the tenant name, e.g. 'companya' "
                "for https://companya.goskope.com"
            )
        return _check_ascii_name(value, "netskope_tenant")

    @model_validator(mode="after")
    def _v1_content_types(self) -> NetskopeInstance:
        if self.api_version == "v1":
            v2_only = [c for c in self.selected_content_types if c not in ("alert", "event")]
            if v2_only:
                raise ValueError(
                    f"content_types: {', '.join(v2_only)} need api_version v2 (v1 serves only alert and event)"
                )
        return self


class AwsCloudTrailInstance(InstanceBase):
    """CloudTrail, VPC flow or WAF logs delivered to an S3 bucket."""

    connector_type: ClassVar[str] = "aws_cloudtrail"
    vendor: ClassVar[str] = "aws"
    category: ClassVar[str] = "paas"
    allowed_content_types: ClassVar[tuple[str, ...]] = ("cloudtrail", "vpcflow", "waf")
    default_content_types: ClassVar[tuple[str, ...]] = ()

    type: Literal["aws_cloudtrail"]
    sub_type: Literal["cloudtrail", "vpcflow", "waf"]
    bucket: str = Field(description="S3 bucket the logs are delivered to.")
    prefix: str = Field(description="Key prefix, without a trailing '/'; may hold date variables.")
    file_type: Literal["gzip", "text"] = Field(default="gzip", description="cloudtrail and vpcflow are gzip.")
    region: str | None = Field(default=None, description="Bucket region; the connection's region otherwise.")
    lookback_minutes: int = Field(
        default=60, ge=0, le=24 * 60, description="How far back date folders are re-listed for late files."
    )
    batch_size: int = Field(default=50, ge=1, le=10_000, description="Objects per mapped processing task.")

    @model_validator(mode="before")
    @classmethod
    def _content_type_is_sub_type(cls, data: Any) -> Any:
        # The sub type is the content type: one instance collects one log kind.
        if isinstance(data, dict) and data.get("content_types") is None and "sub_type" in data:
            data = {**data, "content_types": [data["sub_type"]]}
        return data

    @model_validator(mode="after")
    def _aws_rules(self) -> AwsCloudTrailInstance:
        if self.selected_content_types != (self.sub_type,):
            raise ValueError(f"content_types: an {self.sub_type} instance collects only {self.sub_type!r}")
        if self.sub_type in ("cloudtrail", "vpcflow") and self.file_type != "gzip":
            raise ValueError(f"file_type: {self.sub_type} logs are always gzip")
        from seccollect.vendors.aws.prefix_pattern import validate_prefix

        validate_prefix(self.prefix, self.sub_type)
        return self


Instance = Annotated[NetskopeInstance | AwsCloudTrailInstance, Field(discriminator="type")]

INSTANCE_TYPES: dict[str, type[InstanceBase]] = {
    "netskope": NetskopeInstance,
    "aws_cloudtrail": AwsCloudTrailInstance,
}
