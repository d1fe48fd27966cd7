"""Failures, gaps and silence reach a person: mail through an SMTP server and a webhook, both on 127.0.0.1.

Every notice must name the DAG, the window(s) and the reason; each gap or silence is told once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from seccollect.notifications import InstanceNotifier, Notice, format_window, send
from seccollect.operators.coverage import CoverageCheckOperator, find_silences
from seccollect.warehouse import open_warehouse
from seccollect.warehouse.base import WindowKey
from tests.notify_sinks import smtp_sink, webhook_sink

DAG_ID = "acme-acme-notified"
STEP = timedelta(minutes=30)


@pytest.fixture
def sinks(monkeypatch: pytest.MonkeyPatch):
    """Both sinks, with the Airflow connections ``notify_mail`` and ``notify_hook`` pointing at them."""
    with smtp_sink() as mail, webhook_sink() as hook:
        monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_MAIL", json.dumps(mail.connection()))
        monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_HOOK", json.dumps(hook.connection()))
        yield mail, hook


SETTINGS = {"smtp_conn_id": "notify_mail", "to": ["oncall@example.org"], "http_conn_id": "notify_hook",
            "on_failure": True, "on_gap": True, "silence_windows": 3}


def test_a_notice_reaches_both_sinks_naming_dag_window_and_reason(sinks) -> None:
    mail, hook = sinks
    start = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    notice = Notice(kind="failure", dag_id="acme-netskope-v2", window=format_window(start, start + timedelta(minutes=5)),
                    reason="VendorApiError: HTTP 401 Unauthorized", run_id="scheduled__x", task_id="collect_alert")
    assert send(SETTINGS, notice, {}) == []
    assert len(mail.mails) == 1 and len(hook.posts) == 1
    sender, recipients, message = mail.mails[0]
    assert recipients == ["oncall@example.org"] and sender == "seccollect@example.org"
    text = mail.text(message)
    for expected in ("acme-netskope-v2", "2026-03-01 10:00 .. 10:05 UTC", "HTTP 401 Unauthorized", "collect_alert"):
        assert expected in text and expected in hook.posts[0]["text"], expected
    assert hook.posts[0]["kind"] == "failure" and hook.posts[0]["dag_id"] == "acme-netskope-v2"


def test_an_unreachable_channel_is_logged_not_raised_and_the_other_still_delivers(sinks, monkeypatch) -> None:
    from seccollect_dev.airflow_stack import free_port

    mail, hook = sinks
    monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_MAIL", json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": free_port(),
         "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "x@example.org", "retry_limit": 0,
                   "timeout": 3}}))
    notice = Notice(kind="gap", dag_id="d", window="w", reason="r")
    assert send(SETTINGS, notice, {}) == ["smtp"]
    assert len(hook.posts) == 1


# --- the coverage check: gaps and silence ------------------------------------------------------------


def _first() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)


class _TaskInstance:
    """The Task SDK calls the check makes: run counts, and XCom kept across runs like Airflow does."""

    def __init__(self, xcom: dict[str, Any]) -> None:
        self.xcom = xcom

    def get_dr_count(self, **_: Any) -> int:
        return 0

    def xcom_pull(self, *, task_ids: str, key: str, include_prior_dates: bool) -> Any:
        assert include_prior_dates
        return self.xcom.get(key)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _check(**settings: Any) -> CoverageCheckOperator:
    with DAG(DAG_ID, schedule=None):
        return CoverageCheckOperator(task_id="check_coverage", notify={**SETTINGS, **settings}, schedules=[{
            "content_type": "event", "first_window": _first().isoformat(), "step_seconds": 1800,
            "window_seconds": 1800, "grace_seconds": 2700, "retention_seconds": None,
        }])


def _context(xcom: dict[str, Any], own: int = 6) -> dict[str, Any]:
    start = _first() + own * STEP
    return {"ti": _TaskInstance(xcom), "data_interval_start": start, "data_interval_end": start + STEP,
            "run_id": f"scheduled__{start.isoformat()}"}


def _load(start: datetime, records: int) -> None:
    """The window loaded, with ``records`` received from the vendor (the ledger's figure the check reads)."""
    with open_warehouse("seccollect_warehouse") as wh:
        wh.ensure_schema()
        wh.load_window(WindowKey(DAG_ID, "event", start, start + STEP), [])
        with wh.transaction():
            wh.execute("UPDATE collection_ledger SET staged_rows = ?, inserted_rows = ? WHERE dag_id = ? "
                       "AND window_start = ?", (records, records, DAG_ID, start))


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_a_gap_is_told_once_naming_the_dag_its_windows_and_how_to_fill_it(warehouse_conn, sinks) -> None:
    mail, hook = sinks
    for n in (0, 1, 4, 5):  # windows 2 and 3 were never collected
        _load(_first() + n * STEP, 1)
    xcom: dict[str, Any] = {}
    with pytest.raises(AirflowFailException):
        _check().execute(_context(xcom))
    assert len(mail.mails) == 1 and len(hook.posts) == 1
    text = mail.text(mail.mails[0][2])
    gap = format_window(_first() + 2 * STEP, _first() + 4 * STEP)
    for expected in (DAG_ID, gap, "2 window(s) missing", "airflow backfill create --dag-id " + DAG_ID):
        assert expected in text and expected in hook.posts[0]["text"], expected
    assert hook.posts[0]["kind"] == "gap"

    # The next run (its predecessor's window collected) finds the same gap: still failed, nobody told again.
    _load(_first() + 6 * STEP, 1)
    with pytest.raises(AirflowFailException):
        _check().execute(_context(xcom, own=7))
    assert len(mail.mails) == 1 and len(hook.posts) == 1


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_silence_after_data_is_told_once_and_a_quiet_instance_is_not_silent(warehouse_conn, sinks) -> None:
    mail, hook = sinks
    for n, records in enumerate([5, 3, 0, 0, 0, 0]):  # data, then four empty windows
        _load(_first() + n * STEP, records)
    xcom: dict[str, Any] = {}
    _check().execute(_context(xcom))
    assert len(hook.posts) == 1 and len(mail.mails) == 1
    post = hook.posts[0]
    assert post["kind"] == "silence" and post["dag_id"] == DAG_ID
    assert post["window"] == format_window(_first() + 2 * STEP, _first() + 6 * STEP)
    assert "event: no records in the last 4 collected window(s)" in post["reason"]
    _load(_first() + 6 * STEP, 0)  # the silence goes on: the next run says nothing more
    _check().execute(_context(xcom, own=7))
    assert len(hook.posts) == 1, "the same silence was told twice"
    assert xcom["reported_notices"] == [f"silence|event|{(_first() + 2 * STEP).isoformat()}"]


def test_find_silences_needs_enough_empty_windows_after_data() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)

    def rows(counts: list[int | None]) -> list[dict[str, Any]]:
        return [{"content_type": "alert", "status": "collected", "window_start": start + n * STEP,
                 "window_end": start + (n + 1) * STEP, "rows_staged": c} for n, c in enumerate(counts)]

    later = start + timedelta(days=1)
    assert find_silences(rows([4, 0, 0]), later, 3) == []  # only two empty windows
    assert find_silences(rows([0, 0, 0, 0]), later, 3) == []  # never had data: empty, not silent
    found = find_silences(rows([4, 1, 0, None, 0]), later, 3)
    assert found == [{"content_type": "alert", "window_start": start + 2 * STEP, "window_end": start + 5 * STEP,
                      "windows": 3}]
    assert find_silences(rows([4, 0, 0, 0]), start + 2 * STEP, 3) == []  # only windows before the run's own


def test_the_failure_notifier_leaves_the_coverage_check_alone(sinks) -> None:
    mail, hook = sinks
    with DAG("acme-acme-x", schedule=None):
        check = CoverageCheckOperator(task_id="check_coverage", schedules=[])
    InstanceNotifier(SETTINGS).notify({"task": check, "exception": AirflowFailException("gaps")})
    assert mail.mails == [] and hook.posts == []
