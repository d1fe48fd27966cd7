"""The Coverage page (the plugin's FastAPI app, through Starlette's TestClient): a gap shows once made
and is gone once filled; windows link to their runs; only readable DAGs; a login is needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from seccollect.coverage_page import URL_PREFIX, create_app, readable_dag_ids
from seccollect.operators.coverage import record_schedules, record_window_failure
from seccollect.warehouse import open_warehouse
from seccollect.warehouse.base import WindowKey

DAG_ID = "acme-netskope-page"
STEP = timedelta(minutes=30)


def _first() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)


def _load(start: datetime, dag_id: str = DAG_ID) -> None:
    with open_warehouse("seccollect_warehouse") as wh:
        wh.load_window(WindowKey(dag_id, "alert", start, start + STEP), [], run_id=f"replay__{start:%H%M}")


@pytest.fixture
def page(warehouse_conn):
    with open_warehouse("seccollect_warehouse") as wh:
        wh.ensure_schema()
        for dag_id in (DAG_ID, "other-tenant-dag"):
            record_schedules(wh, dag_id, [{"content_type": "alert", "first_window": _first().isoformat(),
                                           "step_seconds": 1800, "window_seconds": 1800, "grace_seconds": 2700,
                                           "retention_seconds": None}])
    app = create_app()
    app.dependency_overrides[readable_dag_ids] = lambda: {DAG_ID}
    # Mounted as the api-server mounts it, so links are built from the mount point.
    from fastapi import FastAPI

    root = FastAPI()
    root.mount(URL_PREFIX, app)
    return TestClient(root)


def _gaps(text: str) -> dict[str, str]:
    import re

    return dict((start, status) for status, start in re.findall(
        r'<li class="gap" data-status="(\w+)" data-window-start="([^"]+)"', text))


@pytest.mark.parametrize("warehouse_conn", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_gap_shows_once_made_and_is_gone_once_filled(page) -> None:
    first = _first()
    for n in (0, 1, 4):
        _load(first + n * STEP)
    _load(first + 2 * STEP, dag_id="other-tenant-dag")

    class _Task:
        dag_id, task_id, content_type = DAG_ID, "collect_alert", "alert"
        warehouse_conn_id = "seccollect_warehouse"
        window_start, window_end = (first + 5 * STEP).isoformat(), (first + 6 * STEP).isoformat()

    record_window_failure({"task": _Task(), "exception": RuntimeError("Netskope said: Token expired"),
                           "run_id": "scheduled__failed5"})
    answer = page.get(f"{URL_PREFIX}/coverage", params={"hours": 6})
    assert answer.status_code == 200, answer.text
    text = answer.text
    gaps = _gaps(text)
    assert gaps[(first + 2 * STEP).isoformat()] == "missing"
    assert gaps[(first + 3 * STEP).isoformat()] == "missing"
    assert gaps[(first + 5 * STEP).isoformat()] == "failed"
    assert (first + 4 * STEP).isoformat() not in gaps
    assert "collect_alert: Netskope said: Token expired" in text
    # Windows link to the run that loaded (or failed) them; a missing one to its DAG (Backfill).
    assert f'href="/dags/{DAG_ID}/runs/replay__{first + STEP:%H%M}"' in text
    assert f'href="/dags/{DAG_ID}/runs/scheduled__failed5"' in text
    assert 'class="timeline"' in text and 'class="rows"' in text and "<svg" in text
    assert "http://" not in text and "https://" not in text  # nothing from the internet
    # Another tenant's DAG the user may not read is not shown.
    assert "other-tenant-dag" not in text

    for n in (2, 3, 5):
        _load(first + n * STEP)
    after = _gaps(page.get(f"{URL_PREFIX}/coverage", params={"hours": 6, "dag_id": DAG_ID}).text)
    assert not {(first + n * STEP).isoformat() for n in (2, 3, 5)} & set(after), after


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_the_page_needs_a_login(warehouse_conn) -> None:
    client = TestClient(create_app())
    assert client.get("/coverage").status_code in (401, 403)
