"""One DAG per connector instance file in include/connectors/ (or $CONNECTORS_DIR).

Only wiring lives here; see seccollect.dag_factory. A task run builds just its own DAG.
"""

from airflow.sdk import get_parsing_context

from seccollect.dag_factory.builder import register_dags

register_dags(globals(), dag_id=get_parsing_context().dag_id)
