"""S3LogWindowSensor: wait until the objects of a collection window can exist.

AWS writes log objects some minutes after the period they cover, so a run that starts the moment its
data interval closes would list folders that are still filling.  The sensor holds the run until one
of two things is true:

* a non-empty log object whose **key time** lies in the window exists under the window's date
  folders (delivery for the window has started; stragglers of other accounts/regions are caught by
  later windows' look-back and the object ledger, so nothing is lost by not waiting for them), or
* the **delivery deadline** has passed: ``window_end`` + the sub type's maximum delivery delay
  (:data:`MAX_DELIVERY_DELAY`).  After it, an empty window is genuinely empty and the run goes on
  (its load still writes the window's ledger entry, with zero rows).

Unlike the provider's ``S3KeySensor`` it never puts ``*`` or a regex into a LIST (which would list
everything before the ``*`` or the whole bucket): it lists exactly the window's date folders.
With ``deferrable=True`` it checks once in the worker and then hands the waiting to
:class:`~seccollect.vendors.aws.triggers.S3LogWindowTrigger` in the triggerer, freeing the slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf

from seccollect.operators.collect import DEFAULT_WINDOW_END, DEFAULT_WINDOW_START
from seccollect.vendors.aws.delivery import MAX_DELIVERY_DELAY

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.vendors.aws.hook import S3LogHook

__all__ = ["MAX_DELIVERY_DELAY", "S3LogWindowSensor"]



class S3LogWindowSensor(BaseSensorOperator):
    """Succeed once the window's log objects can exist (see the module docstring).

    :param aws_conn_id: Airflow ``aws`` connection (keys, or keys + ``role_arn``).
    :param bucket: S3 bucket.
    :param prefix: configured prefix (no trailing ``/``; date variables, Control Tower ``*``).
    :param sub_type: ``cloudtrail``, ``vpcflow`` or ``waf``.
    :param region_name: bucket region; the connection's otherwise.
    :param proxy: optional proxy URI.
    :param verify_ssl: verify TLS certificates (disabling is logged as a warning).
    :param max_delivery_delay: how long after the window end an empty window counts as empty;
        defaults to :data:`MAX_DELIVERY_DELAY` of the sub type.
    :param window_start: window start (templated); run conf ``window_start`` or the data interval.
    :param window_end: window end (templated); run conf ``window_end`` or the data interval.
    :param deferrable: check once, then wait in the triggerer (default:
        ``[operators] default_deferrable``).
    :param kwargs: :class:`~airflow.sdk.BaseSensorOperator` arguments (``poke_interval``, ``mode``,
        ``timeout`` - by default the delivery delay plus 30 minutes).
    """

    template_fields: Sequence[str] = ("window_start", "window_end", "bucket", "prefix")
    ui_color = "#eef7e8"

    def __init__(
        self,
        *,
        aws_conn_id: str | None,
        bucket: str,
        prefix: str,
        sub_type: str,
        region_name: str | None = None,
        proxy: str | None = None,
        verify_ssl: bool = True,
        max_delivery_delay: timedelta | None = None,
        window_start: str | datetime = DEFAULT_WINDOW_START,
        window_end: str | datetime = DEFAULT_WINDOW_END,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        if sub_type not in MAX_DELIVERY_DELAY:
            raise ValueError(f"unknown sub type {sub_type!r}; allowed: {', '.join(MAX_DELIVERY_DELAY)}")
        delay = MAX_DELIVERY_DELAY[sub_type] if max_delivery_delay is None else max_delivery_delay
        kwargs.setdefault("timeout", delay + timedelta(minutes=30))
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.bucket = bucket
        self.prefix = prefix
        self.sub_type = sub_type
        self.region_name = region_name
        self.proxy = proxy
        self.verify_ssl = verify_ssl
        self.max_delivery_delay = delay
        self.window_start = window_start
        self.window_end = window_end
        self.deferrable = deferrable

    # --- helpers ----------------------------------------------------------------------------------

    def _window(self, context: Context) -> tuple[datetime, datetime]:
        from seccollect.operators.collect import run_window

        return run_window(self, context, self.window_start, self.window_end)

    def _hook(self) -> S3LogHook:
        from seccollect.vendors.aws.hook import S3LogHook

        hook = getattr(self, "_s3_hook", None)
        if hook is None:  # built at run time, never at parse time
            hook = S3LogHook(
                self.aws_conn_id,
                region_name=self.region_name,
                proxy=self.proxy,
                verify=None if self.verify_ssl else False,
            )
            self._s3_hook = hook
        return hook

    # --- sensor -----------------------------------------------------------------------------------

    def poke(self, context: Context) -> bool:
        from seccollect.operators.collect import fail_fast
        from seccollect.vendors.aws.hook import aws_errors
        from seccollect.vendors.aws.triggers import find_window_object

        start, end = self._window(context)
        deadline = end + self.max_delivery_delay
        if datetime.now(UTC) >= deadline:
            # Cheap first: a backfill of old windows needs no LIST to know delivery is over.
            self.log.info(
                "Delivery deadline %s of window %s .. %s has passed; proceeding", deadline, start, end
            )
            return True
        hook = self._hook()
        with fail_fast(), aws_errors(f"ListObjectsV2 s3://{self.bucket}/{self.prefix}", self.aws_conn_id):
            key = find_window_object(hook, self.bucket, self.prefix, self.sub_type, start, end)
        if key is not None:
            self.log.info(
                "Found %s for window %s .. %s (%d LIST requests)", key, start, end, hook.list_requests
            )
            return True
        self.log.info(
            "No %s object with key time in %s .. %s in s3://%s yet; waiting until %s at most",
            self.sub_type,
            start,
            end,
            self.bucket,
            deadline,
        )
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        from seccollect.vendors.aws.triggers import S3LogWindowTrigger

        start, end = self._window(context)
        self.defer(
            trigger=S3LogWindowTrigger(
                aws_conn_id=self.aws_conn_id,
                bucket=self.bucket,
                prefix=self.prefix,
                sub_type=self.sub_type,
                window_start=start.isoformat(),
                window_end=end.isoformat(),
                deadline=(end + self.max_delivery_delay).isoformat(),
                poke_interval=self.poke_interval,
                region_name=self.region_name,
                proxy=self.proxy,
                verify=None if self.verify_ssl else False,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after the trigger fired: succeed on ``found``/``deadline``, fail on ``error``."""
        from airflow.sdk.exceptions import AirflowException

        if not event or event.get("status") not in ("found", "deadline"):
            message = (event or {}).get("message", "no event")
            raise AirflowException(f"Waiting for s3://{self.bucket}/{self.prefix} failed: {message}")
        if event["status"] == "found":
            self.log.info(
                "Found %s (trigger, %s LIST requests)", event.get("key"), event.get("list_requests")
            )
        else:
            self.log.info(
                "Delivery deadline %s passed without objects; the window is empty", event.get("deadline")
            )
