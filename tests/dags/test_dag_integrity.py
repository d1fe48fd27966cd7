"""DAG integrity: the DAG folder parses, every demo instance has its DAG, broken files are visible."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
from tests.conftest import DEMO_INSTANCES as DEMO_DIR  # noqa: E402 - the demo instances, assembled


def _dagbag(connectors_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CONNECTORS_DIR", str(connectors_dir))
    return DagBag(dag_folder=str(REPO / "dags"))


def _demo_dag_ids() -> set[str]:
    from seccollect.config.loader import load_all

    result = load_all(DEMO_DIR)
    assert not result.errors, result.errors
    return {i.dag_id for i in result.instances}


def test_every_demo_instance_produces_its_dag_without_import_errors(monkeypatch):
    bag = _dagbag(DEMO_DIR, monkeypatch)
    assert bag.import_errors == {}
    expected = _demo_dag_ids()
    assert expected, "the demo must configure instances"
    assert set(bag.dag_ids) == expected
    for dag_id in expected:
        dag = bag.dags[dag_id]
        assert dag.tasks, dag_id
        assert dag.doc_md and "Verify ingestion" in dag.doc_md
        assert any(t.startswith("tenant:") for t in dag.tags)


def test_broken_instance_file_is_reported_while_others_still_load(tmp_path, monkeypatch):
    for f in DEMO_DIR.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "acme-netskope-broken.yaml").write_text(
        "name: broken\ntenant: acme\ntype: netskope\nconn_id: x\nnetskope_tenant: acme.goskope.com\n"
    )
    (tmp_path / "acme-netskope-leaky.yaml").write_text(
        "name: leaky\ntenant: acme\ntype: netskope\nconn_id: x\nnetskope_tenant: acme\napi_key: abc\n"
    )
    bag = _dagbag(tmp_path, monkeypatch)
    assert set(bag.dag_ids) == _demo_dag_ids()
    errors = {Path(path).name: message for path, message in bag.import_errors.items()}
    assert set(errors) == {"connector_instance_errors.py"}
    message = errors["connector_instance_errors.py"]
    assert "acme-netskope-broken.yaml" in message and "netskope_tenant" in message and "companya" in message
    assert "acme-netskope-leaky.yaml" in message and "api_key" in message and "Airflow" in message


def test_every_dag_has_a_nonempty_data_interval(monkeypatch):
    bag = _dagbag(DEMO_DIR, monkeypatch)
    for dag_id in bag.dag_ids:
        from airflow.serialization.encoders import coerce_to_core_timetable

        # The scheduler's view of the timetable (what it actually computes runs with).
        timetable = coerce_to_core_timetable(bag.dags[dag_id].timetable)
        import pendulum

        interval = timetable.infer_manual_data_interval(run_after=pendulum.datetime(2026, 5, 5, 10, 7, tz="UTC"))
        assert interval.start < interval.end, dag_id
        info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=_restriction())
        assert info is not None and info.data_interval.start < info.data_interval.end, dag_id


def _restriction():
    import pendulum
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=pendulum.datetime(2026, 1, 1, tz="UTC"), latest=None, catchup=True)


def test_task_run_parse_builds_only_its_own_dag(monkeypatch):
    from seccollect.config import loader
    from seccollect.dag_factory.builder import register_dags

    dag_id = sorted(_demo_dag_ids())[0]
    monkeypatch.setenv("CONNECTORS_DIR", str(DEMO_DIR))
    read: list[Path] = []
    original = loader.load_file
    monkeypatch.setattr(loader, "load_file", lambda p: read.append(p) or original(p))
    namespace: dict = {}
    register_dags(namespace, dag_id=dag_id)
    assert list(namespace) == [dag_id]
    assert [p.name for p in read] == [f"{dag_id}.yaml"]


def test_dag_files_do_no_io_beyond_instance_files_at_parse(monkeypatch):
    """Parsing must not open sockets (network or database)."""
    import socket

    def forbidden(*args, **kwargs):
        raise AssertionError("parse-time network access")

    monkeypatch.setattr(socket.socket, "connect", forbidden)
    bag = _dagbag(DEMO_DIR, monkeypatch)
    assert bag.import_errors == {}
