"""Build one Airflow DAG per connector instance.

Parse-time code: everything here runs on every dag-processor parse, so it only reads instance files
and constructs operators — no network, no database, no Variables, no heavy imports (vendor SDKs,
pyarrow and DuckDB are imported inside ``execute``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import DAG

from seccollect import registry
from seccollect.config.instance import InstanceBase
from seccollect.config.loader import InstanceFileError, load_all, load_for_dag_id
from seccollect.dag_factory.timetable import WindowCronTimetable, WindowDeltaTimetable
from seccollect.notifications import InstanceNotifier
from seccollect.operators.coverage import CoverageCheckOperator, record_window_failure
from seccollect.replay import replay_params

#: The DAGs' start date: any window since then can be replayed or backfilled. The scheduler itself starts
#: at the instance's start (see :func:`timetable_for`).
REPLAYABLE_SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def timetable_for(
    minutes: int, retention: timedelta | None = None, first_window: datetime | None = None
) -> WindowCronTimetable | WindowDeltaTimetable:
    """A data-interval timetable (never a trigger timetable: its windows would be zero-length) on which
    every run, scheduled, backfilled or manual, collects the window that starts at its logical date
    (:mod:`seccollect.dag_factory.timetable`).

    Intervals that divide an hour or a day are aligned to the clock (windows 10:00–10:05, …), which is
    what a person expects to see in the Grid; anything else is a fixed delta from the start date.

    :param retention: how far back the vendor keeps data: catch-up never schedules older windows.
    :param first_window: the instance's start: the scheduler schedules no earlier window (a person may
        still replay or backfill one).
    """
    rules: dict[str, Any] = {"retention": retention, "first_window": first_window}
    if minutes < 60 and 60 % minutes == 0:
        return WindowCronTimetable(f"*/{minutes} * * * *", "UTC", **rules)
    if minutes == 60:
        return WindowCronTimetable("0 * * * *", "UTC", **rules)
    if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        return WindowCronTimetable(f"0 */{minutes // 60} * * *", "UTC", **rules)
    return WindowDeltaTimetable(timedelta(minutes=minutes), **rules)


def indices_of(instance: InstanceBase, content_type: str | None = None) -> list[str]:
    """Warehouse tables an instance (or one of its content types) writes to."""
    content_types = [content_type] if content_type else list(instance.selected_content_types)
    return registry.get(instance.connector_type).tables_of(content_types)


def _without_credentials(value: Any) -> Any:
    """A URL setting with any user and password removed (instance files refuse them; belt and braces)."""
    if isinstance(value, str) and "@" in value and "://" in value:
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return value


def doc_md(instance: InstanceBase, notes: str = "") -> str:
    """The DAG's docs: settings (instance files hold no secrets), indices and a query to verify ingestion."""
    settings = instance.model_dump(mode="json", exclude_none=True)
    settings["interval_minutes"] = instance.interval
    settings["content_types"] = list(instance.selected_content_types)
    settings["task_timeout_minutes"] = int(instance.task_timeout.total_seconds() // 60)
    settings["start_date"] = instance.start.isoformat()
    rows = "\n".join(f"| `{k}` | `{json.dumps(_without_credentials(v))}` |" for k, v in sorted(settings.items()))
    tables = indices_of(instance)
    verify = (
        f"SELECT content_type, window_start, window_end, staged_rows, inserted_rows, duplicate_rows, quarantined\n"
        f"FROM collection_ledger WHERE dag_id = '{instance.dag_id}'\nORDER BY window_start DESC LIMIT 20;\n\n"
        f"SELECT msg_class, count(*), max(event_time) FROM {tables[0]}\n"
        f"WHERE tenant = '{instance.tenant}' AND instance = '{instance.name}' GROUP BY msg_class;"
    )
    return (
        f"# {instance.dag_id}\n\n"
        f"{instance.vendor} connector instance `{instance.name}` of tenant `{instance.tenant}`. "
        f"Each run collects the window that starts at its logical date (a manual run dated at no window "
        f"start: the last complete window before it; a replay: the Trigger form's `window_start`/`window_end`, "
        f"UTC date-times, or the same run conf keys) for "
        f"every content type, stages it, and loads it idempotently into {', '.join(f'`{t}`' for t in tables)}. Re-running or "
        f"backfilling a window never duplicates rows. Credentials: Airflow connection `{instance.conn_id}`.\n\n"
        f"Every task stops after `task_timeout_minutes` ({int(instance.task_timeout.total_seconds() // 60)} "
        "min; 4 intervals by default, at least 60 and at most 1440) and is retried like any failure.\n\n"
        f"{notes}\n\n"
        f"## Settings\n\n| setting | value |\n|---|---|\n{rows}\n\n"
        f"## Verify ingestion\n\n```sql\n{verify}\n```\n"
    )


def build_dag(instance: InstanceBase) -> DAG:
    """The DAG of one instance: its schedule, retries, timeouts and docs, plus the vendor's tasks."""
    spec = registry.get(instance.connector_type)
    default_args: dict[str, Any] = {
        "owner": instance.tenant,
        "retries": instance.retries,
        "retry_delay": timedelta(seconds=instance.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=instance.max_retry_delay_minutes),
        "execution_timeout": instance.task_timeout,
        # A collect or load that fails for good marks its window 'failed' in the coverage view, and a person
        # hears about it when the instance says who (its notify settings).
        "on_failure_callback": record_window_failure,
    }
    notify = instance.notify.model_dump(mode="json") if instance.notify else None
    if notify and notify["on_failure"]:
        default_args["on_failure_callback"] = [record_window_failure, InstanceNotifier(notify)]
    dag = DAG(
        dag_id=instance.dag_id,
        schedule=timetable_for(instance.interval, spec.retention, instance.start),
        # Not the instance's start: Airflow creates no task for a run dated before the DAG's start date
        # (the run would succeed empty), and any window must stay replayable. Where the scheduler
        # starts is the timetable's first window (instance.start).
        start_date=REPLAYABLE_SINCE,
        catchup=instance.catchup,
        max_active_runs=instance.max_active_runs,
        default_args=default_args,
        # The Trigger form's "Replay a window" fields (empty: the run's own window).
        params=replay_params(spec.retention, instance.interval),
        tags=sorted({f"tenant:{instance.tenant}", f"vendor:{instance.vendor}", f"category:{instance.category}",
                     *(f"content:{c}" for c in instance.selected_content_types)}),
        description=f"{instance.vendor} {'/'.join(instance.selected_content_types)} every {instance.interval} min "
        f"for tenant {instance.tenant}",
    )
    dag.doc_md = doc_md(instance, spec.notes(instance) if callable(spec.notes) else spec.notes)
    spec.build_tasks(dag, instance)
    with dag:
        # Beside the vendor's tasks, not after them: it checks the windows before this one (this run's own
        # is still in its grace period), and as a task of its own it can fail the run without ever
        # hiding the vendor tasks' outcome.
        CoverageCheckOperator(
            task_id="check_coverage",
            schedules=coverage_schedules(instance, spec),
            warehouse_conn_id=instance.warehouse_conn_id,
            notify=notify,
        )
    return dag


def coverage_schedules(instance: InstanceBase, spec: registry.ConnectorSpec) -> list[dict[str, Any]]:
    """Per content type: which windows are due (see :class:`CoverageCheckOperator`)."""
    interval = timedelta(minutes=instance.interval)
    # A window may still be uncollected for two intervals and half an hour after its end (a run waits for
    # its data, retries, queues behind others) before it counts as missing.
    grace = 2 * interval + timedelta(minutes=30)
    schedules = []
    for name in instance.selected_content_types:
        every = spec.content_types[name].every or interval
        first = instance.start
        if every != interval:
            # The first window that holds a multiple of ``every`` (e.g. midnight UTC for a daily snapshot).
            boundary = datetime.fromtimestamp(-(-first.timestamp() // every.total_seconds()) * every.total_seconds(), UTC)
            first = first + ((boundary - first) // interval) * interval
        schedules.append({
            "content_type": name,
            "first_window": first.isoformat(),
            "step_seconds": int(every.total_seconds()),
            "window_seconds": int(interval.total_seconds()),
            "retention_seconds": int(spec.retention.total_seconds()) if spec.retention else None,
            "grace_seconds": int(grace.total_seconds()),
        })
    return schedules


def register_dags(namespace: dict[str, Any], directory: Path | None = None, dag_id: str | None = None) -> list[InstanceFileError]:
    """Put the DAG of every valid instance into ``namespace`` (a DAG file's ``globals()``).

    :param directory: the folder of instance files (see
        :func:`~seccollect.config.loader.connectors_dir`); ``None`` means ``$CONNECTORS_DIR``.
    :param dag_id: when set (a task run's parse, from ``get_parsing_context()``), only that DAG is
        built, and only its instance file is read.
    :return: the errors of instance files that produced no DAG (a missing folder included).
    """
    if dag_id is not None:
        instance = load_for_dag_id(dag_id, directory)
        if instance is not None:
            namespace[dag_id] = build_dag(instance)
        return []
    result = load_all(directory)
    for instance in result.instances:
        namespace[instance.dag_id] = build_dag(instance)
    return result.errors
