"""DAG generation benchmark: build and serialise cost per DAG, against dag-factory in the same run.

Measures, for N instance files (every connector type that exists, realistic task counts):

* load + build: reading and validating the instance files and building the DAGs (what a
  dag-processor parse of ``dags/connector_instances.py`` costs, minus ``import airflow``);
* build only: building DAGs from already-validated instances;
* serialise: ``DagSerialization.to_dict`` + ``LazyDeserializedDAG`` — what the dag-processor does
  with every DAG after parsing;
* dag-factory: ``load_yaml_dags`` building DAGs of the same shape (same operators, same arguments,
  an explicit data-interval timetable) from equivalent YAML files;
* a task run's parse with M instances configured (``get_parsing_context().dag_id`` set), in a fresh
  interpreter, measured beyond ``import airflow`` — it must not grow with M.

Run: ``.venv/bin/python bench/dag_generation.py`` (``--quick`` for a smoke run). Requires
``pip install -r bench/requirements.txt`` (dag-factory) for the comparison.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


def instance_settings(i: int) -> dict:
    """A realistic mix: Netskope v2 (all content types), Netskope v1, and the three AWS sub types."""
    kind = i % 5
    tenant = f"t{i // 5:04d}"
    if kind == 0:
        return {"name": f"v2-{i}", "tenant": tenant, "type": "netskope", "conn_id": "netskope_x", "netskope_tenant": tenant,
                "content_types": ["alert", "event", "page", "pops", "tunnels"]}
    if kind == 1:
        return {"name": f"v1-{i}", "tenant": tenant, "type": "netskope", "conn_id": "netskope_x", "netskope_tenant": tenant,
                "api_version": "v1", "content_types": ["alert", "event"]}
    sub_type = ("cloudtrail", "vpcflow", "waf")[kind - 2]
    prefix = {
        "cloudtrail": "org/o-abc123/AWSLogs/o-abc123/*/CloudTrail/us-east-1",
        "vpcflow": "AWSLogs/123456789012/vpcflowlogs/eu-west-1",
        "waf": "AWSLogs/123456789012/WAFLogs/us-east-1/acl",
    }[sub_type]
    settings = {"name": f"{sub_type}-{i}", "tenant": tenant, "type": "aws_cloudtrail", "conn_id": "aws_x",
                "sub_type": sub_type, "bucket": "logs", "prefix": prefix}
    if sub_type == "waf":
        settings["file_type"] = "text"
    return settings


def aws_available() -> bool:
    try:
        import seccollect.vendors.aws.dag  # noqa: F401
    except ImportError:
        return False
    return True


def write_instances(directory: Path, count: int, with_aws: bool) -> list[str]:
    from seccollect.config.loader import parse_instance

    dag_ids = []
    i = 0
    while len(dag_ids) < count:
        settings = instance_settings(i)
        i += 1
        if settings["type"] == "aws_cloudtrail" and not with_aws:
            continue
        dag_id = parse_instance(settings, directory / "x.yaml").dag_id
        (directory / f"{dag_id}.yaml").write_text(yaml.safe_dump(settings))
        dag_ids.append(dag_id)
    return dag_ids


def _task_specs(dag) -> list[dict]:
    """The tasks of one of our DAGs as dag-factory task dicts: same operators, same arguments."""
    specs = []
    for task in dag.tasks:
        if hasattr(task, "partial_kwargs"):  # a mapped task: same operator, same partial/expand arguments
            operator_class = task.operator_class
            partial = {k: (list(v) if isinstance(v, tuple) else v) for k, v in task.partial_kwargs.items()
                       if k != "task_id" and type(v) in (str, int, bool, list, tuple)
                       and not (isinstance(v, list | tuple) and any(callable(x) for x in v))}
            (upstream_id,) = sorted(task.upstream_task_ids)
            specs.append({
                "task_id": task.task_id,
                "operator": f"{operator_class.__module__}.{operator_class.__qualname__}",
                "partial": partial,
                "expand": {name: f"{upstream_id}.output" for name in task.expand_input.value},
                "dependencies": [upstream_id],
            })
            continue
        spec = {"task_id": task.task_id, "operator": f"{type(task).__module__}.{type(task).__qualname__}"}
        names = [
            p for cls in type(task).__mro__ if cls.__module__.startswith("seccollect")
            for p in inspect.signature(cls.__init__).parameters
        ]
        from airflow.sdk.definitions.xcom_arg import XComArg

        for name in names:
            if name in ("self", "kwargs", "task_id") or not hasattr(task, name):
                continue
            value = getattr(task, name)
            # A hand-off from upstream tasks (`.output`): dag-factory's "<task_id>.output" form.
            if isinstance(value, XComArg):
                value = f"{value.operator.task_id}.output"
            elif isinstance(value, list | tuple) and value and all(isinstance(v, XComArg) for v in value):
                value = [f"{v.operator.task_id}.output" for v in value]
            if isinstance(value, str | int | bool | list | tuple) and value is not None:
                if isinstance(value, list | tuple) and any(callable(v) for v in value):
                    continue  # callbacks (e.g. on_failure_callback) come from default_args, as below
                spec[name] = list(value) if isinstance(value, tuple) else value
        if task.pool and task.pool != "default_pool":
            spec["pool"] = task.pool
        upstream = sorted(task.upstream_task_ids)
        if upstream:
            spec["dependencies"] = upstream
        specs.append(spec)
    return specs


def write_dag_factory_yaml(directory: Path, dags: dict) -> None:
    """Equivalent dag-factory YAML: one file per DAG, same schedule object, defaults and tasks."""
    for dag_id, dag in dags.items():
        timetable = dag.timetable
        schedule = {"__type__": f"{type(timetable).__module__}.{type(timetable).__qualname__}"}
        if hasattr(timetable, "expression"):
            schedule["cron"] = timetable.expression
            schedule["timezone"] = "UTC"
        config = {
            dag_id: {
                "default_args": {"owner": dag.default_args.get("owner", "x"), "retries": 3,
                                 "retry_exponential_backoff": True,
                                 "start_date": dag.start_date.isoformat()},
                "schedule": schedule,
                "catchup": False,
                "max_active_runs": dag.max_active_runs,
                "tags": list(dag.tags),
                "description": dag.description,
                "doc_md": dag.doc_md,
                "tasks": _task_specs(dag),
            }
        }
        (directory / f"{dag_id}.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def timed(fn, repeat: int = 3) -> float:
    """Best of ``repeat`` wall-clock seconds (GC off during the measurement, as a parse is short-lived)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        gc.enable()
    return best


TASK_RUN_PARSE = r"""
import os, sys, time, runpy
t0 = time.perf_counter()
import airflow, airflow.sdk  # noqa: E401 - the baseline every parse pays
t1 = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="dagfile")
t2 = time.perf_counter()
print(f"{t1 - t0:.4f} {t2 - t1:.4f}")
"""


def task_run_parse(directory: Path, dag_id: str | None) -> tuple[float, float]:
    """(seconds to import airflow, seconds beyond it) for one parse in a fresh interpreter."""
    env = {**os.environ, "CONNECTORS_DIR": str(directory)}
    if dag_id:
        env["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
    out = subprocess.run([sys.executable, "-c", TASK_RUN_PARSE, str(REPO / "dags" / "connector_instances.py")],
                         env=env, check=True, capture_output=True, text=True).stdout.split()[-2:]
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--task-run-instances", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.instances, args.task_run_instances = 100, 1000

    from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

    from seccollect.config.loader import load_all
    from seccollect.dag_factory.builder import build_dag, register_dags

    with_aws = aws_available()
    work = Path(tempfile.mkdtemp(prefix="bench-dags-"))
    ours_dir, factory_dir, many_dir = work / "ours", work / "dagfactory", work / "many"
    for d in (ours_dir, factory_dir, many_dir):
        d.mkdir()
    write_instances(ours_dir, args.instances, with_aws)
    instances = load_all(ours_dir).instances
    namespace: dict = {}
    register_dags(namespace, ours_dir)  # warm-up: imports every vendor module once
    n = len(namespace)
    tasks = sum(len(d.tasks) for d in namespace.values())

    t_load_build = timed(lambda: register_dags({}, ours_dir))
    t_build = timed(lambda: [build_dag(i) for i in instances])
    dags = list(namespace.values())
    t_serialise = timed(lambda: [LazyDeserializedDAG(data=DagSerialization.to_dict(d)) for d in dags])

    write_dag_factory_yaml(factory_dir, namespace)
    t_factory = None
    try:
        from dagfactory import load_yaml_dags
    except ImportError:
        print("dag-factory not installed (pip install -r bench/requirements.txt): comparison skipped")
    else:
        check: dict = {}
        load_yaml_dags(globals_dict=check, dags_folder=str(factory_dir))
        built = {k for k, v in check.items() if type(v).__name__ == "DAG"}
        assert len(built) == n, f"dag-factory built {len(built)} of {n} DAGs"
        t_factory = timed(lambda: load_yaml_dags(globals_dict={}, dags_folder=str(factory_dir)))

    ids = write_instances(many_dir, args.task_run_instances, with_aws)
    target = ids[len(ids) // 2]
    runs = [task_run_parse(many_dir, target) for _ in range(3)]
    import_s = min(r[0] for r in runs)
    beyond_s = min(r[1] for r in runs)

    ms = lambda s: 1000 * s / n  # noqa: E731
    print(f"DAGs: {n} ({tasks} tasks, {tasks / n:.1f} per DAG; types: netskope v2/v1{' + aws cloudtrail/vpcflow/waf' if with_aws else ''})")
    print(f"load+validate+build : {ms(t_load_build):6.3f} ms/DAG")
    print(f"build only          : {ms(t_build):6.3f} ms/DAG   (target <= 1.5)")
    print(f"serialise           : {ms(t_serialise):6.3f} ms/DAG")
    print(f"build + serialise   : {ms(t_build + t_serialise):6.3f} ms/DAG   (target <= 4)")
    if t_factory is not None:
        print(f"dag-factory build   : {ms(t_factory):6.3f} ms/DAG (same DAGs from equivalent YAML)")
        print(f"ratio dag-factory / ours (load+build): {t_factory / t_load_build:5.2f}x   (target >= 2)")
    print(f"task-run parse with {len(ids)} instances: import airflow {import_s:.3f} s, "
          f"beyond it {beyond_s:.3f} s   (target <= 0.5)")


if __name__ == "__main__":
    main()
