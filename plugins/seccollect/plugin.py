"""The Airflow plugin of the package (entry point ``airflow.plugins``):

* the connector DAGs' timetables, which the scheduler, the dag-processor and the api-server must know to
  (de)serialise the DAGs;
* the listener that notes on every connector run the window it collects (:mod:`seccollect.run_notes`);
* the Coverage page (:mod:`seccollect.coverage_page`): a FastAPI app the api-server mounts at
  ``/seccollect``, shown in the UI's navigation and as a tab of every DAG;
* the api-server middleware that lets the UI's Test button work on connections stored without a port
  (:mod:`seccollect.api_middleware`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from seccollect import run_notes
from seccollect.api_middleware import ConnectionTestPortMiddleware
from seccollect.dag_factory.timetable import WindowCronTimetable, WindowDeltaTimetable

_COVERAGE = "/seccollect/coverage"


class SeccollectPlugin(AirflowPlugin):
    name = "seccollect"
    timetables = [WindowCronTimetable, WindowDeltaTimetable]
    listeners = [run_notes]
    external_views = [
        {"name": "Coverage", "href": _COVERAGE, "destination": "nav", "url_route": "coverage",
         "nav_top_level": True},
        # The same page on each DAG (a tab): the UI replaces {DAG_ID} for views of destination "dag".
        {"name": "Coverage", "href": _COVERAGE + "?dag_id={DAG_ID}", "destination": "dag"},
    ]

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        # Built on first use: only the api-server reads it (other components never import FastAPI's auth).
        from seccollect.coverage_page import URL_PREFIX, create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "seccollect coverage"}]

    fastapi_root_middlewares = [
        {"middleware": ConnectionTestPortMiddleware, "args": [], "kwargs": {}, "name": "Connection test: port 0 is no port"},
    ]
