"""Wire a Qualys instance's tasks: collect_<ct> >> load_<ct> per content type."""

from __future__ import annotations

from airflow.sdk import DAG

from seccollect.operators.load import load_task
from seccollect.vendors.qualys.instance import QualysInstance
from seccollect.vendors.qualys.operators import QualysCollectOperator


def add_tasks(dag: DAG, instance: QualysInstance) -> None:
    with dag:
        for content_type in instance.selected_content_types:
            pool = {"pool": instance.api_pool} if instance.api_pool else {}
            collect = QualysCollectOperator(
                **pool,
                task_id=f"collect_{content_type}",
                tenant=instance.tenant,
                instance_name=instance.name,
                content_type=content_type,
                qualys_conn_id=instance.conn_id,
                api_version=instance.api_version,
                truncation_limit=instance.truncation_limit,
                settle_lag_seconds=instance.settle_lag_seconds,
                verify_ssl=instance.verify_ssl,
                proxy=instance.proxy,
                warehouse_conn_id=instance.warehouse_conn_id,
            )
            load_task(instance, content_type, collect.output)
