"""Run generated DAGs through real Airflow (``dag.test()``) for chosen windows."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml


def write_instance(directory: Path, settings: dict[str, Any]) -> str:
    """Write an instance file named after its DAG; return the dag_id."""
    from seccollect.config.loader import parse_instance

    instance = parse_instance(settings, directory / "x.yaml")
    (directory / f"{instance.dag_id}.yaml").write_text(yaml.safe_dump(settings))
    return instance.dag_id


def run_window(dag_id: str, window_start: datetime, window_end: datetime) -> Any:
    """One DAG run whose collection window is exactly [window_start, window_end), via dag.test().

    The run is dated by its window's start, as every run is (one window per logical date), and the
    window is also passed as run conf, the way a person replays an arbitrary window from the UI.
    """
    from seccollect.dag_factory.builder import register_dags

    namespace: dict[str, Any] = {}
    register_dags(namespace, dag_id=dag_id)
    dag = namespace[dag_id]
    return dag.test(
        logical_date=window_start,
        run_conf={"window_start": window_start.isoformat(), "window_end": window_end.isoformat()},
    )


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def xcom_value(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """The XCom ``key`` a task of ``dag_run`` pushed (deserialised), or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).first()
        value = None if row is None else row.value
    return json.loads(value) if isinstance(value, str | bytes) else value


@contextmanager
def log_output() -> Iterator[io.StringIO]:
    """Every logging stream handler pointed at one buffer for the duration: what the task logs show.

    Handlers keep the stream that was ``sys.stdout``/``sys.stderr`` when logging was configured, which
    under pytest may be an earlier capture, so ``capfd`` alone can miss lines.
    """
    buffer = io.StringIO()
    loggers = [logging.root, *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    saved = []
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and handler.stream is not None:
                # Swapped without setStream(), which flushes the old stream: an earlier test's
                # capture may be closed by now.
                saved.append((handler, handler.stream))
                handler.stream = buffer
    try:
        yield buffer
    finally:
        for handler, stream in saved:
            handler.stream = stream
