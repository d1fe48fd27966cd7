"""The AWS DAG's shape: wait >> list >> mapped collect >> load, wired from the instance settings."""

from __future__ import annotations

from seccollect.dag_factory.builder import build_dag
from seccollect.vendors.aws.instance import AwsCloudTrailInstance


def test_add_tasks_wires_sensor_list_mapped_collect_and_load():
    instance = AwsCloudTrailInstance(
        name="ct",
        tenant="acme",
        type="aws_cloudtrail",
        conn_id="aws_prod",
        sub_type="cloudtrail",
        bucket="aws-controltower-logs-999988887777-us-east-1",
        prefix="o-a1b2c3d4e5/AWSLogs/o-a1b2c3d4e5/*/CloudTrail/us-east-1",
        region="us-east-1",
        proxy="http://proxy.internal:3128",
        lookback_minutes=45,
        batch_size=25,
        load_pool="aws_loads",
    )
    dag = build_dag(instance)
    assert set(dag.task_ids) == {
        "wait_cloudtrail",
        "list_cloudtrail",
        "collect_cloudtrail",
        "load_cloudtrail",
        "check_coverage",
    }
    wait, listing = dag.get_task("wait_cloudtrail"), dag.get_task("list_cloudtrail")
    collect, load = dag.get_task("collect_cloudtrail"), dag.get_task("load_cloudtrail")
    assert wait.downstream_task_ids == {"list_cloudtrail"}
    assert listing.downstream_task_ids == {"collect_cloudtrail"}
    assert collect.downstream_task_ids == {"load_cloudtrail"}
    assert not dag.get_task("check_coverage").upstream_task_ids  # beside the vendor's tasks

    assert type(collect).__name__ == "MappedOperator"  # dynamic task mapping over the listed batches
    assert collect.partial_kwargs["proxy"] == "http://proxy.internal:3128"
    assert collect.partial_kwargs["aws_conn_id"] == "aws_prod"
    assert (listing.lookback_minutes, listing.batch_size, listing.region_name) == (45, 25, "us-east-1")
    assert wait.mode == "reschedule" and wait.prefix == instance.prefix
    assert load.pool == "aws_loads" and load.upstream_task_ids == {"collect_cloudtrail"}  # staged=collect.output
    assert "Control Tower" in dag.doc_md and "45 min" in dag.doc_md and "object_ledger" in dag.doc_md


def test_dag_docs_warn_about_a_lookback_shorter_than_an_interval_plus_usual_lateness():
    def docs(sub_type: str, prefix: str, lookback: int, interval: int) -> str:
        return build_dag(AwsCloudTrailInstance(
            name=f"{sub_type}-{lookback}", tenant="acme", type="aws_cloudtrail", conn_id="aws_prod",
            sub_type=sub_type, bucket="logs", prefix=prefix, lookback_minutes=lookback,
            interval_minutes=interval,
        )).doc_md

    vpc = "AWSLogs/111122223333/vpcflowlogs/us-east-1"
    # VPC flow logs are usually up to 15 minutes late: 10-minute windows need a look-back of 25.
    short = docs("vpcflow", vpc, 20, 10)
    assert "**Warning: the look-back (20 min) is shorter than one interval (10 min) plus the" in short
    assert "`lookback_minutes` to at least 25" in short
    assert "Warning" not in docs("vpcflow", vpc, 25, 10)
    assert "Late objects" in short and "late_items" in short
    # CloudTrail names objects by delivery time: 5 minutes of lateness on top of the interval.
    ct = "AWSLogs/111122223333/CloudTrail/us-east-1"
    assert "Warning" in docs("cloudtrail", ct, 30, 30) and "Warning" not in docs("cloudtrail", ct, 35, 30)
