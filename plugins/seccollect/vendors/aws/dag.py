"""Wire an AWS CloudTrail instance: wait_<st> >> list_<st> >> collect_<st> (mapped) >> load_<st>."""

from __future__ import annotations

from airflow.sdk import DAG

from seccollect.config.instance import AwsCloudTrailInstance
from seccollect.operators.load import WarehouseLoadOperator
from seccollect.vendors.aws.operators import S3LogBatchOperator, S3LogListOperator
from seccollect.vendors.aws.sensors import MAX_DELIVERY_DELAY, S3LogWindowSensor

NOTES = """## How windows are read

Objects are chosen by the **time in their key** (CloudTrail: the delivery minute in the file name;
VPC flow logs: the 5-minute window of flow end times; WAF: the 5-minute folder), never by listing the
whole bucket: the prefix is expanded into the date folders of the window (one delimiter LIST first
discovers the accounts of a Control Tower `*` prefix), so LIST requests grow with window length x
accounts x regions, not with the bucket's history. Every record keeps its own event time
(`eventTime`, flow `end`, WAF `timestamp`) in `event_time`.

1. `wait_{st}` waits until the window's objects can exist: a log object of the window is present, or
   the delivery deadline (window end + {delay} min) has passed. Deferrable.
2. `list_{st}` lists `[window_start - {lookback} min, window_end)` so files that land late (even in an
   earlier date folder) are still found, and skips every `(key, ETag)` already in `object_ledger`,
   so each object is read exactly once. Digests, Insights, Config files and empty objects are skipped.
3. `collect_{st}` (one mapped task per batch of {batch} objects) reads and parses each object.
   A corrupt object is quarantined (table `quarantine`, `source_ref` = key, with the reason) and
   none of its records load; the rest of the window loads.
4. `load_{st}` loads rows, quarantine and the object ledger in one transaction. CloudTrail records
   are deduplicated on `eventID`.
"""


def add_tasks(dag: DAG, instance: AwsCloudTrailInstance) -> None:
    st = instance.sub_type
    common = {
        "aws_conn_id": instance.conn_id,
        "bucket": instance.bucket,
        "sub_type": st,
        "region_name": instance.region,
        "proxy": instance.proxy,
        "verify_ssl": instance.verify_ssl,
    }
    with dag:
        dag.doc_md = _doc(instance)
        # reschedule: a poking sensor would hold a worker slot for up to the delivery delay
        wait = S3LogWindowSensor(
            task_id=f"wait_{st}", prefix=instance.prefix, poke_interval=60, mode="reschedule", **common
        )
        listing = S3LogListOperator(
            task_id=f"list_{st}",
            prefix=instance.prefix,
            lookback_minutes=instance.lookback_minutes,
            batch_size=instance.batch_size,
            warehouse_conn_id=instance.warehouse_conn_id,
            **common,
        )
        collect = S3LogBatchOperator.partial(
            task_id=f"collect_{st}",
            tenant=instance.tenant,
            instance_name=instance.name,
            content_type=st,
            **common,
        ).expand(objects=listing.output)
        load = WarehouseLoadOperator(
            task_id=f"load_{st}",
            source_task_ids=[f"collect_{st}"],
            content_type=st,
            warehouse_conn_id=instance.warehouse_conn_id,
            pool=instance.load_pool,
        )
        wait >> listing >> collect >> load


def _doc(instance: AwsCloudTrailInstance) -> str:
    from seccollect.dag_factory.builder import doc_md

    notes = (
        NOTES.replace("{st}", instance.sub_type)
        .replace("{delay}", str(int(MAX_DELIVERY_DELAY[instance.sub_type].total_seconds() // 60)))
        .replace("{lookback}", str(instance.lookback_minutes))
        .replace("{batch}", str(instance.batch_size))
    )
    return doc_md(instance, notes)
