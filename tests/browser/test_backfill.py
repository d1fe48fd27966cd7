"""The DAG page's Backfill dialog, clicked in Chromium, creates a backfill whose runs all succeed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.conftest import UiStack, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.airflow_e2e, pytest.mark.scheduler]

DAG_ID = "globex-netskope-v1"  # the demo's smallest DAG (two content types)


def _pick(page: Any, dialog: Any, index: int, moment: datetime) -> None:
    """Set the dialog's ``index``-th date-time picker (From, To) by typing into its Date and Time fields."""
    trigger = dialog.get_by_test_id("datetime-input").nth(index)
    trigger.click()
    # The picker's popover (Ark UI): its content's id is the trigger's with ":content" for ":trigger".
    popover = page.locator(f'[id="{trigger.get_attribute("id").replace(":trigger", ":content")}"]')
    popover.get_by_placeholder("YYYY/MM/DD").fill(f"{moment:%Y/%m/%d}")
    popover.get_by_placeholder("HH:mm").fill(f"{moment:%H:%M}")
    page.keyboard.press("Tab")
    dialog.get_by_text("Date Range").click()  # closes the picker
    popover.wait_for(state="hidden")


def test_the_backfill_dialog_creates_a_backfill_that_completes(logged_in_page: Any, ui_stack: UiStack,
                                                               screenshot: Any) -> None:
    page = logged_in_page
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # Every window from the instance's first to the last complete one (its data all served): then the
    # runs' coverage checks find no gap before their own windows either.
    first = ui_stack.first_window
    last = now - timedelta(minutes=now.minute % 5 + 5)
    expected = [first + n * timedelta(minutes=5) for n in range(int((last - first) / timedelta(minutes=5)) + 1)]
    assert len(expected) >= 3
    page.goto(f"/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Backfill", exact=True).first.click()
    _pick(page, dialog, 0, first)
    _pick(page, dialog, 1, last)
    dialog.get_by_text(f"{len(expected)} runs will be triggered").wait_for()
    assert dialog.get_by_role("checkbox", name=re.compile(f"Unpause {DAG_ID}")).is_checked()
    screenshot(page, "dialog-filled")
    try:
        with page.expect_response(re.compile(r"/api/v2/backfills$")) as created:
            dialog.get_by_role("button", name="Run Backfill").click()
        assert created.value.status == 200, created.value.text()
        backfill = created.value.json()
        assert backfill["dag_id"] == DAG_ID
        assert datetime.fromisoformat(backfill["from_date"].replace("Z", "+00:00")) == first

        def at(run: dict[str, Any]) -> datetime:
            return datetime.fromisoformat(run["logical_date"].replace("Z", "+00:00"))

        def finished() -> list[dict[str, Any]] | None:
            ui_stack.stack.check_alive()
            runs = [r for r in ui_stack.api.dag_runs(DAG_ID) if at(r) in expected]
            done = ui_stack.api.get(f"backfills/{backfill['id']}")["completed_at"] is not None
            ended = {at(r) for r in runs if r["state"] in ("success", "failed")} == set(expected)
            return runs if done and ended else None

        runs = wait_until(finished, timeout=600, what=f"backfill {backfill['id']} of {DAG_ID} completed")
    finally:
        ui_stack.api.set_paused(DAG_ID, True)  # the dialog unpaused it: no scheduled runs beside later tests
    # The backfill ran every window it was asked for ("Missing Runs": a window the scheduler ran on its
    # own once the dialog unpaused the DAG, the newest, is left to that run) and every one succeeded.
    backfilled = sorted(at(r) for r in runs if r["run_type"] == "backfill")
    assert backfilled and backfilled == expected[: len(backfilled)], backfilled
    assert sorted(at(r) for r in runs) == expected
    assert {r["state"] for r in runs} == {"success"}, [(r["dag_run_id"], r["state"]) for r in runs]
    page.goto(f"/dags/{DAG_ID}/runs")
    page.get_by_text(re.compile(r"backfill__")).first.wait_for()
    screenshot(page, "runs")
