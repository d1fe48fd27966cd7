"""The Airflow plugin of the package (entry point ``airflow.plugins``): the connector DAGs' timetables,
which the scheduler, the dag-processor and the api-server must know to (de)serialise the DAGs, and the
listener that notes on every connector run the window it collects (:mod:`seccollect.run_notes`)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from seccollect import run_notes
from seccollect.dag_factory.timetable import WindowCronTimetable, WindowDeltaTimetable


class SeccollectPlugin(AirflowPlugin):
    name = "seccollect"
    timetables = [WindowCronTimetable, WindowDeltaTimetable]
    listeners = [run_notes]
