"""CoverageCheckOperator: fail, naming them, when windows of the instance were never collected.

Every connector DAG runs this check (``check_coverage``) beside its vendor tasks. It records the instance's schedule in the warehouse (``instance_schedules``: the ``coverage``
view lays out the expected windows from it) and looks for windows that are ``missing`` (no run
collected them) or ``failed`` (their collect or load failed for good, see
:func:`record_window_failure`). A window whose run is still queued or running is not a gap yet.
Only windows before the run's own window are judged (later ones are the scheduler's work still to do,
e.g. while it catches up after an outage). Gaps fail the task at once (``AirflowFailException``, no
retry), so Airflow's own failure handling (the grid, notifications) reports them, with the command that
fills them. The task still has a few retries for what is not a gap: a worker lost mid-check, the
warehouse briefly away.

With the instance's ``notify`` settings it also tells a person (:mod:`seccollect.notifications`) about
gaps and about silence (a content type that brought no records for ``silence_windows`` collected windows
in a row, right after windows that had some). Each gap or silence is told once: what was told is kept in
the task's XCom (``reported_notices``) and the next run compares with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Gaps named one by one in the failure message; the rest are counted.
NAMED_GAPS = 20


class CoverageCheckOperator(BaseOperator):
    """Check that every window of the instance since its start was collected.

    :param schedules: per content type: ``content_type``, ``first_window`` (ISO), ``step_seconds``
        (how often a window is due), ``window_seconds``, ``retention_seconds`` (or ``None``) and
        ``grace_seconds`` (how long after its end a window may still be uncollected).
    :param warehouse_conn_id: the warehouse holding the ledger.
    :param notify: the instance's ``notify`` settings (``NotifySettings.model_dump()``), or ``None``.
    """

    ui_color = "#eef3f7"
    #: The failure notifier leaves this task alone: it tells about gaps itself, once each.
    sends_own_notices = True

    def __init__(
        self,
        *,
        schedules: Sequence[Mapping[str, Any]],
        warehouse_conn_id: str = "seccollect_warehouse",
        notify: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Not 0: a check lost with its worker (or a warehouse hiccup) must not fail the run; gaps
        # themselves never retry (AirflowFailException).
        kwargs.setdefault("retries", 2)
        super().__init__(**kwargs)
        self.schedules = [dict(s) for s in schedules]
        self.warehouse_conn_id = warehouse_conn_id
        self.notify = dict(notify) if notify else None

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from seccollect.warehouse import open_warehouse

        with open_warehouse(self.warehouse_conn_id) as warehouse:
            warehouse.ensure_schema()
            record_schedules(warehouse, self.dag_id, self.schedules)
            rows = warehouse.coverage(self.dag_id)
            counts = _status_counts(rows)
            gaps = [row for row in rows if row["status"] in ("missing", "failed")]
        # Only windows before this run's own are judged: later ones are the scheduler's work still to do
        # (after an outage it creates the missed runs a few at a time, max_active_runs), and this run's
        # own window is being collected beside this task. The latest scheduled run judges them in turn.
        own_start, _ = _window_of(self, context)
        gaps = [g for g in gaps if g["window_start"] < own_start]
        in_progress = _windows_in_progress(context, self.dag_id, [g["window_start"] for g in gaps])
        gaps = [g for g in gaps if g["window_start"] not in in_progress]
        self.log.info("Coverage of %s: %s", self.dag_id, counts or "no windows yet")
        if self.notify:
            silence_windows = self.notify.get("silence_windows")
            silences = find_silences(rows, own_start, silence_windows) if silence_windows else []
            self._tell(context, self.notify, gaps, silences)
        if gaps:
            raise AirflowFailException(describe_gaps(self.dag_id, gaps))
        return {"windows": counts}

    def _tell(self, context: Context, settings: Mapping[str, Any], gaps: Sequence[Mapping[str, Any]],
              silences: Sequence[Mapping[str, Any]]) -> None:
        """Notify the gaps and silences not told before; remember what is told (XCom ``reported_notices``)."""
        from seccollect.notifications import Notice, format_window, send

        ti = context.get("ti")
        told: set[str] = set()
        if ti is not None and hasattr(ti, "xcom_pull"):
            told = set(ti.xcom_pull(task_ids=self.task_id, key=REPORTED_KEY, include_prior_dates=True) or [])
        current = {_gap_key(g): g for g in gaps} if settings.get("on_gap", True) else {}
        current.update({_silence_key(s): s for s in silences})
        new_gaps = [g for k, g in current.items() if k not in told and k.startswith("gap|")]
        new_silences = [s for k, s in current.items() if k not in told and k.startswith("silence|")]
        undelivered: set[str] = set()
        run_id = context.get("run_id")
        if new_gaps:
            window = format_window(min(g["window_start"] for g in new_gaps), max(g["window_end"] for g in new_gaps))
            notice = Notice(kind="gap", dag_id=self.dag_id, window=window, reason=describe_gaps(self.dag_id, new_gaps),
                            run_id=run_id, task_id=self.task_id)
            if send(settings, notice, context):
                undelivered.update(_gap_key(g) for g in new_gaps)
        for silence in new_silences:
            reason = (
                f"{silence['content_type']}: no records in the last {silence['windows']} collected window(s) "
                f"(since {silence['window_start']:%Y-%m-%d %H:%M} UTC), after windows that had records. The vendor "
                "may have stopped sending (a disabled log source, a changed scope or filter of the credential); "
                f"check the source and the connection used by {self.dag_id}."
            )
            notice = Notice(kind="silence", dag_id=self.dag_id,
                            window=format_window(silence["window_start"], silence["window_end"]), reason=reason,
                            run_id=run_id, task_id=self.task_id)
            if send(settings, notice, context):
                undelivered.add(_silence_key(silence))
        if ti is not None and hasattr(ti, "xcom_push"):
            # What is still true and was told (or told before): the next run stays silent about it. An
            # undelivered notice is tried again by the next run.
            ti.xcom_push(key=REPORTED_KEY, value=sorted(set(current) - undelivered))


#: XCom key of the gaps and silences a coverage check has told about.
REPORTED_KEY = "reported_notices"


def _gap_key(gap: Mapping[str, Any]) -> str:
    return f"gap|{gap['content_type']}|{gap['window_start'].isoformat()}|{gap['status']}"


def _silence_key(silence: Mapping[str, Any]) -> str:
    return f"silence|{silence['content_type']}|{silence['window_start'].isoformat()}"


def find_silences(rows: Sequence[Mapping[str, Any]], before: datetime, windows: int) -> list[dict[str, Any]]:
    """Content types whose last ``windows`` (or more) collected windows before ``before`` brought no
    records, right after a collected window that brought some (the instance normally has data: a content
    type that never had any is not silent, just empty).

    :return: per silent content type: ``content_type``, ``window_start`` (the first empty window),
        ``window_end`` (the last one's end) and ``windows`` (how many).
    """
    collected: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["status"] in ("collected", "late") and row["window_start"] < before:
            collected.setdefault(row["content_type"], []).append(row)
    found = []
    for content_type, series in sorted(collected.items()):
        series.sort(key=lambda r: r["window_start"])
        empty = 0
        while empty < len(series) and not (series[-1 - empty]["rows_staged"] or 0):
            empty += 1
        if empty >= windows and empty < len(series):
            found.append({"content_type": content_type, "window_start": series[-empty]["window_start"],
                          "window_end": series[-1]["window_end"], "windows": empty})
    return found


def record_schedules(warehouse: Any, dag_id: str, schedules: Sequence[Mapping[str, Any]]) -> None:
    now = datetime.now(UTC)
    with warehouse.transaction():
        for schedule in schedules:
            warehouse.execute(
                "INSERT INTO instance_schedules (dag_id, content_type, first_window, step_seconds, window_seconds, "
                "retention_seconds, grace_seconds, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (dag_id, content_type) DO UPDATE SET first_window = excluded.first_window, "
                "step_seconds = excluded.step_seconds, window_seconds = excluded.window_seconds, "
                "retention_seconds = excluded.retention_seconds, grace_seconds = excluded.grace_seconds, "
                "updated_at = excluded.updated_at",
                (dag_id, schedule["content_type"], datetime.fromisoformat(schedule["first_window"]),
                 schedule["step_seconds"], schedule["window_seconds"], schedule.get("retention_seconds"),
                 schedule["grace_seconds"], now),
            )


def _status_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _windows_in_progress(context: Context, dag_id: str, starts: Sequence[datetime]) -> set[datetime]:
    """The window starts (= logical dates) among ``starts`` whose run is queued or running."""
    ti = context.get("ti")
    if ti is None or not starts or not hasattr(ti, "get_dr_count"):
        return set()
    states = ["queued", "running"]
    if ti.get_dr_count(dag_id=dag_id, logical_dates=list(starts), states=states) == 0:
        return set()
    return {start for start in starts[:200] if ti.get_dr_count(dag_id=dag_id, logical_dates=[start], states=states)}


def describe_gaps(dag_id: str, gaps: Sequence[Mapping[str, Any]]) -> str:
    """A message a person can act on: the gaps (consecutive windows joined), why, and how to fill them."""
    spans: list[list[Mapping[str, Any]]] = []
    for gap in gaps:
        last = spans[-1][-1] if spans else None
        if last and last["content_type"] == gap["content_type"] and last["window_end"] == gap["window_start"] \
                and last["status"] == gap["status"]:
            spans[-1].append(gap)
        else:
            spans.append([gap])
    lines = []
    for span in spans[:NAMED_GAPS]:
        first, last = span[0], span[-1]
        why = f" ({first['failed_task']}: {str(first['failure'])[:200]})" if first["status"] == "failed" else ""
        lines.append(
            f"  - {first['content_type']} {first['window_start']:%Y-%m-%d %H:%M} .. {last['window_end']:%Y-%m-%d %H:%M} "
            f"UTC: {len(span)} window(s) {first['status']}{why}"
        )
    if len(spans) > NAMED_GAPS:
        lines.append(f"  - … and {len(spans) - NAMED_GAPS} more gap(s)")
    start = min(g["window_start"] for g in gaps)
    end = max(g["window_end"] for g in gaps)
    return (
        f"{len(gaps)} window(s) of {dag_id} were never collected:\n" + "\n".join(lines) + "\n"
        f"Fill them (idempotent, nothing is duplicated): airflow backfill create --dag-id {dag_id} "
        f"--from-date {start.isoformat()} --to-date {(end - timedelta(seconds=1)).isoformat()} "
        "--reprocess-behavior failed  (or the UI's Backfill dialog, 'Missing and Errored Runs'). "
        "SELECT * FROM coverage WHERE dag_id = '" + dag_id + "' AND status IN ('missing', 'failed')"
    )


def record_window_failure(context: Context) -> None:
    """``on_failure_callback`` of every task: a collect or load task that failed for good marks its
    window ``failed`` in the coverage view, with the reason. Never raises (a callback error would hide
    the task's own)."""
    import logging

    log = logging.getLogger(__name__)
    try:
        task = context["task"]
        content_type = getattr(task, "content_type", None)
        warehouse_conn_id = getattr(task, "warehouse_conn_id", None) or "seccollect_warehouse"
        if content_type is None:
            return
        from airflow.sdk.exceptions import AirflowFailException

        try:
            start, end = _window_of(task, context)
        except AirflowFailException:
            return  # a refused replay (seccollect.replay): no window was attempted, none failed
        from seccollect.warehouse import open_warehouse

        reason = str(context.get("exception") or "failed")[:2000]
        with open_warehouse(warehouse_conn_id) as warehouse:
            warehouse.ensure_schema()
            with warehouse.transaction():
                warehouse.execute(
                    "INSERT INTO window_failures (dag_id, content_type, window_start, window_end, task_id, run_id, "
                    "reason, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (dag_id, content_type, window_start, window_end) DO UPDATE SET "
                    "task_id = excluded.task_id, run_id = excluded.run_id, reason = excluded.reason, "
                    "failed_at = excluded.failed_at",
                    (task.dag_id, content_type, start, end, task.task_id, context.get("run_id"), reason, datetime.now(UTC)),
                )
    except Exception:  # noqa: BLE001 - see the docstring
        log.warning("Could not record the window's failure in the warehouse", exc_info=True)


def _window_of(task: Any, context: Context) -> tuple[datetime, datetime]:
    from seccollect.operators.collect import run_window

    start, end = getattr(task, "window_start", None), getattr(task, "window_end", None)
    if isinstance(start, str | datetime) and isinstance(end, str | datetime) and "{{" not in str(start):
        return run_window(task, context, start, end)
    return run_window(task, context)
