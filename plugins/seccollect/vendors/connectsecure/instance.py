"""The instance file schema of a ConnectSecure V4 connector and its content types."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from seccollect.config.instance import InstanceBase
from seccollect.registry import ContentType

#: Every content type is a full pull compared with the last one (the API has no time filter).
#: Indices (CONNECTORS.md): all -> Syslog; Asset -> Assets; Vulnerability Suppression -> Scans.
CONTENT_TYPES: tuple[ContentType, ...] = (
    ContentType("asset", "connectsecurev4_asset", ("syslog", "assets"), "snapshot", "Asset"),
    ContentType("remediation_plan", "connectsecurev4_remediation", ("syslog",), "snapshot", "Remediation Plan"),
    ContentType(
        "vulnerability_suppression", "connectsecurev4_vulnerability_suppression", ("syslog", "scans"), "snapshot",
        "Vulnerability Suppression",
    ),
)

#: The remediation endpoints the connector can read (their row keys are documented; see the hook).
REMEDIATION_PATHS = (
    "/r/report_queries/get_remediation",
    "/r/report_queries/remediation_plan_by_company",
    "/r/asset/get_asset_remediation_plan",
)


class ConnectSecureInstance(InstanceBase):
    """A ConnectSecure V4 tenant, pulled in full every window (assets, remediation, suppressions)."""

    connector_type: ClassVar[str] = "connectsecure"
    vendor: ClassVar[str] = "connectsecure"
    category: ClassVar[str] = "security_scan"
    content_type_specs: ClassVar[tuple[ContentType, ...]] = CONTENT_TYPES
    default_content_types: ClassVar[tuple[str, ...]] = ("asset",)
    #: Hosts depend on assets (CONNECTORS.md): an instance file that leaves Asset out still collects it.
    required_content_types: ClassVar[tuple[str, ...]] = ("asset",)

    type: Literal["connectsecure"]
    page_size: int = Field(default=5000, ge=2, le=50_000, description="Records per list request (limit).")
    asset_endpoint: str = Field(
        default="/r/asset/assets",
        description="List endpoint of assets; /r/asset/assets is missing from a newer operation catalogue, so "
        "it can be changed (e.g. /r/asset/asset_view).",
    )
    remediation_endpoint: Literal[REMEDIATION_PATHS] = Field(  # type: ignore[valid-type]
        default="/r/report_queries/get_remediation",
        description="List endpoint of remediation plans (one row per host x fix by default).",
    )

    @field_validator("asset_endpoint")
    @classmethod
    def _read_path(cls, value: str) -> str:
        if not value.startswith("/r/") or "?" in value or "://" in value:
            raise ValueError("asset_endpoint must be a read path such as /r/asset/assets (no host, no query)")
        return value

    @property
    def endpoints(self) -> dict[str, str]:
        return {"asset": self.asset_endpoint, "remediation_plan": self.remediation_endpoint}
