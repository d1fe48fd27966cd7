"""Shared fixtures of the browser tests: Debian's Chromium driven by Playwright against a whole Airflow.

One Airflow (:class:`~seccollect_dev.airflow_stack.AirflowStack`: api-server, scheduler, dag-processor,
triggerer) serves every browser test (package scope: it stops after the last test of ``tests/browser``), on a PostgreSQL metadata database of its own, with the demo's
simulators, instance files, connections and load pool (:mod:`seccollect_dev.demo`), all in a temporary
folder and on free ports. Nothing is installed here: Chromium is ``/usr/bin/chromium`` (``.ci/run``
installs Debian's package when it is missing) and Playwright never downloads a browser. Without
Chromium or Playwright the browser tests skip with the reason; under ``REQUIRE_SERVICES=1`` they fail.

Fixtures (for every browser test, e.g. the Trigger form and the coverage page):

* ``ui_stack`` (package) - a :class:`UiStack`: ``stack`` (the AirflowStack), ``api`` (its REST client as
  admin), ``url``, ``password``, ``urls`` (simulator name -> URL), ``dag_ids`` (the demo DAGs, parsed,
  paused), ``warehouse`` (the DuckDB file), ``demo_dir``, ``first_window`` (every demo instance starts
  there, 15-20 minutes before the stack; ``catchup: false``, so unpausing queues no old windows);
* ``chromium`` (session) - the path of the Chromium binary (or a skip);
* ``browser`` (package) - a headless Playwright ``Browser`` on that Chromium;
* ``page`` - a fresh browser context and page, closed after the test (a screenshot is saved when the
  test fails);
* ``logged_in_page`` - ``page`` logged in to the UI as ``admin``;
* ``screenshot`` - ``screenshot(page, name)`` saves ``<artifacts>/<test name>-<name>.png`` and returns
  its path;
* ``artifacts_dir`` (session) - ``$ARTIFACTS_DIR`` or ``tests/artifacts`` (ignored by git).

The helpers :func:`login` and :func:`wait_until` are importable from ``tests.browser.conftest``.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, REQUIRE_SERVICES

#: Where Debian's package puts Chromium (``apt-get install chromium``).
CHROMIUM = Path(os.environ.get("SECCOLLECT_CHROMIUM", "/usr/bin/chromium"))
#: How long a page may take to show what a test waits for (the UI loads its bundle once per context).
UI_TIMEOUT_MS = 60_000


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1: browser tests must run; .ci/run installs Debian's chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and page dumps of the browser tests: ``$ARTIFACTS_DIR`` or ``tests/artifacts``."""
    folder = Path(os.environ.get("ARTIFACTS_DIR") or REPO / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The Chromium binary; skips (fails under REQUIRE_SERVICES=1) when it or Playwright is missing."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc}); pip install -r requirements.txt")
    return CHROMIUM


@pytest.fixture(scope="package")
def browser(chromium: Path) -> Iterator[Any]:
    """A headless Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=str(chromium), headless=True,
                # Root (CI, containers) cannot use Chromium's sandbox; /dev/shm is small in containers.
                args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
            )
        except Exception as exc:  # noqa: BLE001 - an unusable browser is reported like a missing one
            _unavailable(f"{chromium} did not start under Playwright: {exc}")
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class UiStack:
    """The session's Airflow and what it talks to."""

    stack: Any
    api: Any
    urls: dict[str, str]
    dag_ids: list[str]
    warehouse: Path
    demo_dir: Path
    #: Every demo instance's start (``start_date``, 15-20 minutes before the stack started; no catch-up).
    first_window: datetime

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def password(self) -> str:
        return self.stack.password


@pytest.fixture(scope="package")
def ui_stack(tmp_path_factory: pytest.TempPathFactory, postgres_server: dict[str, Any]) -> Iterator[UiStack]:
    """A whole Airflow on a PostgreSQL metadata database with the demo's simulators, DAGs, connections
    and pool, in a temporary folder on free ports (never the checkout's ``.airflow``/``.demo``)."""
    from seccollect_dev import demo
    from seccollect_dev.airflow_stack import AirflowStack, PostgresServer, free_port
    from seccollect_dev.simulators import SIMULATORS

    root = tmp_path_factory.mktemp("ui")
    with pytest.MonkeyPatch.context() as patch:
        # The demo's paths are module settings (DEMO_ROOT at import); point them at this session's folder.
        for name, value in {
            "ROOT": root, "AIRFLOW_HOME": root / ".airflow", "DEMO_DIR": root / ".demo",
            "WAREHOUSE_PATH": root / ".demo" / "warehouse.duckdb",
            "SIMULATORS_STATE": root / ".demo" / "simulators.json", "STACK_STATE": root / ".airflow" / "stack.json",
        }.items():
            patch.setattr(demo, name, value)
        for name in SIMULATORS:
            patch.setenv(f"DEMO_{name.upper()}_PORT", str(free_port()))
        (root / ".demo").mkdir()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        first_window = now - timedelta(minutes=now.minute % 5 + 15)
        pg = PostgresServer(host=str(postgres_server["host"]), port=int(postgres_server["port"]),
                            user=str(postgres_server["user"]))
        dbname = f"seccollect_ui_{uuid.uuid4().hex[:10]}"
        pg.ensure_database(dbname)
        env = {**os.environ, **demo.demo_environment()}
        try:
            with demo.services(env) as urls:
                # Airflow's default parse intervals: the instance files do not change during the tests,
                # and re-parsing every few seconds would load the machine for nothing.
                stack = AirflowStack(env, pg.sqlalchemy_url(dbname), root / ".demo" / "logs")
                demo.prepare_airflow(stack)
                _start_recently_without_catch_up(root / ".demo" / "connectors", first_window)
                stack.start()
                try:
                    api = stack.api()
                    dag_ids = list(demo.demo_dags())
                    demo.wait_for_dags(api, dag_ids)
                    yield UiStack(stack, api, urls, dag_ids, demo.WAREHOUSE_PATH, root / ".demo", first_window)
                finally:
                    stack.stop()
        finally:
            pg.drop_database(dbname)


def _start_recently_without_catch_up(folder: Path, first_window: datetime) -> None:
    """The demo's instances, for UI tests: starting at ``first_window`` (not the hour their files were
    written: at 11:05 no earlier window of this hour could be backfilled, and every window since 10:00
    would be judged by the coverage check), and without catch-up (a DAG unpaused by a dialog must not
    queue runs ahead of the test's own)."""
    for path in folder.glob("*.yaml"):
        path.write_text(path.read_text().rstrip("\n") + f"\nstart_date: '{first_window.isoformat()}'\ncatchup: false\n")


@pytest.fixture
def screenshot(artifacts_dir: Path, request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """``screenshot(page, name)``: a full-page PNG in the artifacts folder, named after the test."""
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def take(page: Any, name: str) -> Path:
        path = artifacts_dir / f"{test}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def page(browser: Any, ui_stack: UiStack, screenshot: Callable[[Any, str], Path],
         request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh context (no cookies) and page on the session's Airflow; a screenshot when the test fails."""
    context = browser.new_context(base_url=ui_stack.url, viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            try:
                screenshot(page, "failure")
            except Exception:  # noqa: BLE001 - the test's own failure matters, not the screenshot's
                pass
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Keep each phase's report on the test item (the ``page`` fixture screenshots failed tests)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def login(page: Any, stack: UiStack) -> None:
    """Log in to the UI as ``admin`` through the simple auth manager's login form."""
    page.goto("/")
    page.get_by_label(re.compile("username", re.I)).fill("admin")
    page.get_by_label(re.compile("password", re.I)).fill(stack.password)
    page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
    page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))


@pytest.fixture
def logged_in_page(page: Any, ui_stack: UiStack) -> Any:
    """``page``, logged in as ``admin``."""
    login(page, ui_stack)
    return page


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 2.0) -> Any:
    """Poll ``condition`` until it returns something true; its value (TimeoutError naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)
