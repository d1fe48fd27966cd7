"""BaseCollectOperator: what every vendor's collect task shares.

A collect task reads one window from a vendor and stages the enveloped records; it never writes to
the warehouse. It returns only paths and counts (XCom), so a failed load retries from the staged
files without calling the vendor again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import EnvelopeContext
    from seccollect.staging.store import StagingWriter


def parse_window_bound(value: Any) -> datetime:
    """A rendered template value (ISO string) or a datetime, as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Turn a fatal :class:`~seccollect.http.errors.VendorApiError` (400/401/403/404) into
    ``AirflowFailException``: bad credentials or configuration fail the task without Airflow retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from seccollect.http.errors import VendorApiError

    try:
        yield
    except VendorApiError as exc:
        if exc.fatal:
            raise AirflowFailException(str(exc)) from exc
        raise


#: By default a run collects its data interval; a manual run may name any other window in its conf
#: (``{"window_start": "...", "window_end": "..."}``) to replay it — idempotently, like any run.
DEFAULT_WINDOW_START = "{{ (dag_run.conf or {}).get('window_start') or data_interval_start }}"
DEFAULT_WINDOW_END = "{{ (dag_run.conf or {}).get('window_end') or data_interval_end }}"


class BaseCollectOperator(BaseOperator):
    """Collect one content type for the DAG run's data interval and stage it.

    Subclasses implement :meth:`collect` (vendor calls through their hook) and may override
    :meth:`should_collect` (e.g. a daily snapshot).

    :param tenant: tenant name stamped on every record.
    :param instance_name: connector instance name stamped on every record.
    :param content_type: the content type this task collects.
    :param window_start: start of the window (templated); defaults to the run conf's ``window_start``,
        else the run's ``data_interval_start``.
    :param window_end: end of the window (templated); defaults to the run conf's ``window_end``, else
        the run's ``data_interval_end``.
    """

    template_fields: Sequence[str] = ("window_start", "window_end")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        tenant: str,
        instance_name: str,
        content_type: str,
        window_start: str | datetime = DEFAULT_WINDOW_START,
        window_end: str | datetime = DEFAULT_WINDOW_END,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant = tenant
        self.instance_name = instance_name
        self.content_type = content_type
        self.window_start = window_start
        self.window_end = window_end

    def should_collect(self, start: datetime, end: datetime) -> bool:
        return True

    def collect(self, writer: StagingWriter, envelope: EnvelopeContext, context: Context) -> dict[str, Any]:
        """Fetch the window and add rows to ``writer``; return extra XCom fields (counts, quarantine)."""
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from seccollect.records.envelope import EnvelopeContext
        from seccollect.records.indices import INDICES
        from seccollect.staging.store import StagingWriter, window_folder

        start, end = parse_window_bound(self.window_start), parse_window_bound(self.window_end)
        if not start < end:
            # A zero-length interval would read nothing and look like success; refuse it loudly.
            raise AirflowFailException(f"Empty collection window {start} .. {end}; the DAG needs a data-interval timetable")
        if not self.should_collect(start, end):
            raise AirflowSkipException(f"{self.content_type}: nothing to collect in window {start} .. {end}")
        envelope = EnvelopeContext(
            tenant=self.tenant,
            instance=self.instance_name,
            content_type=self.content_type,
            window_start=start,
            window_end=end,
            ingest_time=datetime.now(UTC),
        )
        # A mapped task's instances share one task_id; each needs its own folder, because a writer
        # empties its folder before its first part (retry semantics) and would delete its siblings'.
        map_index = getattr(context.get("ti"), "map_index", -1)
        folder = self.task_id if map_index is None or map_index < 0 else f"{self.task_id}/{map_index}"
        writer = StagingWriter(window_folder(self.dag_id, start, end, folder))
        with fail_fast():
            extra = self.collect(writer, envelope, context)
        batches = writer.close()
        result = {
            "content_type": self.content_type,
            "window": [start.isoformat(), end.isoformat()],
            "batches": [b.to_xcom() for b in batches],
            "rows": sum(b.rows for b in batches if b.table in INDICES),  # records, not side tables
            **extra,
        }
        self.log.info(
            "Staged %d rows of %s for window %s .. %s in %d part(s)", result["rows"], self.content_type, start, end, len(batches)
        )
        return result
