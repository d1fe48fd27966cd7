"""WarehouseLoadOperator: what it loads from its upstream tasks' XCom, and how it fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from seccollect.operators.load import WarehouseLoadOperator
from seccollect.warehouse import open_warehouse

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 0, 5, tzinfo=UTC)


class _TaskInstance:
    def __init__(self, xcom: dict[str, Any]) -> None:
        self.xcom = xcom

    def xcom_pull(self, task_ids: str) -> Any:
        return self.xcom.get(task_ids)


def _run(xcom: dict[str, Any]) -> dict[str, Any]:
    with DAG("acme-netskope-x", schedule=None):
        operator = WarehouseLoadOperator(task_id="load_event", source_task_ids=["collect_event"], content_type="event")
    context = {"ti": _TaskInstance(xcom), "data_interval_start": START, "data_interval_end": END, "run_id": "r1"}
    return operator.execute(context)  # type: ignore[arg-type]


def test_an_empty_window_still_gets_its_ledger_row(warehouse_conn: str) -> None:
    assert _run({"collect_event": {"window": [START.isoformat(), END.isoformat()], "batches": []}})["tables"] == {}
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
        _run({})
