"""The replay Params and rules: what the Trigger form accepts, what a run refuses and why, and the note
naming a run's window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

from seccollect.dag_factory.timetable import WindowCronTimetable
from seccollect.operators.collect import run_window
from seccollect.replay import ReplayRefused, check_replay, describe_window, replay_params
from seccollect.run_notes import window_note

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
RETENTION = timedelta(days=90)


def _check(start, end, reference=NOW):
    return check_replay(start, end, retention=RETENTION, reference=reference, now=NOW)


def test_the_forms_values_are_accepted_as_the_window() -> None:
    # What Airflow's date-time picker sends: the chosen minute as toISOString() in UTC.
    replay = _check("2026-12-01T09:00:00.000Z", "2026-12-01T10:00:00.000Z")
    assert (replay.start, replay.end) == (datetime(2026, 12, 1, 9, tzinfo=UTC), datetime(2026, 12, 1, 10, tzinfo=UTC))
    # Another offset is the same instant; a value without one is UTC.
    assert _check("2026-12-01T10:00:00+01:00", "2026-12-01T10:00:00").start == datetime(2026, 12, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        ("2026-12-01T10:00:00Z", "2026-12-01T09:00:00Z", "must be before window_end"),
        ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z", "must be before window_end"),
        ("2026-12-01T10:00:30Z", "2026-12-01T11:00:00Z", "must be a whole minute"),
        ("2026-12-01T10:00:00Z", None, "window_end is empty"),
        ("", "2026-12-01T10:00:00Z", "window_start is empty"),
        ("yesterday", "2026-12-01T10:00:00Z", "is not a date-time"),
        ("2026-12-05T09:00:00Z", "2026-12-05T10:05:00Z", "is in the future"),
        ("2026-09-05T09:59:00Z", "2026-09-05T11:00:00Z", "older than the vendor keeps data: 90 days"),
    ],
)
def test_a_replay_that_breaks_a_rule_is_refused_with_the_reason(start, end, reason) -> None:
    with pytest.raises(ReplayRefused, match=reason):
        _check(start, end)


def test_retention_is_judged_against_the_runs_own_date() -> None:
    """A run dated in March may replay March's windows (e2e runs of the March dataset), a run made
    today may not."""
    march = ("2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z")
    with pytest.raises(ReplayRefused, match="older than the vendor keeps data"):
        _check(*march)
    assert _check(*march, reference=datetime(2026, 3, 1, tzinfo=UTC)).start == datetime(2026, 3, 1, tzinfo=UTC)
    assert check_replay(*march, retention=None, reference=NOW, now=NOW).end == datetime(2026, 3, 1, 1, tzinfo=UTC)


def test_the_params_accept_nothing_or_date_times_and_reject_anything_else() -> None:
    """Airflow validates the Params (JSON schema with formats) in the form and when a run is created."""
    params = ParamsDict(replay_params(RETENTION, 5))
    assert params.validate() == {"window_start": None, "window_end": None}
    params["window_start"] = "2026-12-01T09:00:00.000Z"
    assert params.validate()["window_start"] == "2026-12-01T09:00:00.000Z"
    with pytest.raises(ParamValidationError, match="date-time"):
        params["window_end"] = "1 Dec 2026"
    schema = replay_params(RETENTION, 5)["window_start"].schema
    # What makes Airflow's Trigger form render a date-time picker (its FlexibleForm: string + date-time).
    assert schema["format"] == "date-time" and "string" in schema["type"]
    assert "90 days" in replay_params(RETENTION, 5)["window_start"].description


def _task(retention: timedelta | None = RETENTION):
    from seccollect.operators.collect import BaseCollectOperator

    with DAG("acme-x-replay", schedule=WindowCronTimetable("*/5 * * * *", retention=retention)):
        return BaseCollectOperator(task_id="collect_event", tenant="acme", instance_name="x", content_type="event")


def _context(conf, logical_date=None, interval=None):
    run = SimpleNamespace(conf=conf, run_after=datetime.now(UTC), logical_date=logical_date,
                          data_interval_start=interval[0] if interval else None,
                          data_interval_end=interval[1] if interval else None)
    return {"dag_run": run, "logical_date": logical_date, "data_interval_start": run.data_interval_start,
            "data_interval_end": run.data_interval_end}


def test_every_task_of_a_refused_replay_fails_without_retries_naming_the_rule() -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    task = _task()
    ok = {"window_start": (now - timedelta(hours=2)).isoformat(), "window_end": (now - timedelta(hours=1)).isoformat()}
    assert run_window(task, _context(ok)) == (now - timedelta(hours=2), now - timedelta(hours=1))
    backwards = {"window_start": ok["window_end"], "window_end": ok["window_start"]}
    with pytest.raises(AirflowFailException, match="Replay refused: window_start .* must be before window_end"):
        run_window(task, _context(backwards))
    # Explicit (rendered) bounds do not bypass the check: the templates render the same conf.
    with pytest.raises(AirflowFailException, match="Replay refused"):
        run_window(task, _context(backwards), backwards["window_start"], backwards["window_end"])
    # The form's empty fields: the run's own window.
    own = (now - timedelta(minutes=10), now - timedelta(minutes=5))
    assert run_window(task, _context({"window_start": None, "window_end": None}, own[0], own)) == own


def test_the_note_names_the_window_a_run_collects_or_why_its_replay_was_refused() -> None:
    task = _task()
    start = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    scheduled = _context({}, start, (start, start + timedelta(minutes=5)))["dag_run"]
    assert window_note(task.dag, scheduled) == "Window 2026-12-05 09:00 – 09:05 UTC"
    replay = _context({"window_start": "2026-12-04T22:00:00Z", "window_end": "2026-12-05T01:00:00Z"},
                      datetime(2026, 12, 5, 9, 7, tzinfo=UTC))["dag_run"]
    assert window_note(task.dag, replay) == "Replay of window 2026-12-04 22:00 – 2026-12-05 01:00 UTC"
    refused = _context({"window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T01:00:00Z"},
                       datetime(2026, 12, 5, 9, 7, tzinfo=UTC))["dag_run"]
    assert window_note(task.dag, refused).startswith("Replay refused: window_start (2026-01-01 00:00 UTC) is older")
    # Not a connector DAG: no note.
    with DAG("other", schedule=None) as other:
        pass
    assert window_note(other, scheduled) is None
    assert describe_window(start, start + timedelta(hours=1), replay=False) == "Window 2026-12-05 09:00 – 10:00 UTC"


def test_a_refused_replay_marks_no_window_failed(warehouse_conn, open_test_warehouse) -> None:
    """The failure callback of a refused replay's tasks records nothing (no window was attempted) and
    does not log its own failure to record one."""
    import logging

    from seccollect.operators import coverage

    task = _task()
    task.warehouse_conn_id = "seccollect_warehouse"
    backwards = {"window_start": "2026-12-01T10:00:00Z", "window_end": "2026-12-01T09:00:00Z"}
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warnings.append  # type: ignore[method-assign]
    logger = logging.getLogger(coverage.__name__)
    logger.addHandler(handler)
    try:
        coverage.record_window_failure({"task": task, "exception": AirflowFailException("Replay refused"),
                                        "run_id": "r", **_context(backwards)})
    finally:
        logger.removeHandler(handler)
    assert warnings == []
    with open_test_warehouse() as wh:
        assert wh.query("SELECT count(*) FROM window_failures")[0][0] == 0
