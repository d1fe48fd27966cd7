"""Wire a ConnectSecure instance's tasks: collect_<ct> >> load_<ct> per content type (Asset always)."""

from __future__ import annotations

from airflow.sdk import DAG

from seccollect.operators.load import load_task
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
            load_task(instance, content_type, collect.output)
