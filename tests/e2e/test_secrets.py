"""No configured secret leaks: run Netskope DAGs (v2 and v1, a retried fault and a failing task included)
and scan everything they leave behind for either API token.

Scanned: task output (``dag.test()`` runs tasks in this process, so their log lines reach the captured
stdout/stderr), any log files under ``$AIRFLOW_HOME/logs``, every XCom value, rendered template field
and serialized DAG of the runs, every staged file (raw bytes and decoded Parquet values) and every row
of every warehouse table. Each source is checked to be non-empty so the test cannot pass vacuously.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from seccollect_dev.simulators.netskope import V1_ALERTS_PATH, V2_DATA_PATHS
from tests.conftest import NETSKOPE_START, NETSKOPE_V1_TOKEN, NETSKOPE_V2_TOKEN
from tests.e2e.dag_runner import run_window, task_states, write_instance

pytestmark = pytest.mark.airflow_e2e

TOKENS = (NETSKOPE_V1_TOKEN, NETSKOPE_V2_TOKEN)
WINDOW = (NETSKOPE_START, NETSKOPE_START + timedelta(hours=1))


def _leaks(text: str) -> list[str]:
    return [t for t in TOKENS if t in text]


def _instance(directory: Path, name: str, conn_id: str, version: str, content_types: list[str]) -> str:
    return write_instance(
        directory,
        {
            "name": name,
            "tenant": "acme",
            "type": "netskope",
            "conn_id": conn_id,
            "netskope_tenant": "acme",
            "api_version": version,
            "content_types": content_types,
            "interval_minutes": 60,
            "settle_lag_seconds": 0,
            "retries": 0,
        },
    )


@contextmanager
def _log_streams_teed() -> Iterator[io.StringIO]:
    """Point every logging stream handler at one buffer for the duration.

    Handlers keep the stream that was ``sys.stdout``/``sys.stderr`` when logging was configured, which
    under pytest may be an earlier capture rather than this test's, so ``capfd`` alone can miss lines.
    The handlers keep their formatters (Airflow's, secret masking included): the buffer holds exactly
    what the log output would show.
    """
    buffer = io.StringIO()
    loggers = [logging.root, *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    saved = []
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and handler.stream is not None:
                saved.append((handler, handler.setStream(buffer)))
    # The package's own records too, whatever handlers earlier tests left configured (with none reaching a
    # stream, the scan would see nothing): unmasked, so this is stricter than what a log would show.
    own = logging.StreamHandler(buffer)
    package = logging.getLogger("seccollect")
    level = package.level
    package.addHandler(own)
    package.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        package.removeHandler(own)
        package.setLevel(level)
        for handler, stream in saved:
            handler.setStream(stream)


def _metadata_texts(runs) -> dict[str, list[str]]:
    """XCom values, rendered fields, serialized DAGs and run conf of ``runs``, as text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    texts: dict[str, list[str]] = {"xcom": [], "rendered": [], "serialized_dag": [], "conf": []}
    with create_session() as session:
        for run in runs:
            for xcom in session.scalars(
                select(XComModel).where(XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id)
            ):
                texts["xcom"].append(f"{xcom.task_id} {xcom.key} {xcom.value!r}")
            for rtif in session.scalars(
                select(RenderedTaskInstanceFields).where(
                    RenderedTaskInstanceFields.dag_id == run.dag_id, RenderedTaskInstanceFields.run_id == run.run_id
                )
            ):
                texts["rendered"].append(repr(rtif.rendered_fields))
            for sdag in session.scalars(select(SerializedDagModel).where(SerializedDagModel.dag_id == run.dag_id)):
                texts["serialized_dag"].append(repr(sdag.data))
            texts["conf"].append(repr(run.conf))
    return texts


def _staged_texts(root: Path) -> list[str]:
    import pyarrow.parquet as pq

    texts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        texts.append(path.read_bytes().decode("latin-1"))  # metadata and any uncompressed values
        if path.suffix == ".parquet":
            texts.append(repr(pq.read_table(path).to_pylist()))  # values inside compressed pages
    return texts


def _warehouse_texts(wh) -> dict[str, str]:
    from seccollect.records.catalog import tables

    return {name: repr(wh.query(f"SELECT * FROM {name}")) for name, t in tables().items() if t.role != "intermediate"}


@pytest.mark.parametrize("warehouse_conn", ["duckdb"], indirect=True)
def test_no_token_in_logs_xcom_staging_or_warehouse(
    tmp_path, monkeypatch, capfd, airflow_db, netskope_sim, warehouse_conn, open_test_warehouse
) -> None:
    staging = tmp_path / "staging"
    monkeypatch.setenv("SECCOLLECT_STAGING_URL", f"file://{staging}")
    instances = tmp_path / "connectors"
    instances.mkdir()
    monkeypatch.setenv("CONNECTORS_DIR", str(instances))
    v2 = _instance(instances, "secret-v2", "netskope_test", "v2", ["alert", "event", "page", "pops", "tunnels"])
    v1 = _instance(instances, "secret-v1", "netskope_test_v1", "v1", ["alert", "event"])
    # Error paths log the most: a dropped connection (retried, logged as a warning) on each version, and a
    # failure for good (403) on the v2 page endpoint.
    netskope_sim.faults.add("drop", path=V2_DATA_PATHS["alert"], after=0)
    netskope_sim.faults.add("drop", path=V1_ALERTS_PATH, after=0)
    netskope_sim.faults.add("status", path=V2_DATA_PATHS["page"], status=403)

    capfd.readouterr()
    with _log_streams_teed() as logged:
        run_v2 = run_window(v2, *WINDOW)
        run_v1 = run_window(v1, *WINDOW)
    out, err = capfd.readouterr()

    states = task_states(run_v2)
    assert states["collect_page"] == "failed" and states["load_alert"] == "success", states
    assert str(run_v1.state) == "success", task_states(run_v1)
    assert netskope_sim.stats.snapshot()["faults"] == {"drop": 2, "status": 1}

    # 1. Task output and log files.
    output = logged.getvalue() + out + err
    for needle in ("Querying alert inserted", "Staged", "attempt 1 failed", "HTTP 403 Forbidden", "Loaded window"):
        assert needle in output, f"the captured task output lacks {needle!r}: nothing was scanned"
    assert not _leaks(output), "a token reached the task log output"
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    for path in (p for p in logs.rglob("*") if p.is_file()) if logs.exists() else ():
        assert not _leaks(path.read_text(errors="replace")), f"a token is in {path}"

    # 2. Airflow metadata of the runs.
    texts = _metadata_texts([run_v2, run_v1])
    # One rendered-field row per task that ran with templated fields: collect tasks (5 on v2, 2 on v1),
    # the alert mapping (1 + 1) and the loads that ran (v2: 4, its page load never ran; v1: 2); an XCom
    # per finished task.
    assert len(texts["xcom"]) >= 10 and len(texts["rendered"]) == 15 and texts["serialized_dag"]
    for kind, items in texts.items():
        for text in items:
            assert not _leaks(text), f"a token is in {kind}: {text[:200]}"

    # 3. Staged files.
    staged = _staged_texts(staging)
    assert sum(1 for p in staging.rglob("*.parquet")) >= 8
    assert any("_insertion_epoch_timestamp" in t for t in staged), "decoded staged records were not scanned"
    for text in staged:
        assert not _leaks(text), "a token is in a staged file"

    # 4. Every warehouse table.
    with open_test_warehouse() as wh:
        tables = _warehouse_texts(wh)
        assert wh.query("SELECT count(*) FROM syslog")[0][0] > 1000
        assert wh.query("SELECT count(*) FROM alerts")[0][0] > 0
    for table, text in tables.items():
        assert not _leaks(text), f"a token is in warehouse table {table}"
