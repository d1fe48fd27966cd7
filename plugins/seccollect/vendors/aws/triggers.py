"""S3LogWindowTrigger: the deferred half of :class:`~seccollect.vendors.aws.sensors.S3LogWindowSensor`.

It runs in the triggerer, so it lives in the installed package (the triggerer imports it by the
classpath that :meth:`S3LogWindowTrigger.serialize` returns), holds only small JSON-able arguments,
and never blocks the event loop: aiobotocore is not part of this deployment, so the ordinary boto3
listing runs in a worker thread (``asyncio.to_thread``) between ``asyncio.sleep`` calls.

:func:`find_window_object` is the check itself, shared by the sensor's ``poke`` and the trigger, so
both modes decide the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from seccollect.vendors.aws.hook import S3LogHook

__all__ = ["S3LogWindowTrigger", "find_window_object"]


def _utc(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def find_window_object(
    hook: S3LogHook, bucket: str, prefix: str, sub_type: str, window_start: datetime, window_end: datetime
) -> str | None:
    """Key of one non-empty log object whose key time lies in ``[window_start, window_end)``, or None.

    Lists only the window's own date folders (no look-back: late files of earlier windows say nothing
    about this one), discovering Control Tower accounts with one delimiter LIST, and stops at the
    first match, so a positive check usually costs one or two LIST requests.

    :param hook: the S3 hook to list with.
    :param bucket: bucket name.
    :param prefix: the configured prefix (date variables and Control Tower ``*`` allowed).
    :param sub_type: ``cloudtrail``, ``vpcflow`` or ``waf``.
    :param window_start: window start (aware UTC).
    :param window_end: window end (aware UTC), exclusive.
    """
    from datetime import timedelta

    from seccollect.vendors.aws.prefix_pattern import expand_all, is_log_object, parse_prefix

    pattern = parse_prefix(prefix, sub_type)
    listing = expand_all(
        prefix,
        sub_type,
        window_start,
        window_end,
        list_common_prefixes=lambda folder: hook.list_common_prefixes(bucket, folder),
        lookback=timedelta(0),
    )
    for folder in listing:
        for obj in hook.iter_objects(bucket, folder):
            if obj.size <= 0 or not is_log_object(obj.key, sub_type):
                continue
            when = pattern.key_time(obj.key)
            if when is not None and window_start <= when < window_end:
                return obj.key
    return None


class S3LogWindowTrigger(BaseTrigger):
    """Poll S3 until a log object of the window exists or the delivery deadline passes.

    Fires exactly one event: ``{"status": "found", "key": …}``, ``{"status": "deadline"}`` (nothing
    arrived by the deadline: the window is genuinely empty) or ``{"status": "error", "message": …}``.

    :param aws_conn_id: Airflow ``aws`` connection.
    :param bucket: bucket name.
    :param prefix: configured prefix.
    :param sub_type: ``cloudtrail``, ``vpcflow`` or ``waf``.
    :param window_start: window start, ISO 8601.
    :param window_end: window end, ISO 8601.
    :param deadline: when an empty window counts as empty, ISO 8601.
    :param poke_interval: seconds between checks.
    :param region_name: bucket region override.
    :param proxy: optional proxy URI.
    :param verify: TLS verification override (``False`` disables it).
    """

    def __init__(
        self,
        *,
        aws_conn_id: str | None,
        bucket: str,
        prefix: str,
        sub_type: str,
        window_start: str,
        window_end: str,
        deadline: str,
        poke_interval: float = 60.0,
        region_name: str | None = None,
        proxy: str | None = None,
        verify: bool | str | None = None,
    ) -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id
        self.bucket = bucket
        self.prefix = prefix
        self.sub_type = sub_type
        self.window_start = window_start
        self.window_end = window_end
        self.deadline = deadline
        self.poke_interval = float(poke_interval)
        self.region_name = region_name
        self.proxy = proxy
        self.verify = verify
        self._hook: S3LogHook | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "aws_conn_id": self.aws_conn_id,
                "bucket": self.bucket,
                "prefix": self.prefix,
                "sub_type": self.sub_type,
                "window_start": self.window_start,
                "window_end": self.window_end,
                "deadline": self.deadline,
                "poke_interval": self.poke_interval,
                "region_name": self.region_name,
                "proxy": self.proxy,
                "verify": self.verify,
            },
        )

    def _check(self) -> str | None:
        """One blocking check (runs in a worker thread)."""
        from seccollect.vendors.aws.hook import S3LogHook, aws_errors

        if self._hook is None:  # built once, in the thread, so get_connection never blocks the loop
            self._hook = S3LogHook(
                self.aws_conn_id, region_name=self.region_name, proxy=self.proxy, verify=self.verify
            )
        with aws_errors(f"ListObjectsV2 s3://{self.bucket}/{self.prefix}", self.aws_conn_id):
            return find_window_object(
                self._hook,
                self.bucket,
                self.prefix,
                self.sub_type,
                _utc(self.window_start),
                _utc(self.window_end),
            )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = _utc(self.deadline)
        try:
            while True:
                key = await asyncio.to_thread(self._check)
                requests = self._hook.list_requests if self._hook else 0
                if key is not None:
                    yield TriggerEvent({"status": "found", "key": key, "list_requests": requests})
                    return
                remaining = (deadline - datetime.now(UTC)).total_seconds()
                if remaining <= 0:
                    yield TriggerEvent(
                        {"status": "deadline", "deadline": self.deadline, "list_requests": requests}
                    )
                    return
                self.log.info(
                    "No %s object for %s .. %s in s3://%s yet; next check in %.0fs (deadline %s)",
                    self.sub_type,
                    self.window_start,
                    self.window_end,
                    self.bucket,
                    min(self.poke_interval, remaining),
                    self.deadline,
                )
                await asyncio.sleep(min(self.poke_interval, remaining))
        except Exception as exc:  # reported to the task, which fails with the message (and retries)
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
