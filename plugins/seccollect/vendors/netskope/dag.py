"""Wire a Netskope instance's tasks: collect_<ct> >> [map_alerts >>] load_<ct> per content type."""

from __future__ import annotations

from airflow.sdk import DAG

from seccollect.config.instance import NetskopeInstance
from seccollect.operators.load import WarehouseLoadOperator
from seccollect.vendors.netskope.operators import NetskopeAlertMappingOperator, NetskopeCollectOperator

NOTES = """## How windows are read

Netskope makes records queryable late. Each run asks for the records whose **insertion time**
(`_insertion_epoch_timestamp`) lies in the run's data interval shifted back by the settle lag
(`settle_lag_seconds`), i.e. `(start - lag, end - lag]` in whole seconds. Insertion time never changes
once a record is queryable, so consecutive windows tile time: a record that arrives after its event's
window closed is collected exactly once, by a later window. Each record keeps its own event time
(`timestamp`) in `event_time`. Duplicates with the same `_id` collapse on `record_id`.

Pops and tunnels are snapshots taken once a day (the run whose window holds 00:00 UTC); an entry is
loaded again only when it differs from its latest loaded version, so the latest row per entry is its
current state. Breach, Connection and Malsite alerts are mapped into `alerts`
(task `map_alerts`), one row per (tenant, user, id) with first/last seen and the raw alert count.
"""


def add_tasks(dag: DAG, instance: NetskopeInstance) -> None:
    with dag:
        dag.doc_md = _doc(instance)
        for content_type in instance.selected_content_types:
            collect = NetskopeCollectOperator(
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
                warehouse_conn_id=instance.warehouse_conn_id,
            )
            sources = [collect.task_id]
            upstream = collect
            if content_type == "alert":
                mapping = NetskopeAlertMappingOperator(task_id="map_alerts", collect_task_id=collect.task_id)
                collect >> mapping
                sources.append(mapping.task_id)
                upstream = mapping
            load = WarehouseLoadOperator(
                task_id=f"load_{content_type}",
                source_task_ids=sources,
                content_type=content_type,
                warehouse_conn_id=instance.warehouse_conn_id,
                pool=instance.load_pool,
            )
            upstream >> load


def _doc(instance: NetskopeInstance) -> str:
    from seccollect.dag_factory.builder import doc_md

    return doc_md(instance, NOTES)
