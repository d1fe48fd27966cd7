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

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.ui_stack import STEP, Ui, gaps, instance_with_a_gap, running_ui

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.scheduler]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, postgres_server: dict[str, Any]) -> Iterator[Ui]:
    with running_ui(tmp_path_factory.mktemp("ui_views"), postgres_server) as running:
        yield running


def _z(moment: datetime) -> str:
    """As the Trigger form's date-time picker sends a value (toISOString)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_replay_from_the_form_fills_the_gap_the_coverage_page_showed(ui: Ui) -> None:
    dag_id, first, second = instance_with_a_gap(ui)

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
    listed = gaps(page.text)
    assert listed.get(second.isoformat()) == "missing", listed
    assert first.isoformat() not in listed
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
    after = gaps(ui.page(dag_id).text)
    assert second.isoformat() not in after and first.isoformat() not in after, after

    # The page is in the UI: the plugin's nav entry and DAG tab.
    plugins = {p["name"]: p for p in ui.api.get("plugins")["plugins"]}
    views = plugins["seccollect"]["external_views"]
    assert {(v["destination"], v["href"]) for v in views} == {
        ("nav", "/seccollect/coverage"), ("dag", "/seccollect/coverage?dag_id={DAG_ID}")}
