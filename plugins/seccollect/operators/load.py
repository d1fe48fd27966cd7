"""WarehouseLoadOperator: load a window's staged batches into the warehouse in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class WarehouseLoadOperator(BaseOperator):
    """Load what upstream tasks staged for this run's window, idempotently.

    Rows whose ``record_id`` is already present are skipped, so clearing, re-running or backfilling
    a window never duplicates anything; the window's ledger entry commits with its rows. After the
    commit it prunes the DAG's staged windows past the staging retention (see
    :func:`~seccollect.staging.store.prune_staging`).

    :param source_task_ids: upstream tasks whose XCom lists staged batches (collect, map, …).
    :param content_type: the content type the window belongs to (ledger key).
    :param warehouse_conn_id: Airflow connection of the warehouse (``duckdb`` or ``postgres``).
    """

    template_fields: Sequence[str] = ()
    ui_color = "#fdf2e8"

    def __init__(
        self,
        *,
        source_task_ids: Sequence[str],
        content_type: str,
        warehouse_conn_id: str = "seccollect_warehouse",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_task_ids = list(source_task_ids)
        self.content_type = content_type
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from seccollect.operators.collect import parse_window_bound
        from seccollect.staging.store import StagedBatch
        from seccollect.warehouse import open_warehouse
        from seccollect.warehouse.base import ConsumedObject, QuarantineEntry, WarehouseSchemaError, WindowKey

        ti = context["ti"]
        batches: list[StagedBatch] = []
        quarantine: list[QuarantineEntry] = []
        consumed: list[ConsumedObject] = []
        window = None
        for task_id in self.source_task_ids:
            pulled = ti.xcom_pull(task_ids=task_id)
            # A mapped upstream returns one XCom per map index.
            results = pulled if isinstance(pulled, list) else [pulled]
            for result in results:
                if not result:
                    continue
                window = window or result["window"]
                batches.extend(StagedBatch.from_xcom(b) for b in result.get("batches", []))
                quarantine.extend(QuarantineEntry(**q) for q in result.get("quarantine", []))
                consumed.extend(ConsumedObject(**o) for o in result.get("consumed", []))
        if window is None:
            window = [str(context["data_interval_start"]), str(context["data_interval_end"])]
        key = WindowKey(
            dag_id=self.dag_id,
            content_type=self.content_type,
            window_start=parse_window_bound(window[0]),
            window_end=parse_window_bound(window[1]),
        )
        with open_warehouse(self.warehouse_conn_id) as warehouse:
            try:
                warehouse.ensure_schema()
            except WarehouseSchemaError as exc:
                raise AirflowFailException(str(exc)) from exc  # retrying cannot fix a table's columns
            report = warehouse.load_window(
                key, batches, run_id=context["run_id"], quarantine=quarantine, consumed=consumed
            )
        summary = report.to_xcom()
        self.log.info("Loaded window %s .. %s of %s: %s", key.window_start, key.window_end, self.content_type, summary)
        self._prune_staging()
        return summary

    def _prune_staging(self) -> None:
        """Remove this DAG's staged windows older than the retention; never fails the (committed) load."""
        from seccollect.staging.store import STAGING_RETENTION_ENV, prune_staging, staging_retention

        try:
            retention = staging_retention()
            if retention is None:
                return
            pruned = prune_staging(self.dag_id, retention)
        except Exception:  # the window is loaded; a pruning problem must not fail or retry it
            self.log.warning("Could not prune old staged windows (%s)", STAGING_RETENTION_ENV, exc_info=True)
            return
        if pruned:
            self.log.info("Pruned %d staged window(s) older than %s: %s", len(pruned), retention, ", ".join(pruned))
