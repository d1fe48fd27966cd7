"""Shows broken connector instance files as an Airflow import error (with file and field named).

Kept apart from connector_instances.py on purpose: an import error discards every DAG of the file it
happens in, so the valid instances' DAGs are built there and the broken files are reported here.
"""

from airflow.sdk import get_parsing_context

from seccollect.dag_factory.errors import raise_if_instance_files_invalid

raise_if_instance_files_invalid(dag_id=get_parsing_context().dag_id)
