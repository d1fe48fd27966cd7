"""Fill the demo's moto S3 with the last hours of CloudTrail, VPC flow and WAF logs.

The data is the AWS bucket simulator's scenario (:mod:`seccollect_dev.simulators.aws_bucket`) moved to
the period just before ``now``: a Control Tower CloudTrail bucket (3 accounts, 2 regions, digests,
Insights, Config objects, a duplicate event, an empty and a corrupt object), a VPC flow log bucket
and a WAF log bucket.  The demo instance files in ``include/connectors/acme-aws_cloudtrail-*.yaml``
read parts of these buckets through the connection ``aws_demo``.

Every object of the period is uploaded at once, including the few that AWS would only deliver a
little after ``now`` (VPC flow logs land ~15 minutes after their key time): the demo shows the
buckets as they look once delivery has caught up, so no demo run has to wait for its sensor's
delivery deadline.  Late delivery itself is exercised by the end-to-end tests, which upload in steps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from seccollect_dev.simulators.aws_bucket import AwsBucketScenario, build_scenario

__all__ = ["DEMO_HOURS", "DEMO_STREAMS", "populate_demo_buckets"]

#: How far before ``now`` the demo buckets hold logs.
DEMO_HOURS = 2
#: The simulator streams the demo instances read (instance name -> stream name).
DEMO_STREAMS: dict[str, str] = {"cloudtrail": "ct-us-east-1", "vpcflow": "vpc-default", "waf": "waf-std"}


def populate_demo_buckets(endpoint_url: str, now: datetime, *, seed: int = 7) -> AwsBucketScenario:
    """Upload the scenario of ``[now - DEMO_HOURS, now)`` into the moto server at ``endpoint_url``.

    :param endpoint_url: the local moto server (``http://127.0.0.1:<port>``; anything else is refused).
    :param now: the demo's "now" (aware): the end of the simulated period.
    :param seed: scenario seed (same seed and ``now`` -> byte-identical buckets).
    :return: the scenario, for its ground truth.
    """
    from seccollect_dev.moto_server import s3_client

    now = now.astimezone(UTC).replace(second=0, microsecond=0)
    scenario = build_scenario(seed, start=now - timedelta(hours=DEMO_HOURS), end=now)
    scenario.upload(s3_client(endpoint_url))
    return scenario
