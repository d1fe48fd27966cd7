"""The toy connector's tasks: collect_sighting >> load_sighting, on the shared windowed pattern."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from seccollect.operators.load import WarehouseLoadOperator
from seccollect.operators.windowed import WindowedCollectOperator
from seccollect.records.envelope import MsgOrigin
from seccollect.records.intake import RecordFields
from seccollect.records.values import epoch_seconds
from tests.seccollect.toy_vendor.hook import ToyHook


class ToyCollectOperator(WindowedCollectOperator):
    def __init__(self, *, toy_conn_id: str, per_minute: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.toy_conn_id = toy_conn_id
        self.per_minute = per_minute

    def origin(self) -> MsgOrigin:
        return MsgOrigin("toy_sighting", "toy", "toy", "testing")

    def pages(self, query_start: datetime, query_end: datetime, context: Any) -> Iterator[Sequence[Any]]:
        return ToyHook(self.toy_conn_id).sightings(query_start, query_end, self.per_minute)

    def extract(self, raw: dict[str, Any]) -> RecordFields:
        return RecordFields(
            vendor_id=raw["id"],
            event_time=epoch_seconds(raw["seen"], "seen"),
            typed={"assets": {"asset_id": raw["host"], "hostname": raw["host"]}},
        )

    def collect(self, writer: Any, envelope: Any, context: Any) -> Any:
        collected = super().collect(writer, envelope, context)
        # The vendor's own table, loaded with the records by the shared load.
        writer.add("toy_windows", {"dag_id": self.dag_id, "window_start": envelope.window_start,
                                   "sightings": collected.figures["staged"]})
        return collected


def add_tasks(dag: DAG, instance: Any) -> None:
    with dag:
        collect = ToyCollectOperator(
            task_id="collect_sighting",
            tenant=instance.tenant,
            instance_name=instance.name,
            content_type="sighting",
            toy_conn_id=instance.conn_id,
            per_minute=instance.per_minute,
        )
        WarehouseLoadOperator(
            task_id="load_sighting",
            staged=collect.output,
            content_type="sighting",
            connector_type=instance.connector_type,
            warehouse_conn_id=instance.warehouse_conn_id,
            pool=instance.load_pool,
        )
