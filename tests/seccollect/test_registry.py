"""The connector registry: a vendor is one folder plus one registration line, and the core derives the
rest. The toy vendor lives in tests/seccollect/toy_vendor/ and is registered by the one entry point line
in tests/seccollect/toy_vendor_registration/; no file of the package knows it."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import tokenize
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from seccollect import registry

REGISTRATION = Path(__file__).parent / "toy_vendor_registration"
PACKAGE = Path(registry.__file__).parent
REPO = PACKAGE.parents[1]
WINDOW = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 0, 10, tzinfo=UTC))
TOY = {"name": "demo", "tenant": "acme", "type": "toy", "conn_id": "toy_demo", "per_minute": 3}


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The toy vendor registered (its entry point on sys.path), one instance file, its connection."""
    monkeypatch.syspath_prepend(str(REGISTRATION))
    folder = tmp_path / "connectors"
    folder.mkdir()
    (folder / "acme-toy-demo.yaml").write_text(yaml.safe_dump(TOY))
    monkeypatch.setenv("CONNECTORS_DIR", str(folder))
    monkeypatch.setenv("AIRFLOW_CONN_TOY_DEMO", json.dumps({"conn_type": "toy"}))
    return "acme-toy-demo"


def test_specs_load_lazily_and_one_at_a_time() -> None:
    code = (
        "import sys\n"
        "from seccollect import registry\n"
        "assert 'netskope' in registry.connector_types()\n"
        "assert not any(m.startswith('seccollect.vendors') for m in sys.modules), 'listing imported a vendor'\n"
        "registry.get('aws_cloudtrail')\n"
        "assert not any(m.startswith('seccollect.vendors.netskope') for m in sys.modules)\n"
        "registry.specs()\n"
        # Airflow reads every spec (get_provider_info) while it initialises its configuration: a spec
        # module importing Airflow would import it recursively.
        "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules), 'a spec imported Airflow'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_an_unknown_connector_type_names_the_known_ones() -> None:
    with pytest.raises(registry.UnknownConnectorType, match="'splunk' is not a connector type; use one of aws_cloudtrail"):
        registry.get("splunk")


def test_the_toy_vendor_gets_its_dag_from_one_folder_and_one_line(toy: str) -> None:
    from seccollect.dag_factory.builder import indices_of, register_dags

    assert "toy" in registry.connector_types()
    namespace: dict = {}
    assert register_dags(namespace) == []
    dag = namespace[toy]
    assert {t.task_id for t in dag.tasks} == {"collect_sighting", "load_sighting", "check_coverage"}
    assert "The toy API reports every minute's sightings" in dag.doc_md
    assert dag.default_args["execution_timeout"] == timedelta(minutes=60)
    instance = registry.get("toy").instance_model.model_validate(TOY)
    assert indices_of(instance) == ["syslog", "assets"]


def test_the_toy_vendor_gets_its_connection_type(toy: str) -> None:
    # A fresh process: Airflow's ProvidersManager reads the provider info once per process.
    code = (
        "from airflow.providers_manager import ProvidersManager\n"
        "manager = ProvidersManager()\n"
        "print('TOY', manager.hooks['toy'].hook_class_name, manager.field_behaviours['toy']['relabeling']['password'])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REGISTRATION), str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
    (line,) = [line for line in out.splitlines() if line.startswith("TOY ")]
    assert line.split() == ["TOY", "tests.seccollect.toy_vendor.hook.ToyHook", "Toy", "Key"]


@pytest.mark.airflow_e2e
def test_the_toy_vendor_gets_its_tables_and_an_idempotent_load(
    toy: str, airflow_db, warehouse_conn, open_test_warehouse
) -> None:
    from tests.e2e.dag_runner import run_window, task_states

    for attempt in (1, 2):
        run = run_window(toy, *WINDOW)
        assert str(run.state) == "success", task_states(run)
        with open_test_warehouse() as wh:
            assert wh.query("SELECT count(*), count(DISTINCT record_id) FROM syslog") == [(30, 30)], attempt
            assert wh.query("SELECT count(*) FROM assets WHERE msg_class = 'toy_sighting'") == [(30,)]
            assert wh.query("SELECT dag_id, sightings FROM toy_windows") == [(toy, 30)]
            staged, inserted = wh.query(
                "SELECT staged_rows, inserted_rows FROM collection_ledger WHERE dag_id = ?", (toy,)
            )[0]
            assert (staged, inserted) == (30 * attempt, 30)  # records (main index), summed over loads


#: Names a vendor's own code would use; the shared mechanism must not contain them.
VENDOR_WORDS = ("netskope", "goskope", "cloudtrail", "vpcflow", "qualys", "connectsecure", "trendmicro", "tmcas",
                "alert_sources", "alert_latest", "object_ledger")


def _code_tokens(path: Path) -> list[str]:
    """Identifiers and string literals of a module, docstrings and comments excluded."""
    source = path.read_text()
    docstrings = {
        node.body[0].value.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type in (tokenize.NAME, tokenize.STRING) and not (
            token.type == tokenize.STRING and token.start[0] in docstrings
        )
    ]


def test_the_shared_mechanism_names_no_vendor() -> None:
    core = [p for p in PACKAGE.rglob("*.py") if "vendors" not in p.relative_to(PACKAGE).parts]
    assert len(core) > 20
    offenders = {
        str(path.relative_to(PACKAGE)): sorted({t for t in _code_tokens(path) if any(w in t.lower() for w in VENDOR_WORDS)})
        for path in core
    }
    assert {k: v for k, v in offenders.items() if v} == {}
