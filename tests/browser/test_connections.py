"""The connection Test button, through the real api-server: as the UI sends it (``port: 0`` for a
connection stored without a port) for every connection type the demo uses, and clicked in Chromium."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.browser.conftest import UiStack

pytestmark = [pytest.mark.airflow_e2e, pytest.mark.scheduler]


def _as_the_ui_sends_it(connection: dict[str, Any]) -> dict[str, Any]:
    """The body Airflow 3.3.2's connection list posts for its Test button (captured from the UI): empty
    strings for unset text fields, the masked password, and ``port: 0`` when no port is stored."""
    body = {key: connection.get(key) or "" for key in ("connection_id", "conn_type", "description", "host", "login",
                                                       "schema", "extra")}
    body.update(port=connection.get("port") or 0, password="***")
    return body


def test_every_demo_connection_tests_ok_through_the_api_with_port_0(ui_stack: UiStack) -> None:
    connections = {c["connection_id"]: c for c in ui_stack.api.get("connections")["connections"]}
    assert {c["conn_type"] for c in connections.values()} >= {"netskope", "duckdb", "aws"}
    for conn_id, connection in sorted(connections.items()):
        assert connection.get("port") is None, f"{conn_id} is meant to be stored without a port"
        answer = ui_stack.api.request("POST", "connections/test", json=_as_the_ui_sends_it(connection))
        assert answer["status"] is True, f"{conn_id}: {answer['message']}"
    netskope = ui_stack.api.request("POST", "connections/test", json=_as_the_ui_sends_it(connections["netskope_demo"]))
    assert netskope["message"].splitlines() == [
        "Netskope API v2:", *(f"• {ct}: OK" for ct in ("alert", "event", "page", "pops", "tunnels"))]


def test_a_different_host_without_credentials_is_still_refused(ui_stack: UiStack) -> None:
    """The fix only says port 0 is no port: Airflow's own guard against testing stored credentials on
    another destination still holds."""
    connection = ui_stack.api.get("connections/netskope_demo")
    body = {**_as_the_ui_sends_it(connection), "host": "elsewhere"}
    with pytest.raises(RuntimeError, match="400.*differs from the stored connection"):
        ui_stack.api.request("POST", "connections/test", json=body)


def test_a_wrong_key_and_a_refusing_tenant_answer_briefly_and_quickly(ui_stack: UiStack) -> None:
    from seccollect_dev.airflow_stack import free_port

    connection = ui_stack.api.get("connections/netskope_demo")
    # A key typed into the form (sent in the body instead of the stored one).
    wrong = {**_as_the_ui_sends_it(connection), "password": "typed-a-wrong-key-0000"}
    answer = ui_stack.api.request("POST", "connections/test", json=wrong)
    assert answer["status"] is False
    assert answer["message"].count("401") == 1 and answer["message"].count("same as alert") == 4
    assert "typed-a-wrong-key-0000" not in answer["message"]

    refusing = {**wrong, "extra": re.sub(r"http://127\.0\.0\.1:\d+", f"http://127.0.0.1:{free_port()}",
                                          connection["extra"])}
    started = time.monotonic()
    answer = ui_stack.api.request("POST", "connections/test", json=refusing)
    elapsed = time.monotonic() - started
    assert answer["status"] is False and elapsed < 15, (elapsed, answer)
    assert answer["message"].count("Connection refused") == 1


@pytest.mark.browser
def test_the_test_button_on_the_netskope_connection_shows_ok(logged_in_page: Any, ui_stack: UiStack,
                                                             screenshot: Any) -> None:
    page = logged_in_page
    page.goto("/connections")
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="netskope_demo", exact=True))
    with page.expect_response(re.compile(r"/api/v2/connections/test$")) as response:
        row.get_by_role("button", name="Test Connection").click()
    assert response.value.status == 200, response.value.text()
    toast = page.get_by_text("Test Connection Successful")
    toast.wait_for()
    message = page.get_by_text(re.compile(r"Netskope API v2:"))
    message.wait_for()
    text = message.inner_text()
    screenshot(page, "netskope-test-ok")
    for content_type in ("alert", "event", "page", "pops", "tunnels"):
        assert f"{content_type}: OK" in text, text
    assert "Bad Request" not in page.inner_text("body")


def test_the_package_plugin_loads_once_without_import_errors(ui_stack: UiStack) -> None:
    """The middleware that fixes the Test button comes with the package's plugin: it must load, once."""
    errors = ui_stack.api.get("plugins/importErrors")
    assert errors["total_entries"] == 0, errors
    plugins = [p["name"] for p in ui_stack.api.get("plugins")["plugins"]]
    assert plugins.count("seccollect") == 1, plugins
