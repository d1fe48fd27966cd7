"""In a real browser (Debian's Chromium through Playwright) against a whole Airflow started here: the
Trigger form's replay Params collect the window picked with the date-time pickers, the run shows its
window in its note, and the Coverage page inside the UI shows a gap once made and not once filled.

The browser is the package's (tests/browser/conftest.py); the Airflow is this module's own. Screenshots go to ``$ARTIFACTS_DIR`` or ``tests/artifacts``. The tests
skip, with the reason, where Chromium or Playwright is missing, and fail instead under
``REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.ui_stack import STEP, Ui, instance_with_a_gap, running_ui

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.scheduler]



@pytest.fixture(scope="module")
def artifacts(artifacts_dir: Path) -> Path:
    return artifacts_dir


@pytest.fixture(scope="module")
def ui(browser: Any, tmp_path_factory: pytest.TempPathFactory, postgres_server: dict[str, Any]) -> Iterator[Ui]:
    with running_ui(tmp_path_factory.mktemp("browser_ui"), postgres_server) as running:
        yield running


@pytest.fixture
def page(browser: Any, ui: Ui, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A logged-in page; a screenshot of the last state is kept whatever happens."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    current = context.new_page()
    # The machine may be busy (two cores, a whole Airflow): the UI's first renders can take a while.
    current.set_default_timeout(90_000)
    current.goto(f"{ui.stack.url}/")
    current.locator("input").first.fill("admin")
    current.locator("input[type=password]").fill(ui.stack.password)
    current.keyboard.press("Enter")
    current.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)
    try:
        yield current
    finally:
        current.screenshot(path=str(artifacts / f"{request.node.name}-last.png"), full_page=True)
        context.close()


def _shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"test_replay_and_coverage-{name}.png"), full_page=True)


def _pick(page: Any, dialog: Any, moment: datetime) -> None:
    """Open the next empty date-time picker of the form and choose ``moment`` (UTC, the UI's default zone)."""
    dialog.get_by_text("Select date and time").first.click()
    page.get_by_placeholder("YYYY/MM/DD").fill(moment.strftime("%Y/%m/%d"))
    page.get_by_placeholder("HH:mm").fill(moment.strftime("%H:%M"))
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)


def _replay_from_the_form(page: Any, ui: Ui, dag_id: str, start: datetime, end: datetime, artifacts: Path,
                          name: str) -> str:
    """Trigger a replay of [start, end) through the Trigger form; the new run's id."""
    before = {r["dag_run_id"] for r in ui.api.dag_runs(dag_id)}
    page.goto(f"{ui.stack.url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.locator("[role=dialog][data-scope=dialog][data-state=open]")
    dialog.get_by_text("Replay a window").click()
    _pick(page, dialog, start)
    _pick(page, dialog, end)
    dialog.get_by_text("Advanced Options").click()
    # The form turned the pickers into the run conf (what a person would otherwise type as JSON).
    conf = dialog.inner_text().replace("\xa0", " ")  # the JSON editor renders spaces as NBSP
    assert f'"window_start": "{start:%Y-%m-%dT%H:%M}:00.000Z"' in conf, conf
    assert f'"window_end": "{end:%Y-%m-%dT%H:%M}:00.000Z"' in conf, conf
    _shot(page, artifacts, f"{name}-form")
    page.get_by_test_id("trigger-dag-submit").click()
    page.wait_for_url(lambda url: "/runs/" in url, timeout=60_000)
    # The scheduler may have made its own run meanwhile (the DAG is unpaused): the form's is the manual one.
    created = [r["dag_run_id"] for r in ui.api.dag_runs(dag_id)
               if r["dag_run_id"] not in before and r["run_type"] == "manual"]
    assert len(created) == 1, created
    return created[0]


def _coverage_in_the_ui(page: Any, ui: Ui, artifacts: Path, name: str) -> dict[str, str]:
    """The Coverage page as the UI shows it (its navigation entry, an iframe): gap start -> status."""
    page.goto(f"{ui.stack.url}/plugin/coverage")
    frame = page.frame_locator("iframe[title=Coverage]")
    frame.locator("h1").wait_for(timeout=60_000)
    _shot(page, artifacts, f"{name}-coverage")
    return {item.get_attribute("data-window-start"): item.get_attribute("data-status")
            for item in frame.locator("li.gap").all()}


def test_the_trigger_form_replays_a_window_and_the_coverage_page_shows_the_gap_then_not(
    page: Any, ui: Ui, artifacts: Path
) -> None:
    dag_id, first, second = instance_with_a_gap(ui)

    run_id = _replay_from_the_form(page, ui, dag_id, first, second, artifacts, "first")
    run = ui.wait(dag_id, run_id)
    assert run["state"] == "success", run
    assert run["conf"] == {"window_start": f"{first:%Y-%m-%dT%H:%M}:00.000Z",
                           "window_end": f"{second:%Y-%m-%dT%H:%M}:00.000Z"}
    # The run shows the window it collected.
    page.goto(f"{ui.stack.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}")
    note = f"Replay of window {first:%Y-%m-%d %H:%M} – {second:%H:%M} UTC"
    page.get_by_text(note).first.wait_for(timeout=60_000)
    _shot(page, artifacts, "run-note")

    listed = _coverage_in_the_ui(page, ui, artifacts, "gap")
    assert listed.get(second.isoformat()) == "missing", listed
    assert first.isoformat() not in listed

    filled = _replay_from_the_form(page, ui, dag_id, second, second + STEP, artifacts, "fill")
    assert ui.wait(dag_id, filled)["state"] == "success"
    listed = _coverage_in_the_ui(page, ui, artifacts, "filled")
    assert second.isoformat() not in listed and first.isoformat() not in listed, listed
