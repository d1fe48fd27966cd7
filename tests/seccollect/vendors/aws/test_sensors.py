"""S3LogWindowSensor and S3LogWindowTrigger against moto: poke, deadline, deferral, the trigger's loop."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from seccollect.vendors.aws.hook import S3LogHook
from seccollect.vendors.aws.sensors import MAX_DELIVERY_DELAY, S3LogWindowSensor
from seccollect.vendors.aws.triggers import S3LogWindowTrigger, find_window_object

BUCKET = "seccollect-sensor-test"
ACCOUNT = "111122223333"
PREFIX = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1"


def ct_key(when: datetime, suffix: str = "AbCdEfGh12345678") -> str:
    return f"{PREFIX}/{when:%Y/%m/%d}/{ACCOUNT}_CloudTrail_us-east-1_{when:%Y%m%dT%H%MZ}_{suffix}.json.gz"


@pytest.fixture
def recent_window() -> tuple[datetime, datetime]:
    """A window that has just closed: its delivery deadline is still ahead."""
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    return end - timedelta(minutes=15), end


@pytest.fixture
def bucket(s3):
    s3.create_bucket(Bucket=BUCKET)
    return s3


def sensor(aws_conn: str, window: tuple[datetime, datetime], **kwargs) -> S3LogWindowSensor:
    return S3LogWindowSensor(
        task_id="wait",
        aws_conn_id=aws_conn,
        bucket=BUCKET,
        prefix=PREFIX,
        sub_type="cloudtrail",
        window_start=window[0].isoformat(),
        window_end=window[1].isoformat(),
        **kwargs,
    )


def test_poke_is_true_only_for_a_log_object_of_the_window(aws_conn, bucket, recent_window):
    start, end = recent_window
    task = sensor(aws_conn, recent_window)
    assert task.poke({}) is False
    # Neither an object of an earlier window, nor an empty one, nor a digest makes the window ready.
    bucket.put_object(Bucket=BUCKET, Key=ct_key(start - timedelta(minutes=1)), Body=b"{}")
    bucket.put_object(Bucket=BUCKET, Key=ct_key(start + timedelta(minutes=1), "EmptyEmptyEmpty0"), Body=b"")
    digest = f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/{start:%Y/%m/%d}/{ACCOUNT}_CloudTrail-Digest_x.json.gz"
    bucket.put_object(Bucket=BUCKET, Key=digest, Body=b"{}")
    assert task.poke({}) is False
    bucket.put_object(Bucket=BUCKET, Key=ct_key(end - timedelta(minutes=1)), Body=b"{}")
    assert task.poke({}) is True


def test_deadline_passed_succeeds_without_listing(aws_conn, bucket):
    old = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 0, 5, tzinfo=UTC))
    task = sensor(aws_conn, old)
    assert task.poke({}) is True
    assert getattr(task, "_s3_hook", None) is None  # no hook, no LIST request


def test_default_delay_and_timeout_follow_the_sub_type(aws_conn):
    window = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 0, 5, tzinfo=UTC))
    task = S3LogWindowSensor(
        task_id="w",
        aws_conn_id=aws_conn,
        bucket=BUCKET,
        prefix="AWSLogs/1/vpcflowlogs/us-east-1",
        sub_type="vpcflow",
        window_start=window[0],
        window_end=window[1],
    )
    assert task.max_delivery_delay == MAX_DELIVERY_DELAY["vpcflow"] == timedelta(minutes=15)
    assert task.timeout == (timedelta(minutes=45)).total_seconds()
    assert task.deferrable is False  # [operators] default_deferrable is off in the test config


def test_deferrable_pokes_once_then_defers_to_our_trigger(aws_conn, bucket, recent_window):
    from airflow.sdk.exceptions import TaskDeferred

    task = sensor(aws_conn, recent_window, deferrable=True, poke_interval=30)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, S3LogWindowTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert trigger.deadline == (recent_window[1] + timedelta(minutes=5)).isoformat()
    assert (trigger.bucket, trigger.prefix, trigger.sub_type, trigger.poke_interval) == (
        BUCKET,
        PREFIX,
        "cloudtrail",
        30,
    )
    assert task._s3_hook.list_requests == 1  # the one poke in the worker

    # Found at once: no deferral at all.
    bucket.put_object(Bucket=BUCKET, Key=ct_key(recent_window[0]), Body=b"{}")
    assert sensor(aws_conn, recent_window, deferrable=True).execute({}) is None


def test_execute_complete(aws_conn, recent_window):
    from airflow.sdk.exceptions import AirflowException

    task = sensor(aws_conn, recent_window)
    assert task.execute_complete({}, {"status": "found", "key": "k", "list_requests": 2}) is None
    assert task.execute_complete({}, {"status": "deadline", "deadline": "x"}) is None
    with pytest.raises(AirflowException, match="AccessDenied"):
        task.execute_complete({}, {"status": "error", "message": "ClientError: AccessDenied"})


def _trigger(aws_conn: str, window, deadline: datetime, **kwargs) -> S3LogWindowTrigger:
    return S3LogWindowTrigger(
        aws_conn_id=aws_conn,
        bucket=kwargs.pop("bucket", BUCKET),
        prefix=PREFIX,
        sub_type="cloudtrail",
        window_start=window[0].isoformat(),
        window_end=window[1].isoformat(),
        deadline=deadline.isoformat(),
        **kwargs,
    )


def test_trigger_serialize_round_trip(aws_conn, recent_window):
    import importlib

    trigger = _trigger(
        aws_conn, recent_window, recent_window[1], poke_interval=7, region_name="eu-west-1", verify=False
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "seccollect.vendors.aws.triggers.S3LogWindowTrigger"
    json.dumps(kwargs)  # small and plain: stored in the metadata database
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


async def _first_event(trigger: S3LogWindowTrigger, timeout: float = 20):
    async def first():
        async for event in trigger.run():
            return event.payload

    return await asyncio.wait_for(first(), timeout)


def test_trigger_run_yields_found_when_an_object_lands(aws_conn, bucket, recent_window):
    import threading

    trigger = _trigger(aws_conn, recent_window, datetime.now(UTC) + timedelta(minutes=5), poke_interval=0.2)
    # The object lands only after the trigger's first look (not after a fixed delay, which a slow first
    # look - a garbage-collection pause, a cold S3 client - could outlast).
    first_look = threading.Event()
    real_check = trigger._check

    def check() -> str | None:
        found = real_check()
        first_look.set()
        return found

    trigger._check = check  # type: ignore[method-assign]

    async def land_later():
        await asyncio.to_thread(first_look.wait, 30)
        await asyncio.to_thread(bucket.put_object, Bucket=BUCKET, Key=ct_key(recent_window[0]), Body=b"{}")

    async def scenario():
        lander = asyncio.create_task(land_later())
        event = await _first_event(trigger)
        await lander
        return event

    event = asyncio.run(scenario())
    assert event["status"] == "found" and event["key"] == ct_key(recent_window[0])
    assert event["list_requests"] >= 2  # it polled before the object was there


def test_trigger_run_yields_deadline_for_an_empty_window(aws_conn, bucket, recent_window):
    trigger = _trigger(aws_conn, recent_window, datetime.now(UTC) + timedelta(seconds=1), poke_interval=0.3)
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == "deadline"


def test_trigger_run_reports_errors(aws_conn, s3, recent_window):
    trigger = _trigger(
        aws_conn, recent_window, datetime.now(UTC) + timedelta(minutes=5), bucket="no-such-bucket-here"
    )
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == "error" and "NoSuchBucket" in event["message"]


def test_find_window_object_in_a_control_tower_bucket(aws_conn, s3, scenario):
    from seccollect_dev.simulators.aws_bucket import CT_BUCKET

    scenario.upload(s3, buckets=[CT_BUCKET])
    prefix = scenario.stream("ct-us-east-1").prefix
    hook = S3LogHook(aws_conn)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    key = find_window_object(hook, CT_BUCKET, prefix, "cloudtrail", start, start + timedelta(minutes=5))
    assert key is not None and "/CloudTrail/us-east-1/2025/01/01/" in key
    assert hook.list_requests == 2  # account discovery + the first account's day folder
    late = datetime(2025, 1, 1, 0, 30, tzinfo=UTC)
    assert (
        find_window_object(hook, CT_BUCKET, prefix, "cloudtrail", late, late + timedelta(minutes=5)) is None
    )
