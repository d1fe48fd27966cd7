"""Wire a ConnectSecure instance's tasks: collect_<ct> >> load_<ct> per content type (Asset always)."""

from __future__ import annotations

from airflow.sdk import DAG

from seccollect.operators.load import WarehouseLoadOperator
from seccollect.vendors.connectsecure.instance import ConnectSecureInstance
from seccollect.vendors.connectsecure.operators import ConnectSecureCollectOperator


def add_tasks(dag: DAG, instance: ConnectSecureInstance) -> None:
    with dag:
        for content_type in instance.selected_content_types:
            collect = ConnectSecureCollectOperator(
                task_id=f"collect_{content_type}",
                tenant=instance.tenant,
                instance_name=instance.name,
                content_type=content_type,
                connectsecure_conn_id=instance.conn_id,
                verify_ssl=instance.verify_ssl,
                proxy=instance.proxy,
                page_size=instance.page_size,
                endpoints=instance.endpoints,
            )
            WarehouseLoadOperator(
                task_id=f"load_{content_type}",
                staged=collect.output,
                content_type=content_type,
                connector_type=instance.connector_type,
                warehouse_conn_id=instance.warehouse_conn_id,
                pool=instance.load_pool,
            )
