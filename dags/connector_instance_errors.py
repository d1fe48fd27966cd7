"""Shows broken connector instance files as an Airflow import error (with file and field named).

Kept apart from connector_instances.py on purpose: an import error discards every DAG of the file it
happens in, so the valid instances' DAGs are built there and the broken files (or a missing folder)
are reported here.
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from seccollect.config.loader import connectors_dir
from seccollect.dag_factory.errors import raise_if_instance_files_invalid

INSTANCE_FOLDER = connectors_dir(Path(__file__).resolve().parent.parent / "include" / "connectors")

raise_if_instance_files_invalid(dag_id=get_parsing_context().dag_id, directory=INSTANCE_FOLDER)
