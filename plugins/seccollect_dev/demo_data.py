"""Fill the demo's moto S3 with CloudTrail, VPC flow and WAF logs, and keep it filling.

The data is the AWS bucket simulator's scenario (:mod:`seccollect_dev.simulators.aws_bucket`) laid over
``[now - DEMO_HOURS, now + DEMO_AHEAD)``: a Control Tower CloudTrail bucket (3 accounts, 2 regions,
digests, Insights, Config objects, a duplicate event, an empty and a corrupt object), a VPC flow log
bucket and a WAF log bucket. The demo instance files read parts of these buckets through the
connection ``aws_demo``.

The first call uploads every object whose key time is before ``now``, including the few AWS would
deliver a little later (VPC flow logs land ~15 minutes after their key time): the demo shows the
buckets as they look once delivery has caught up, so no demo run waits for its sensor's delivery
deadline. Every later call (``make airflow`` calls it every minute) uploads what has been delivered by
then, late objects included, so scheduled runs keep finding data, as against real buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from seccollect_dev.simulators.aws_bucket import AwsBucketScenario, build_scenario

__all__ = ["DEMO_AHEAD", "DEMO_HOURS", "DEMO_STREAMS", "populate_demo_buckets"]

#: How far before the first call the demo buckets hold logs, and how far after it they keep filling.
DEMO_HOURS = 2
DEMO_AHEAD = timedelta(hours=24)
#: The simulator streams the demo instances read (instance name -> stream name).
DEMO_STREAMS: dict[str, str] = {"cloudtrail": "ct-us-east-1", "vpcflow": "vpc-default", "waf": "waf-std"}


@dataclass
class _Feed:
    scenario: AwsBucketScenario
    uploaded: set[tuple[str, str]] = field(default_factory=set)


#: One feed per moto server (endpoint URL) in this process.
_FEEDS: dict[str, _Feed] = {}


def populate_demo_buckets(endpoint_url: str, now: datetime, *, seed: int = 7) -> AwsBucketScenario:
    """Upload into the moto server at ``endpoint_url`` what its buckets hold at ``now`` (see the module
    docstring: the first call catches delivery up to ``now``; later calls add what was delivered since).

    :param endpoint_url: the local moto server (``http://127.0.0.1:<port>``; anything else is refused).
    :param now: the demo's "now" (aware).
    :param seed: scenario seed (same seed and first ``now`` -> byte-identical buckets).
    :return: the scenario, for its ground truth.
    """
    from seccollect_dev.moto_server import s3_client

    now = now.astimezone(UTC)
    feed = _FEEDS.get(endpoint_url)
    first = feed is None
    if feed is None:
        start = now.replace(second=0, microsecond=0) - timedelta(hours=DEMO_HOURS)
        feed = _FEEDS[endpoint_url] = _Feed(build_scenario(seed, start=start, end=start + timedelta(hours=DEMO_HOURS) + DEMO_AHEAD))
    client = s3_client(endpoint_url)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in sorted(set(feed.scenario.buckets) - existing):
        client.create_bucket(Bucket=bucket)
    for obj in feed.scenario.objects:
        ident = (obj.bucket, obj.key)
        due = (obj.key_time or obj.available_at) < now if first else obj.available_at <= now
        if due and ident not in feed.uploaded:
            client.put_object(Bucket=obj.bucket, Key=obj.key, Body=obj.body)
            feed.uploaded.add(ident)
    return feed.scenario
