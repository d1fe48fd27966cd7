"""Wire a Trend Micro CAS instance's tasks: collect_<ct>_<event> per event type >> load_<ct>."""

from __future__ import annotations

from airflow.sdk import DAG

from seccollect.operators.load import load_task
from seccollect.vendors.trendmicro.instance import TrendMicroCasInstance
from seccollect.vendors.trendmicro.operators import TrendMicroCasCollectOperator


def add_tasks(dag: DAG, instance: TrendMicroCasInstance) -> None:
    with dag:
        for content_type in instance.selected_content_types:
            # One task per event type: each draws on the key's budget, defers and retries on its own.
            collects = [
                TrendMicroCasCollectOperator(
                    task_id=f"collect_{content_type}_{event_type}",
                    tenant=instance.tenant,
                    instance_name=instance.name,
                    content_type=content_type,
                    event_type=event_type,
                    trendmicro_cas_conn_id=instance.conn_id,
                    warehouse_conn_id=instance.warehouse_conn_id,
                    settle_lag_seconds=instance.settle_lag_seconds,
                    page_size=instance.page_size,
                    max_budget_wait_seconds=instance.max_budget_wait_seconds,
                    verify_ssl=instance.verify_ssl,
                    proxy=instance.proxy,
                )
                for event_type in instance.event_types
            ]
            load_task(instance, content_type, [collect.output for collect in collects])
