"""A listener (registered by the plugin) that writes on every connector run the window it collects.

A run's header in the UI shows its logical date, which is not its window for a replay or a manual run
(and a Task SDK task cannot write to its run). When the scheduler starts a run of a connector DAG, this
sets the run's note to its window ("Window 2026-03-01 10:00 – 10:05 UTC", "Replay of window …"), or,
for a replay the rules refuse (:mod:`seccollect.replay`), to the reason, which its tasks then fail
with. A note a person wrote is kept, below the window.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)


def window_note(dag: Any, dag_run: Any) -> str | None:
    """The note naming the window ``dag_run`` collects, or None for a DAG that is not a connector's."""
    from airflow.sdk.exceptions import AirflowFailException

    from seccollect.dag_factory.timetable import _WindowRules
    from seccollect.operators.collect import run_window
    from seccollect.replay import describe_window, replay_of

    if dag is None or not isinstance(getattr(dag, "timetable", None), _WindowRules):
        return None
    context = {
        "dag_run": dag_run,
        "logical_date": dag_run.logical_date,
        "data_interval_start": dag_run.data_interval_start,
        "data_interval_end": dag_run.data_interval_end,
    }
    try:
        start, end = run_window(SimpleNamespace(dag=dag), context)
    except AirflowFailException as refused:
        return str(refused)
    return describe_window(start, end, replay=replay_of(dag_run.conf) is not None)


@hookimpl
def on_dag_run_running(dag_run: DagRun, msg: str) -> None:
    """The scheduler started ``dag_run``: note its window (never fails the scheduler's loop)."""
    if msg != "started":
        return
    try:
        note = window_note(getattr(dag_run, "dag", None), dag_run)
        if note is None:
            return
        existing = dag_run.note or ""
        if note in existing:
            return
        dag_run.note = f"{note}\n\n{existing}" if existing else note
    except Exception:  # noqa: BLE001 - a note is a courtesy; the run goes on without it
        log.warning("Could not note the window of %s", getattr(dag_run, "run_id", "?"), exc_info=True)
