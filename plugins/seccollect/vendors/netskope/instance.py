"""The instance file schema of a Netskope connector and its content types."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from seccollect.config.instance import InstanceBase, check_ascii_name
from seccollect.registry import ContentType

CONTENT_TYPES: tuple[ContentType, ...] = (
    ContentType("alert", "netskopewsg_alert", ("syslog", "alerts"), "windowed", "Alert"),
    ContentType("event", "netskopewsg_event", ("syslog",), "windowed", "Event"),
    ContentType("page", "netskopewsg_page", ("syslog",), "windowed", "Page"),
    # Taken once a day, by the window that holds 00:00 UTC.
    ContentType("pops", "netskopewsg_pops", ("syslog",), "snapshot", "Pops", every=timedelta(days=1)),
    ContentType("tunnels", "netskopewsg_tunnels", ("syslog",), "snapshot", "Tunnels", every=timedelta(days=1)),
)

#: Content types API v1 serves (v2 serves all).
V1_CONTENT_TYPES = ("alert", "event")


class NetskopeInstance(InstanceBase):
    """A Netskope tenant collected over REST API v1 or v2."""

    connector_type: ClassVar[str] = "netskope"
    vendor: ClassVar[str] = "netskope"
    category: ClassVar[str] = "web_security"
    content_type_specs: ClassVar[tuple[ContentType, ...]] = CONTENT_TYPES
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
        return check_ascii_name(value, "netskope_tenant")

    @model_validator(mode="after")
    def _v1_content_types(self) -> NetskopeInstance:
        if self.api_version == "v1":
            v2_only = [c for c in self.selected_content_types if c not in V1_CONTENT_TYPES]
            if v2_only:
                raise ValueError(
                    f"content_types: {', '.join(v2_only)} need api_version v2 (v1 serves only alert and event)"
                )
        return self
