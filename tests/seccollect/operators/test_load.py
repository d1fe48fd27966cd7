"""WarehouseLoadOperator: what it loads from its upstream tasks' staged windows, and how it fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from seccollect.operators.load import WarehouseLoadOperator
from seccollect.staging.handoff import StagedWindow
from seccollect.warehouse import open_warehouse

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 0, 5, tzinfo=UTC)
EMPTY = StagedWindow("event", "windowed", START, END)


def _run(staged: Any) -> dict[str, Any]:
    with DAG("acme-netskope-x", schedule=None):
        operator = WarehouseLoadOperator(task_id="load_event", staged=staged, content_type="event")
    context = {"data_interval_start": START, "data_interval_end": END, "run_id": "r1"}
    return operator.execute(context)  # type: ignore[arg-type]


def test_an_empty_window_still_gets_its_ledger_row(warehouse_conn: str) -> None:
    assert _run(EMPTY)["tables"] == {}
    with open_warehouse("seccollect_warehouse") as wh:
        assert wh.query("SELECT dag_id, content_type, run_id, staged_rows FROM collection_ledger") == [
            ("acme-netskope-x", "event", "r1", 0)
        ]


def test_a_warehouse_with_an_earlier_schema_fails_without_retries(warehouse_conn: str) -> None:
    with open_warehouse("seccollect_warehouse") as wh:
        wh.ensure_schema()
        with wh.transaction():  # as an earlier version created it
            wh._execute("ALTER TABLE alert_sources ADD COLUMN raw VARCHAR")
    with pytest.raises(AirflowFailException, match=r"alert_sources: column\(s\) raw this version does not write"):
        _run(None)


def _old_staged_window(root, dag_id: str):
    """A window staged 30 days ago (its part's file dated then)."""
    import os
    from datetime import timedelta

    from airflow.sdk import ObjectStoragePath

    folder = root / dag_id / "20260101T000000Z--20260101T000500Z" / "collect_event"
    folder.mkdir(parents=True)
    part = folder / "syslog-00000.parquet"
    part.write_bytes(b"old")
    old = (datetime.now(UTC) - timedelta(days=30)).timestamp()
    os.utime(part, (old, old))
    assert ObjectStoragePath(f"file://{part}").exists()
    return folder.parent


def test_a_load_prunes_its_dags_staged_windows_past_the_retention(warehouse_conn: str, staging, monkeypatch) -> None:
    monkeypatch.delenv("SECCOLLECT_STAGING_RETENTION_HOURS", raising=False)
    mine = _old_staged_window(staging, "acme-netskope-x")
    other = _old_staged_window(staging, "acme-netskope-y")
    _run([EMPTY])
    assert not mine.exists() and other.exists()

    # Retention 0 keeps everything.
    kept = _old_staged_window(staging, "acme-netskope-x")
    monkeypatch.setenv("SECCOLLECT_STAGING_RETENTION_HOURS", "0")
    _run([EMPTY])
    assert kept.exists()


def test_a_pruning_failure_does_not_fail_the_committed_load(warehouse_conn: str, staging, monkeypatch) -> None:
    import seccollect.staging.store as store

    def broken(*args: Any, **kwargs: Any) -> list[str]:
        raise PermissionError("staging is read-only")

    monkeypatch.setattr(store, "prune_staging", broken)
    assert _run([[EMPTY]])["tables"] == {}
    with open_warehouse("seccollect_warehouse") as wh:
        assert len(wh.query("SELECT * FROM collection_ledger")) == 1


def test_staged_windows_that_disagree_on_their_window_fail_without_retries(warehouse_conn: str) -> None:
    other = StagedWindow("event", "windowed", END, END.replace(minute=10))
    with pytest.raises(AirflowFailException, match="disagree on their window"):
        _run([EMPTY, other])


def test_the_vendor_query_range_is_kept_with_the_window(warehouse_conn: str) -> None:
    import json

    cursor = {"query_start": START.isoformat(), "query_end": END.isoformat()}
    _run(StagedWindow("event", "windowed", START, END, cursor=cursor))
    with open_warehouse("seccollect_warehouse") as wh:
        ((stored,),) = wh.query("SELECT cursor FROM collection_ledger")
    assert (stored if isinstance(stored, dict) else json.loads(stored)) == cursor  # psycopg parses JSON
