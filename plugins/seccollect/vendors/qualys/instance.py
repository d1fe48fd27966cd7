"""The instance file schema of a Qualys connector and its content types."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from seccollect.config.instance import InstanceBase
from seccollect.registry import ContentType

CONTENT_TYPES: tuple[ContentType, ...] = (
    ContentType("hosts", "qualys_hosts", ("syslog", "assets"), "windowed", "Hosts"),
    ContentType("vulnerabilities", "qualys_vulnerabilities", ("syslog", "scans"), "windowed", "Vulnerabilities"),
)


class QualysInstance(InstanceBase):
    """A Qualys subscription's VM data: hosts (host list API) and host detections (host detection API)."""

    connector_type: ClassVar[str] = "qualys"
    vendor: ClassVar[str] = "qualys"
    category: ClassVar[str] = "security_scan"
    content_type_specs: ClassVar[tuple[ContentType, ...]] = CONTENT_TYPES
    default_content_types: ClassVar[tuple[str, ...]] = ("hosts", "vulnerabilities")
    # Each window costs at least one call per content type of a budget of 300 calls per hour (Standard
    # tier) shared by everything that uses the account.
    default_interval_minutes: ClassVar[int] = 60

    type: Literal["qualys"]
    api_version: Literal["2.0", "3.0", "4.0", "5.0"] | None = Field(
        default=None, description="Qualys API version; default: the connection's api_version, else 5.0."
    )
    truncation_limit: int = Field(
        default=1000, ge=1, le=1_000_000, description="Hosts per response (Qualys' truncation_limit)."
    )
    settle_lag_seconds: int = Field(
        default=900,
        ge=0,
        le=6 * 3600,
        description="How long after a window closes Qualys is given to finish processing scan results "
        "stamped inside it.",
    )
    api_pool: str | None = Field(
        default=None,
        description="Optional Airflow pool the collect tasks run in (e.g. one per Qualys account, with as many "
        "slots as its concurrency limit) for workers on several machines that share neither Redis "
        "(SECCOLLECT_LIMITS_URL) nor a PostgreSQL shared store; otherwise the account's concurrency slots are "
        "shared without a pool.",
    )
