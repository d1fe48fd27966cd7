"""Wire an AWS CloudTrail instance: wait_<st> >> list_<st> >> collect_<st> (mapped) >> load_<st>."""

from __future__ import annotations

from airflow.sdk import DAG

from seccollect.operators.load import load_task
from seccollect.vendors.aws.instance import AwsCloudTrailInstance
from seccollect.vendors.aws.operators import S3LogBatchOperator, S3LogListOperator
from seccollect.vendors.aws.sensors import S3LogWindowSensor


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
        load = load_task(instance, st, collect.output)
        wait >> listing >> collect >> load
