"""Replay and coverage through a whole Airflow (api-server, scheduler, dag-processor, triggerer on
PostgreSQL), as a person uses them from the UI:

* a replay made the way the Trigger form makes it (the replay Params as run conf) collects that window,
  and the run's note names it; a malformed date is refused by the form's schema (400), a backwards
  window fails the run at once with the reason in its note;
* the Coverage page served by the real api-server shows a window as a gap once it is one, and no
  longer once a replay filled it, with links to the runs; it needs a login;
* every load emits an asset event per warehouse table (``/api/v2/assets/events``).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.scheduler]

TOKEN = "ui-v2-token-7d21"
STEP = timedelta(minutes=5)


@dataclass
class Ui:
    stack: Any
    api: Any
    connectors: Path

    def deploy(self, settings: dict[str, Any]) -> str:
        from seccollect.config.loader import parse_instance

        instance = parse_instance(settings, self.connectors / "x.yaml")
        (self.connectors / f"{instance.dag_id}.yaml").write_text(yaml.safe_dump(settings))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.stack.check_alive()
            try:
                self.api.get(f"dags/{instance.dag_id}")
                return instance.dag_id
            except RuntimeError:
                time.sleep(1)
        raise TimeoutError(f"{instance.dag_id} was not parsed within 120 s")

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        """What the Trigger form posts: a logical date (now) and the Params as conf."""
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return self.api.request("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": now, "conf": conf})

    def wait(self, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.stack.check_alive()
            run = self.api.get(f"dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(2)

    def page(self, dag_id: str, *, login: bool = True) -> requests.Response:
        headers = self.api._headers() if login else {}
        return requests.get(f"{self.stack.url}/seccollect/coverage", params={"dag_id": dag_id, "hours": 3},
                            headers=headers, timeout=120)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, postgres_server: dict[str, Any]) -> Iterator[Ui]:
    from seccollect_dev.airflow_stack import AirflowStack, PostgresServer
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.netskope import ALL_V2_SCOPES, NetskopeDataset, NetskopeSimulator

    root = tmp_path_factory.mktemp("ui_views")
    now = datetime.now(UTC)
    dataset = NetskopeDataset(seed=31, start=now - timedelta(hours=3), end=now + timedelta(hours=1),
                              rates={"alert": 300.0, "application": 1.0, "page": 1.0})
    app = NetskopeSimulator(dataset, v2_tokens={TOKEN: ALL_V2_SCOPES}, clock=time.time)
    connectors = root / "connectors"
    connectors.mkdir()
    pg = PostgresServer(host=str(postgres_server["host"]), port=int(postgres_server["port"]),
                        user=str(postgres_server["user"]))
    dbname = f"seccollect_ui_{uuid.uuid4().hex[:10]}"
    pg.ensure_database(dbname)
    with SimulatorServer(app) as server:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "home"),
            "CONNECTORS_DIR": str(connectors),
            "SECCOLLECT_STAGING_URL": "file://" + str(root / "staging"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW_CONN_NETSKOPE_UI": json.dumps(
                {"conn_type": "netskope", "password": TOKEN, "extra": {"base_url": server.url, "api_version": "v2"}}
            ),
            "AIRFLOW_CONN_SECCOLLECT_WAREHOUSE": json.dumps({"conn_type": "duckdb", "host": str(root / "wh.duckdb")}),
        }
        stack = AirflowStack(env, pg.sqlalchemy_url(dbname), root / "logs", extra_env={
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3",
        })
        try:
            stack.start()
            stack.airflow("pools", "set", "warehouse_loads", "1", "DuckDB single writer")
            yield Ui(stack, stack.api(), connectors)
        finally:
            stack.stop()
            pg.drop_database(dbname)


def _z(moment: datetime) -> str:
    """As the Trigger form's date-time picker sends a value (toISOString)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _gaps(text: str) -> dict[str, str]:
    return {start: status for status, start in
            re.findall(r'<li class="gap" data-status="(\w+)" data-window-start="([^"]+)"', text)}


def test_replay_from_the_form_fills_the_gap_the_coverage_page_showed(ui: Ui) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # Two windows past their grace (40 min for 5-minute windows): first and second; the rest pending.
    first = now - timedelta(minutes=50)
    first -= timedelta(minutes=first.minute % 5)
    second = first + STEP
    dag_id = ui.deploy({"name": "ui", "tenant": "acme", "type": "netskope", "conn_id": "netskope_ui",
                        "netskope_tenant": "acme", "content_types": ["alert"], "settle_lag_seconds": 60,
                        "start_date": first.isoformat(), "catchup": False})
    ui.api.set_paused(dag_id, False)  # as the Trigger dialog offers; catch-up off: only the latest window runs

    # The form's schema refuses a malformed date before any run exists.
    with pytest.raises(RuntimeError, match=r"-> 400.*window_start"):
        ui.trigger(dag_id, {"window_start": "yesterday", "window_end": _z(second)})

    replay = ui.trigger(dag_id, {"window_start": _z(first), "window_end": _z(second)})
    run = ui.wait(dag_id, replay["dag_run_id"])
    assert run["state"] == "success", run
    assert run["note"] == f"Replay of window {first:%Y-%m-%d %H:%M} – {second:%H:%M} UTC"

    # The Coverage page, from the real api-server: the first window collected, the second a gap.
    assert ui.page(dag_id, login=False).status_code in (401, 403)
    page = ui.page(dag_id)
    assert page.status_code == 200, page.text[:2000]
    gaps = _gaps(page.text)
    assert gaps.get(second.isoformat()) == "missing", gaps
    assert first.isoformat() not in gaps
    # The window links to its run (the run id encoded as the UI encodes it).
    assert f'href="/dags/{dag_id}/runs/{quote(replay["dag_run_id"], safe="")}"' in page.text

    # Asset events: one per warehouse table the load wrote, with the window.
    events = ui.api.get("assets/events", source_dag_id=dag_id, source_run_id=replay["dag_run_id"])["asset_events"]
    by_uri = {e["uri"]: e for e in events}
    assert set(by_uri) == {"warehouse://seccollect_warehouse/syslog", "warehouse://seccollect_warehouse/alerts"}
    assert by_uri["warehouse://seccollect_warehouse/syslog"]["extra"]["window_start"] == first.isoformat()

    # A backwards window fails at once, saying why in the run's note.
    refused = ui.wait(dag_id, ui.trigger(dag_id, {"window_start": _z(second), "window_end": _z(first)})["dag_run_id"])
    assert refused["state"] == "failed"
    assert refused["note"].startswith("Replay refused: window_start"), refused["note"]

    # Fill the gap from the form; the page no longer shows it.
    filled = ui.wait(dag_id, ui.trigger(dag_id, {"window_start": _z(second), "window_end": _z(second + STEP)})["dag_run_id"])
    assert filled["state"] == "success", filled
    after = _gaps(ui.page(dag_id).text)
    assert second.isoformat() not in after and first.isoformat() not in after, after

    # The page is in the UI: the plugin's nav entry and DAG tab.
    plugins = {p["name"]: p for p in ui.api.get("plugins")["plugins"]}
    views = plugins["seccollect"]["external_views"]
    assert {(v["destination"], v["href"]) for v in views} == {
        ("nav", "/seccollect/coverage"), ("dag", "/seccollect/coverage?dag_id={DAG_ID}")}
