"""Wire a Netskope instance's tasks: collect_<ct> >> [map_alerts >>] load_<ct> per content type."""

from __future__ import annotations

from airflow.sdk import DAG

from seccollect.operators.load import load_task
from seccollect.vendors.netskope.instance import NetskopeInstance
from seccollect.vendors.netskope.operators import (
    NetskopeAlertMappingOperator,
    NetskopeCollectOperator,
    NetskopeSteeringOperator,
)


def add_tasks(dag: DAG, instance: NetskopeInstance) -> None:
    with dag:
        for content_type in instance.selected_content_types:
            snapshot = instance.content_type(content_type).pattern == "snapshot"
            windowed = {} if snapshot else {"warehouse_conn_id": instance.warehouse_conn_id}
            operator = NetskopeSteeringOperator if snapshot else NetskopeCollectOperator
            collect = operator(
                **windowed,
                task_id=f"collect_{content_type}",
                tenant=instance.tenant,
                instance_name=instance.name,
                content_type=content_type,
                netskope_conn_id=instance.conn_id,
                netskope_tenant=instance.netskope_tenant,
                api_version=instance.api_version,
                settle_lag_seconds=instance.settle_lag_seconds,
                verify_ssl=instance.verify_ssl,
                proxy=instance.proxy,
            )
            staged = [collect.output]
            if content_type == "alert":
                mapping = NetskopeAlertMappingOperator(task_id="map_alerts", staged=collect.output)
                staged.append(mapping.output)
            load_task(instance, content_type, staged)
