"""Logging in to the Airflow UI in Chromium: the simple auth manager's form, then the home page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import UiStack, login

pytestmark = [pytest.mark.browser, pytest.mark.airflow_e2e, pytest.mark.scheduler]


def test_log_in_and_see_the_home_page_and_the_demo_dags(page: Any, ui_stack: UiStack, screenshot: Any) -> None:
    page.goto("/")
    page.wait_for_url(re.compile(r"/auth/login"))  # an anonymous visitor is sent to the login form
    page.get_by_label(re.compile("password", re.I)).wait_for()
    screenshot(page, "login-form")
    login(page, ui_stack)
    page.get_by_role("heading", name="Welcome").wait_for()
    for component in ("MetaDatabase", "Scheduler", "Triggerer", "Dag Processor"):  # the Health badges
        page.get_by_text(component, exact=True).first.wait_for()
    screenshot(page, "home")
    page.goto("/dags")
    page.get_by_text(re.compile(r"\d+ Dags")).first.wait_for()
    for dag_id in ui_stack.dag_ids:
        page.get_by_text(dag_id, exact=True).first.wait_for()
    screenshot(page, "dags")


def test_a_wrong_password_is_refused(page: Any, ui_stack: UiStack) -> None:
    page.goto("/")
    page.get_by_label(re.compile("username", re.I)).fill("admin")
    page.get_by_label(re.compile("password", re.I)).fill("not-the-password")
    page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
    page.get_by_text(re.compile("invalid|incorrect|wrong", re.I)).first.wait_for()
    assert "/auth/login" in page.url
