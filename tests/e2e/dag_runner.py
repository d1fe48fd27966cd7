"""Run generated DAGs through real Airflow (``dag.test()``) for chosen windows."""

from __future__ import annotations

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
