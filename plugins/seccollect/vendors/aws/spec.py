"""The AWS CloudTrail connector: CloudTrail, VPC flow and WAF logs delivered to S3.

Credentials come from the amazon provider's ``aws`` connection (keys, or keys plus a role to assume),
so this connector registers no connection type of its own.
"""

from __future__ import annotations

from pathlib import Path

from seccollect.registry import ConnectorSpec, Lazy
from seccollect.vendors.aws.docs import notes
from seccollect.vendors.aws.instance import AwsCloudTrailInstance
from seccollect.vendors.aws.tables import TABLES

SPEC = ConnectorSpec(
    connector_type="aws_cloudtrail",
    vendor="AWS",
    instance_model=AwsCloudTrailInstance,
    build_tasks=Lazy("seccollect.vendors.aws.dag:add_tasks"),
    tables=TABLES,
    notes=notes,
    simulator="seccollect_dev.simulators.aws:SIMULATOR",
    demo_instances=Path(__file__).parent / "demo",
)
