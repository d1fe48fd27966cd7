"""seccollect.dag_factory.builder: timetables, DAG settings and docs, one DAG per instance file."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from seccollect.config.loader import load_file
from seccollect.dag_factory.builder import build_dag, doc_md, indices_of, register_dags, timetable_for
from seccollect.dag_factory.timetable import WindowCronTimetable, WindowDeltaTimetable
from tests.conftest import DEMO_INSTANCES as DEMO_DIR  # noqa: E402 - the demo instances, assembled

BROKEN = "name: broken\ntenant: acme\ntype: netskope\nconn_id: x\nnetskope_tenant: acme.goskope.com\n"


@pytest.mark.parametrize(
    ("minutes", "expression"),
    [(1, "*/1 * * * *"), (5, "*/5 * * * *"), (15, "*/15 * * * *"), (60, "0 * * * *"), (120, "0 */2 * * *"),
     (360, "0 */6 * * *"), (1440, "0 */24 * * *")],
)
def test_intervals_that_divide_an_hour_or_a_day_are_clock_aligned(minutes, expression):
    timetable = timetable_for(minutes)
    assert isinstance(timetable, WindowCronTimetable)
    assert timetable.expression == expression
    assert timetable.timezone == "UTC"


@pytest.mark.parametrize("minutes", [7, 45, 90, 300, 1000])
def test_other_intervals_are_a_fixed_delta(minutes):
    timetable = timetable_for(minutes)
    assert isinstance(timetable, WindowDeltaTimetable)
    assert timetable.delta == timedelta(minutes=minutes)


def test_indices_follow_the_connector_and_its_content_types():
    by_name = {p.stem: load_file(p) for p in DEMO_DIR.glob("*.yaml")}
    assert indices_of(by_name["acme-aws_cloudtrail-cloudtrail"]) == ["aws_events"]
    assert indices_of(by_name["acme-aws_cloudtrail-waf"]) == ["aws_events"]
    assert indices_of(by_name["acme-aws_cloudtrail-vpcflow"]) == ["traffic"]
    netskope = by_name["acme-netskope-v2"]
    assert indices_of(netskope) == ["syslog", "alerts"]  # it collects alerts
    assert indices_of(netskope, "page") == ["syslog"]
    assert indices_of(netskope, "alert") == ["syslog", "alerts"]


def test_build_dag_carries_the_instance_settings():
    instance = load_file(DEMO_DIR / "acme-aws_cloudtrail-cloudtrail.yaml")
    dag = build_dag(instance)
    assert dag.dag_id == instance.dag_id == "acme-aws_cloudtrail-cloudtrail"
    assert dag.timetable.expression == "*/15 * * * *"  # interval_minutes: 15
    assert dag.catchup is True  # the scheduler fills the windows it missed (from the instance's start)
    assert dag.timetable.first_window == instance.start  # the scheduler starts there; older windows stay replayable
    assert dag.max_active_runs == instance.max_active_runs
    args = dag.default_args
    assert args["retries"] == instance.retries
    assert args["retry_delay"] == timedelta(seconds=instance.retry_delay_seconds)
    assert args["retry_exponential_backoff"] is True
    assert args["max_retry_delay"] == timedelta(minutes=instance.max_retry_delay_minutes)
    assert {"tenant:acme", "content:cloudtrail"} <= set(dag.tags)
    assert dag.tasks, "the vendor's task builder added its tasks"


def test_doc_md_shows_settings_without_secrets_and_a_verification_query():
    instance = load_file(DEMO_DIR / "acme-netskope-v2.yaml")
    doc = doc_md(instance, notes="NOTES-HERE")
    assert doc.startswith(f"# {instance.dag_id}")
    assert "NOTES-HERE" in doc
    assert "| `conn_id` | `\"netskope_demo\"` |" in doc
    assert f"WHERE dag_id = '{instance.dag_id}'" in doc
    assert "FROM syslog" in doc and "`alerts`" in doc
    assert "api_key" not in doc and "password" not in doc


def test_register_dags_builds_every_valid_instance_and_returns_the_errors(tmp_path):
    for path in DEMO_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "acme-netskope-broken.yaml").write_text(BROKEN)
    namespace: dict = {}
    errors = register_dags(namespace, tmp_path)
    assert set(namespace) == {p.stem for p in DEMO_DIR.glob("*.yaml")}
    assert [e.path.name for e in errors] == ["acme-netskope-broken.yaml"]
    assert errors[0].field == "netskope_tenant"


def test_register_dags_for_a_task_run_builds_only_its_dag(tmp_path, monkeypatch):
    for path in DEMO_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "acme-netskope-broken.yaml").write_text(BROKEN)
    read: list[str] = []
    import seccollect.config.loader as loader

    real = loader.load_file
    monkeypatch.setattr(loader, "load_file", lambda path: read.append(Path(path).name) or real(path))
    namespace: dict = {}
    assert register_dags(namespace, tmp_path, dag_id="acme-aws_cloudtrail-waf") == []
    assert list(namespace) == ["acme-aws_cloudtrail-waf"]
    assert read == ["acme-aws_cloudtrail-waf.yaml"], "a task start reads its own instance file only"
    namespace.clear()
    assert register_dags(namespace, tmp_path, dag_id="acme-netskope-gone") == []
    assert namespace == {}


def test_every_task_has_the_instances_execution_timeout_and_the_docs_say_so():
    instance = load_file(DEMO_DIR / "acme-netskope-v2.yaml")
    dag = build_dag(instance)
    assert all(task.execution_timeout == instance.task_timeout for task in dag.tasks)
    assert "`task_timeout_minutes` (60 min" in dag.doc_md


def test_doc_md_never_shows_a_credential_even_in_a_url_setting():
    from seccollect.dag_factory.builder import _without_credentials

    assert _without_credentials("http://user:s3cret@proxy.internal:3128/x?q=1") == "http://proxy.internal:3128/x"
    assert _without_credentials("http://proxy.internal:3128") == "http://proxy.internal:3128"
    assert _without_credentials(5) == 5


def test_notify_settings_reach_the_failure_callback_and_the_coverage_check():
    from seccollect.config.loader import parse_instance
    from seccollect.notifications import InstanceNotifier
    from seccollect.operators.coverage import record_window_failure

    settings = {"name": "n", "tenant": "acme", "type": "netskope", "conn_id": "c", "netskope_tenant": "acme"}
    plain = build_dag(parse_instance(settings, Path("x.yaml")))
    assert plain.task_dict["collect_alert"].on_failure_callback == [record_window_failure]
    assert plain.task_dict["check_coverage"].notify is None

    notify = {"http_conn_id": "hook", "silence_windows": 4}
    dag = build_dag(parse_instance({**settings, "notify": notify}, Path("x.yaml")))
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        assert callbacks[0] is record_window_failure and isinstance(callbacks[1], InstanceNotifier), task.task_id
        assert callbacks[1].settings["http_conn_id"] == "hook"
    assert dag.task_dict["check_coverage"].notify["silence_windows"] == 4
