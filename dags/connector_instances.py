"""One DAG per connector instance file in ../include/connectors (or $CONNECTORS_DIR).

Only wiring lives here; see seccollect.dag_factory. A task run builds just its own DAG.
"""

from pathlib import Path

from airflow.sdk import get_parsing_context

from seccollect.config.loader import connectors_dir
from seccollect.dag_factory.builder import register_dags

#: Instance files live beside the DAG folder (``include/connectors``), unless CONNECTORS_DIR says otherwise.
INSTANCE_FOLDER = connectors_dir(Path(__file__).resolve().parent.parent / "include" / "connectors")

register_dags(globals(), INSTANCE_FOLDER, dag_id=get_parsing_context().dag_id)
