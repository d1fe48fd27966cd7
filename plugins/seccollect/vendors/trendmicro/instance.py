"""The instance file schema of a Trend Micro Cloud App Security connector and its content types.

A content type is one protected service (``service`` in the API); every content type is collected for
each selected log event type (``event`` in the API). Sharepoint Log is the guide's content type; the
other services the Log Retrieval API serves are offered too, off by default.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from seccollect.config.instance import InstanceBase
from seccollect.registry import ContentType

#: The API's ``service`` values (vendor-apis/trendmicro-cas.md §3.1), with how people name them.
SERVICES: dict[str, str] = {
    "sharepoint": "Sharepoint Log",
    "exchange": "Exchange Online Log",
    "onedrive": "OneDrive Log",
    "dropbox": "Dropbox Log",
    "box": "Box Log",
    "googledrive": "Google Drive Log",
    "gmail": "Gmail Log",
    "teams": "Teams Log",
    "exchangeserver": "Exchange Server Log",
    "salesforce_sandbox": "Salesforce Sandbox Log",
    "salesforce_production": "Salesforce Production Log",
    "teams_chat": "Teams Chat Log",
}

#: The API's ``event`` values and the guide's names for them.
EVENT_TYPES: dict[str, str] = {
    "dlp": "Data Loss Prevention",
    "ransomware": "Ransomware",
    "securityrisk": "Security Risk",
    "virtualanalyzer": "Virtual Analyzer",
}
EventType = Literal["dlp", "ransomware", "securityrisk", "virtualanalyzer"]

CONTENT_TYPES: tuple[ContentType, ...] = tuple(
    ContentType(service, f"trendmicro_cas_{service}", ("syslog",), "windowed", title)
    for service, title in SERVICES.items()
)

#: The Log Retrieval API's page size maximum (and default).
MAX_PAGE_SIZE = 500


class TrendMicroCasInstance(InstanceBase):
    """A Trend Micro Cloud App Security tenant collected over the Log Retrieval API."""

    connector_type: ClassVar[str] = "trendmicro_cas"
    vendor: ClassVar[str] = "trendmicro"
    category: ClassVar[str] = "cloud_security"
    content_type_specs: ClassVar[tuple[ContentType, ...]] = CONTENT_TYPES
    default_content_types: ClassVar[tuple[str, ...]] = ("sharepoint",)

    type: Literal["trendmicro_cas"]
    event_types: tuple[EventType, ...] = Field(
        default=tuple(EVENT_TYPES),
        description="Log event types collected for every content type: dlp (Data Loss Prevention), ransomware, "
        "securityrisk (Security Risk), virtualanalyzer (Virtual Analyzer); all four by default.",
    )
    page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Records per request (limit).")
    settle_lag_seconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="How long after a window closes Trend Micro is given to make its logs retrievable.",
    )
    max_budget_wait_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="Longest a task waits in its worker slot for the API key's request budget before its first "
        "request; a longer wait defers the task (its slot is freed) until the budget has room.",
    )

    @field_validator("event_types", mode="before")
    @classmethod
    def _event_type_names(cls, value: object) -> object:
        # Accept the guide's names ("Security Risk") as well as the API's values ("securityrisk").
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            by_title = {title.lower(): key for key, title in EVENT_TYPES.items()}
            return tuple(by_title.get(str(v).strip().lower(), str(v).strip().lower()) for v in value)
        return value

    @field_validator("event_types")
    @classmethod
    def _event_types_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("event_types: choose at least one")
        if len(set(value)) != len(value):
            raise ValueError("event_types: each event type may be listed once")
        return tuple(e for e in EVENT_TYPES if e in value)  # a stable task order
