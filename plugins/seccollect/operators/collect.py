"""BaseCollectOperator: what every vendor's collect task shares.

A collect task reads one window from a vendor and stages the enveloped records; it never writes to
the warehouse. It returns a :class:`~seccollect.staging.handoff.StagedWindow` (paths, counts and the
vendor query range) through XCom, so a failed load retries from the staged files without calling the
vendor again. The two shared ways of reading an API are subclasses:
:class:`~seccollect.operators.windowed.WindowedCollectOperator` (a time-filtered API, page by page) and
:class:`~seccollect.operators.snapshot.SnapshotCollectOperator` (a full pull compared with the last).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from seccollect.staging.handoff import StagedWindow

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import EnvelopeContext
    from seccollect.staging.store import StagingWriter


def parse_window_bound(value: Any) -> datetime:
    """A rendered template value (ISO string) or a datetime, as an aware UTC ``datetime.datetime``.

    Always the standard library's class: a pendulum ``DateTime`` (Airflow's context values) with a
    ``datetime.timezone`` loses its time zone in arithmetic (``start - lag`` comes out naive)."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value))
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                    moment.microsecond, tzinfo=UTC)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Errors no retry can fix fail the task at once (``AirflowFailException``): a fatal
    :class:`~seccollect.http.errors.VendorApiError` (400/401/403/404, a TLS problem, a continuation URL
    to another host) and a :class:`~seccollect.http.paging.PagingError` (a vendor that repeats pages)."""
    from airflow.sdk.exceptions import AirflowFailException

    from seccollect.http.errors import VendorApiError
    from seccollect.http.paging import PagingError

    try:
        yield
    except VendorApiError as exc:
        if exc.fatal:
            raise AirflowFailException(str(exc)) from exc
        raise
    except PagingError as exc:
        raise AirflowFailException(str(exc)) from exc


class VendorClockBehind(Exception):
    """The vendor's clock has not reached the end of the range to query: its last records may not be
    queryable yet, so the collect waits instead of succeeding with missing data."""

    def __init__(self, query_end: datetime, vendor_now: datetime) -> None:
        super().__init__(f"the vendor's clock ({vendor_now.isoformat()}) has not reached {query_end.isoformat()}")
        self.query_end = query_end
        self.vendor_now = vendor_now

    @property
    def wait(self) -> timedelta:
        return self.query_end - self.vendor_now


#: How long a collect waits between two looks at a vendor clock that is behind, and in all.
CLOCK_POLL = timedelta(seconds=60)
CLOCK_MAX_WAIT = timedelta(hours=2)


#: A run collects the window :func:`run_window` finds for it; the templated ``window_start`` and
#: ``window_end`` are given only by a replay's run conf (``{"window_start": "...", "window_end": "..."}``),
#: which names any other window — collected idempotently, like any run.
DEFAULT_WINDOW_START = "{{ (dag_run.conf or {}).get('window_start') or '' }}"
DEFAULT_WINDOW_END = "{{ (dag_run.conf or {}).get('window_end') or '' }}"


def run_window(task: Any, context: Any, start: Any = None, end: Any = None) -> tuple[datetime, datetime]:
    """The window a task of this run collects (one window per logical date, however the run was made).

    In order: ``start``/``end`` when given (rendered templates); the run conf's ``window_start`` and
    ``window_end`` (a replay, checked by :func:`checked_replay`: a refused one raises
    ``AirflowFailException``); the run's data interval when it starts at the run's logical date (every
    scheduled, backfill and REST-API run); else what the DAG's timetable infers for a manual run at the
    logical date (``airflow dags trigger --logical-date`` gets a data interval inferred from the time it
    was made, not from its logical date, which would collect one window under another's date and hide
    the first from a backfill); else, for a run made without a logical date (``"logical_date": null``:
    no data interval at all), what the timetable infers at the run's ``run_after``.
    """
    dag_run = context.get("dag_run")
    conf = (getattr(dag_run, "conf", None) or {}) if dag_run is not None else {}
    # A replay is checked first, whoever asks: a refused one fails every task of the run at once, with
    # the reason, instead of collecting a window the person did not mean.
    replay = checked_replay(task, context, conf)
    if start not in (None, "") and end not in (None, ""):
        return parse_window_bound(start), parse_window_bound(end)
    if replay is not None:
        return replay
    logical_date = context.get("logical_date")
    interval_start, interval_end = context.get("data_interval_start"), context.get("data_interval_end")
    if interval_start is not None and interval_end is not None and (
        logical_date is None or parse_window_bound(logical_date) == parse_window_bound(interval_start)
    ):
        return parse_window_bound(interval_start), parse_window_bound(interval_end)
    import pendulum

    moment = logical_date or getattr(dag_run, "run_after", None) or datetime.now(UTC)
    interval = task.dag.timetable.infer_manual_data_interval(run_after=pendulum.instance(parse_window_bound(moment)))
    return parse_window_bound(interval.start), parse_window_bound(interval.end)


def checked_replay(task: Any, context: Any, conf: Any) -> tuple[datetime, datetime] | None:
    """The window a run conf replays (the Trigger form's ``window_start``/``window_end``), checked
    against the rules of :mod:`seccollect.replay`; None when the run replays nothing.

    Retention is the DAG timetable's (the vendor's) and is judged against the run's own date: its
    logical date, else when it was made.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from seccollect.replay import ReplayRefused, check_replay, replay_of

    raw = replay_of(conf)
    if raw is None:
        return None
    dag = getattr(task, "dag", None) if getattr(task, "has_dag", lambda: True)() else None
    retention = getattr(getattr(dag, "timetable", None), "retention", None)
    dag_run = context.get("dag_run")
    reference = context.get("logical_date") or getattr(dag_run, "logical_date", None) \
        or getattr(dag_run, "run_after", None) or datetime.now(UTC)
    try:
        replay = check_replay(*raw, retention=retention, reference=parse_window_bound(reference))
    except ReplayRefused as exc:
        raise AirflowFailException(f"Replay refused: {exc}") from exc
    return replay.start, replay.end


@dataclass(frozen=True)
class Collected:
    """What :meth:`BaseCollectOperator.collect` reports besides the staged parts.

    :param figures: counts for the log and the ledger (fetched, quarantined, requests …).
    :param cursor: what the vendor was actually asked (e.g. the query range), kept with the window.
    """

    figures: Mapping[str, int] = field(default_factory=dict)
    cursor: Mapping[str, Any] | None = None


class BaseCollectOperator(BaseOperator):
    """Collect one content type for the DAG run's window and stage it.

    Subclasses implement :meth:`collect` (vendor calls through their hook) and may override
    :meth:`should_collect` (e.g. a daily snapshot).

    :param tenant: tenant name stamped on every record.
    :param instance_name: connector instance name stamped on every record.
    :param content_type: the content type this task collects.
    :param window_start: start of the window (templated); defaults to the run conf's ``window_start``,
        else the run's window (:func:`run_window`).
    :param window_end: end of the window (templated); defaults to the run conf's ``window_end``, else
        the run's window (:func:`run_window`).
    """

    #: How the content type is read (:data:`~seccollect.registry.CollectPattern`); the load treats a
    #: ``snapshot`` window as a full pull.
    pattern: ClassVar[str] = "windowed"
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

    #: Rows per staged part (``None``: the writer's default). A vendor whose records are large lowers it:
    #: the collect buffers a part of every index before writing it, and the load reads a part at a time.
    staging_part_rows: ClassVar[int | None] = None

    #: Between two looks at a vendor clock that is behind (tests shorten it).
    clock_poll: ClassVar[timedelta] = CLOCK_POLL

    def should_collect(self, start: datetime, end: datetime) -> bool:
        return True

    def collect(self, writer: StagingWriter, envelope: EnvelopeContext, context: Context) -> Collected:
        """Fetch the window and add rows to ``writer``."""
        raise NotImplementedError

    def _wait_for_vendor_clock(self, behind: VendorClockBehind, context: Context, waiting_since: str | None = None) -> None:
        """Defer (freeing the worker slot) until the vendor's clock may have caught up, then collect again."""
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
        from airflow.sdk.exceptions import AirflowFailException

        since = datetime.fromisoformat(waiting_since) if waiting_since else datetime.now(UTC)
        if datetime.now(UTC) - since > CLOCK_MAX_WAIT:
            raise AirflowFailException(
                f"{behind} after waiting {CLOCK_MAX_WAIT}: the vendor's clock is behind ours by "
                f"{behind.wait}; check the vendor's status, or raise the instance's settle lag"
            )
        pause = min(max(behind.wait, timedelta(seconds=1)), self.clock_poll)
        self.log.warning("%s; waiting %s before looking again (deferred: the worker slot is free)", behind, pause)
        self.defer(
            trigger=TimeDeltaTrigger(pause),
            method_name="resume_after_vendor_clock",
            kwargs={"waiting_since": since.isoformat()},
        )

    def _wait_for_budget(self, spent: Any) -> None:
        """Defer (freeing the worker slot) until the credential's shared request budget has room for this
        task's first request, then collect again (nothing was fetched: a task gives up waiting only before
        its first request, see :class:`~seccollect.http.budget.BudgetWaitTooLong`)."""
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

        pause = timedelta(seconds=max(1.0, float(spent.wait)))
        self.log.info("%s; deferring %s (the worker slot is free meanwhile)", spent, pause)
        self.defer(trigger=TimeDeltaTrigger(pause), method_name="resume_after_budget")

    def resume_after_budget(self, context: Context, event: Any = None) -> StagedWindow:
        """Collect again after waiting for the request budget."""
        return self.execute(context)

    def resume_after_vendor_clock(
        self, context: Context, event: Any = None, waiting_since: str | None = None
    ) -> StagedWindow:
        """Collect again after a wait for the vendor's clock (keeps counting the total wait)."""
        self._waiting_since = waiting_since
        return self.execute(context)

    def execute(self, context: Context) -> StagedWindow:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from seccollect.http.budget import BudgetWaitTooLong
        from seccollect.records.envelope import EnvelopeContext
        from seccollect.staging.store import StagingWriter, window_folder

        start, end = run_window(self, context, self.window_start, self.window_end)
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
        part_rows = {"part_rows": self.staging_part_rows} if self.staging_part_rows else {}
        writer = StagingWriter(window_folder(self.dag_id, start, end, folder), **part_rows)
        try:
            with fail_fast():
                collected = self.collect(writer, envelope, context)
        except VendorClockBehind as behind:
            self._wait_for_vendor_clock(behind, context, getattr(self, "_waiting_since", None))
            raise  # not reached: the task defers
        except BudgetWaitTooLong as spent:
            self._wait_for_budget(spent)
            raise  # not reached: the task defers
        staged = StagedWindow(
            content_type=self.content_type,
            pattern=self.pattern,
            window_start=start,
            window_end=end,
            batches=tuple(writer.close()),
            cursor=collected.cursor,
            collected_at=envelope.ingest_time,
            figures=dict(collected.figures),
        )
        quarantined = staged.figures.get("quarantined", 0)
        self.log.info(
            "Staged %d rows of %s for window %s .. %s in %d part(s)%s",
            staged.rows,
            self.content_type,
            start,
            end,
            len(staged.batches),
            f"; {quarantined} record(s) quarantined (see the quarantine table)" if quarantined else "",
        )
        return staged
