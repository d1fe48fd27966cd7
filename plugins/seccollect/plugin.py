"""The Airflow plugin of the package (entry point ``airflow.plugins``): the connector DAGs' timetables,
which the scheduler, the dag-processor and the api-server must know to (de)serialise the DAGs, and the
api-server middleware that lets the UI's Test button work on connections stored without a port."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from seccollect.api_middleware import ConnectionTestPortMiddleware
from seccollect.dag_factory.timetable import WindowCronTimetable, WindowDeltaTimetable


class SeccollectPlugin(AirflowPlugin):
    name = "seccollect"
    timetables = [WindowCronTimetable, WindowDeltaTimetable]
    fastapi_root_middlewares = [
        {"middleware": ConnectionTestPortMiddleware, "args": [], "kwargs": {}, "name": "Connection test: port 0 is no port"},
    ]
