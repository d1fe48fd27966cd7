"""The instance file schema of an AWS CloudTrail connector (CloudTrail, VPC flow or WAF logs in S3)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from seccollect.config.instance import InstanceBase
from seccollect.registry import ContentType

#: One content type per sub type (CONNECTORS.md: cloudtrail and waf -> AWS Events, vpcflow -> Traffic).
CONTENT_TYPES: tuple[ContentType, ...] = (
    ContentType("cloudtrail", "cloudtrail", ("aws_events",), "objects", "CloudTrail"),
    ContentType("vpcflow", "vpcflow", ("traffic",), "objects", "VPC Flow Logs"),
    ContentType("waf", "aws_waf", ("aws_events",), "objects", "WAF"),
)


class AwsCloudTrailInstance(InstanceBase):
    """CloudTrail, VPC flow or WAF logs delivered to an S3 bucket."""

    connector_type: ClassVar[str] = "aws_cloudtrail"
    vendor: ClassVar[str] = "aws"
    category: ClassVar[str] = "paas"
    content_type_specs: ClassVar[tuple[ContentType, ...]] = CONTENT_TYPES
    default_content_types: ClassVar[tuple[str, ...]] = ()

    type: Literal["aws_cloudtrail"]
    sub_type: Literal["cloudtrail", "vpcflow", "waf"]
    bucket: str = Field(description="S3 bucket the logs are delivered to.")
    prefix: str = Field(
        description="Key prefix, without a trailing '/'; may hold date variables, '*' for every account "
        "(Control Tower), '*' or a comma-separated list (us-east-1,eu-west-1) for several regions."
    )
    file_type: Literal["gzip", "text"] = Field(default="gzip", description="cloudtrail and vpcflow are gzip.")
    region: str | None = Field(default=None, description="Bucket region; the connection's region otherwise.")
    lookback_minutes: int = Field(
        default=60,
        ge=0,
        le=24 * 60,
        description="How far before a window's start objects are re-read when unread (late files); keep it "
        "at least one interval plus the sub type's usual lateness (the DAG docs warn otherwise).",
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
