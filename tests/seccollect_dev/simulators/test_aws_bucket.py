"""The AWS bucket simulator on a live moto server, read back by a minimal collector built from the
pure AWS core (prefix expansion, account discovery, key filter, parsers).

The minimal collector here is what the real operator must at least do: expand the window into listing
prefixes (discovering Control Tower accounts with one delimiter LIST), list them, keep log objects
whose key time falls in ``[start - lookback, end)`` and that it has not processed before, parse each
object all-or-nothing and quarantine corrupt ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from seccollect.vendors.aws.log_formats import CorruptObjectError, parse_object
from seccollect.vendors.aws.prefix_pattern import expand_all, is_log_object, parse_prefix
from seccollect_dev.moto_server import reset_moto_server
from seccollect_dev.simulators.aws_bucket import (
    ACCOUNTS,
    CORRUPT,
    CT_BUCKET,
    EMPTY,
    ORG_ID,
    AwsBucketScenario,
    SimObject,
    SimStream,
    build_scenario,
)


@dataclass
class RunResult:
    records: dict[str, datetime] = field(default_factory=dict)
    quarantined: set[str] = field(default_factory=set)
    read: list[str] = field(default_factory=list)
    list_calls: int = 0


class MiniCollector:
    def __init__(self, client: Any, stream: SimStream) -> None:
        self.client = client
        self.stream = stream
        self.pattern = parse_prefix(stream.prefix, stream.sub_type)
        self.ledger: set[str] = set()

    def _pages(self, result: RunResult, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.stream.bucket, **kwargs
        ):
            result.list_calls += 1
            yield page

    def run(self, start: datetime, end: datetime, lookback: timedelta) -> RunResult:
        result = RunResult()

        def common_prefixes(prefix: str) -> list[str]:
            return [
                cp["Prefix"]
                for page in self._pages(result, Prefix=prefix, Delimiter="/")
                for cp in page.get("CommonPrefixes", [])
            ]

        prefixes = expand_all(self.stream.prefix, self.stream.sub_type, start, end, common_prefixes, lookback)
        keys = [
            obj["Key"]
            for p in prefixes
            for page in self._pages(result, Prefix=p)
            for obj in page.get("Contents", [])
        ]
        for key in keys:
            if not is_log_object(key, self.stream.sub_type) or key in self.ledger:
                continue
            kt = self.pattern.key_time(key)
            if kt is None or not (start - lookback <= kt < end):
                continue
            result.read.append(key)
            batch: dict[str, datetime] = {}
            try:
                body = self.client.get_object(Bucket=self.stream.bucket, Key=key)["Body"]
                for rec in parse_object(body, self.stream.sub_type, key=key):
                    batch.setdefault(rec.vendor_id, rec.event_time)
            except CorruptObjectError:
                result.quarantined.add(key)  # all-or-nothing: the partial batch is dropped
            else:
                result.records.update(batch)
            self.ledger.add(key)
        return result


def test_scenario_is_deterministic_and_realistic() -> None:
    a, b = build_scenario(7), build_scenario(7)
    assert [(o.key, o.body) for o in a.objects] == [(o.key, o.body) for o in b.objects]
    assert [o.key for o in build_scenario(8).objects] != [o.key for o in a.objects]
    keys = [o.key for o in a.objects]
    assert all(k.startswith(f"{ORG_ID}/AWSLogs/") for k in keys if o_bucket(a, k) == CT_BUCKET)
    assert any("/CloudTrail-Digest/" in k for k in keys) and any("/CloudTrail-Insight/" in k for k in keys)
    assert any("/Config/us-east-1/2025/1/1/" in k for k in keys)  # unpadded AWS Config folders
    assert any("/hour=0/" in k for k in keys) and any("/hour=23/" in k for k in keys)
    assert len([o for o in a.objects if o.kind == CORRUPT]) == 1
    assert [o.body for o in a.objects if o.kind == EMPTY] == [b""]
    # CloudTrail: events 1-10 min before delivery, so some records sit in the next day's folder
    day_cross = [
        r
        for o in a.stream_objects("ct-us-east-1")
        for r in o.records
        if o.key_time and r.event_time.date() < o.key_time.date()
    ]
    assert day_cross


def o_bucket(scenario: AwsBucketScenario, key: str) -> str:
    return next(o.bucket for o in scenario.objects if o.key == key)


def test_full_period_collection_matches_ground_truth(s3: Any) -> None:
    scenario = build_scenario()
    scenario.upload(s3)
    start, end = scenario.start, scenario.end
    skipped = scenario.skipped_keys()
    total = 0
    for stream in scenario.streams:
        result = MiniCollector(s3, stream).run(start, end, timedelta(0))
        expected = scenario.expected(stream.name, start, end)
        assert result.records == expected, stream.name
        assert result.quarantined == scenario.quarantine_keys(stream.name), stream.name
        assert not skipped & set(result.read), stream.name
        total += len(result.records)
        if stream.sub_type == "cloudtrail":
            # 1 discovery LIST + accounts x day folders (the period crosses midnight)
            assert result.list_calls == 1 + len(ACCOUNTS) * 2, stream.name
    assert total == sum(len(scenario.expected(s.name, start, end)) for s in scenario.streams) > 300
    assert scenario.quarantine_keys("ct-eu-west-1")  # the truncated object is there and quarantined
    # the duplicate delivery (same eventID in two files) is one record
    ct = [r.vendor_id for o in scenario.stream_objects("ct-us-east-1") for r in o.records]
    assert len(ct) == len(set(ct)) + 1


def test_list_calls_do_not_grow_with_bucket_history(s3: Any) -> None:
    scenario = build_scenario()
    scenario.upload(s3, buckets=[CT_BUCKET])
    stream = scenario.stream("ct-us-east-1")
    window = (
        datetime.fromisoformat("2025-01-01T00:10:00+00:00"),
        datetime.fromisoformat("2025-01-01T00:15:00+00:00"),
    )
    before = MiniCollector(s3, stream).run(*window, timedelta(0))
    for account in ACCOUNTS:
        for day in range(1, 21):  # 20 old days of history per account
            key = (
                f"{ORG_ID}/AWSLogs/{ORG_ID}/{account}/CloudTrail/us-east-1/2024/06/{day:02d}/"
                f"{account}_CloudTrail_us-east-1_202406{day:02d}T1200Z_AAAAAAAAAAAAAAAA.json.gz"
            )
            s3.put_object(Bucket=CT_BUCKET, Key=key, Body=b"")
    after = MiniCollector(s3, stream).run(*window, timedelta(0))
    assert after.list_calls == before.list_calls == 1 + len(ACCOUNTS)
    assert after.records == before.records == scenario.expected("ct-us-east-1", *window)


def _replay(
    s3: Any, scenario: AwsBucketScenario, names: list[str], lookback: timedelta
) -> dict[str, RunResult]:
    """Run 5-minute windows as time passes; objects appear in S3 at their ``available_at``.

    Runs continue 20 minutes past the scenario so normally delayed objects (VPC: ~10-12 minutes after
    their window) have appeared; the one very late VPC object appears 15 minutes after the end.
    """
    collectors = {n: MiniCollector(s3, scenario.stream(n)) for n in names}
    buckets = {scenario.stream(n).bucket for n in names}
    totals = {n: RunResult() for n in names}
    window_start = scenario.start
    while window_start < scenario.end + timedelta(minutes=20):
        window_end = window_start + timedelta(minutes=5)
        scenario.upload(s3, until=window_end, buckets=buckets)  # the run happens when the window closes
        for n, collector in collectors.items():
            r = collector.run(window_start, window_end, lookback)
            assert not set(r.read) & set(totals[n].read), "an object was read twice"
            totals[n].records.update(r.records)
            totals[n].quarantined |= r.quarantined
            totals[n].read += r.read
        window_start = window_end
    return totals


def _late_vpc_object(scenario: AwsBucketScenario) -> SimObject:
    (late,) = [
        o
        for o in scenario.stream_objects("vpc-default")
        if o.available_at - o.key_time > timedelta(minutes=30)
    ]
    return late


def test_replay_with_lookback_finds_late_objects_exactly_once(s3: Any) -> None:
    scenario = build_scenario()
    names = ["ct-us-east-1", "vpc-default", "waf-custom-text"]
    totals = _replay(s3, scenario, names, timedelta(hours=1))
    for n in names:
        assert totals[n].records == scenario.expected(n, scenario.start, scenario.end), n
    late = _late_vpc_object(scenario)
    assert late.key.split("/")[4:7] == ["2024", "12", "31"]  # lands in the previous day's folder
    assert late.key in totals["vpc-default"].read


def test_replay_with_too_short_lookback_loses_delayed_objects(s3: Any) -> None:
    """Why the look-back exists: VPC objects appear ~10 min after their window, one 50 min after."""
    scenario = build_scenario()
    expected = set(scenario.expected("vpc-default", scenario.start, scenario.end))
    late = {r.vendor_id for r in _late_vpc_object(scenario).records}

    none = _replay(s3, scenario, ["vpc-default"], timedelta(0))
    assert not none["vpc-default"].records  # every object appears after its window has run

    reset_moto_server(s3.meta.endpoint_url)
    scenario = build_scenario()
    short = _replay(s3, scenario, ["vpc-default"], timedelta(minutes=20))
    assert expected - set(short["vpc-default"].records) == late
