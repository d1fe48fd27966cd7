"""WarehouseLoadOperator: load a window's staged parts into the warehouse in one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def warehouse_asset(warehouse_conn_id: str, table: str) -> Asset:
    """The Airflow asset of one warehouse table: ``warehouse://<connection id>/<table>`` (a connection id,
    not a host: parsing a DAG may not look the connection up, and the id is what names the warehouse in
    every instance file). A downstream DAG is scheduled on it with ``schedule=[warehouse_asset(...)]``."""
    return Asset(
        name=f"{warehouse_conn_id}.{table}",
        uri=f"warehouse://{warehouse_conn_id}/{table}",
        group="warehouse",
        extra={"table": table},
    )


def _tables_of(connector_type: str, content_type: str) -> tuple[str, ...]:
    from seccollect import registry

    content = registry.get(connector_type).content_types.get(content_type)
    return content.tables if content else ()


class WarehouseLoadOperator(BaseOperator):
    """Load what upstream tasks staged for this run's window, idempotently.

    Rows whose key is already present are skipped, so clearing, re-running or backfilling a window
    never duplicates anything; the window's quarantine entries, the vendor's post-load step (its spec's
    ``post_load``), a snapshot's state and the ledger entry commit with its rows. After the commit it
    prunes the DAG's staged windows past the staging retention (see
    :func:`~seccollect.staging.store.prune_staging`).

    :param staged: the upstream tasks' :class:`~seccollect.staging.handoff.StagedWindow` (templated:
        pass their ``.output``; a list of them, or a mapped task's output, is fine). A ``late`` figure
        (items delivered after their own window ran) is added to the ledger's ``late_items``.
    :param content_type: the content type the window belongs to (ledger key).
    :param connector_type: the connector type whose spec's ``post_load`` step runs in the transaction.
    :param warehouse_conn_id: Airflow connection of the warehouse (``duckdb`` or ``postgres``).

    Its ``outlets`` default to one Airflow asset per warehouse table of the content type
    (:func:`warehouse_asset`): each successful load emits an asset event per table, with the window and
    the rows it inserted, so downstream DAGs can be scheduled on the data.
    """

    template_fields: Sequence[str] = ("staged",)
    ui_color = "#fdf2e8"

    def __init__(
        self,
        *,
        staged: Any,
        content_type: str,
        connector_type: str | None = None,
        warehouse_conn_id: str = "seccollect_warehouse",
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and connector_type is not None:
            kwargs["outlets"] = [warehouse_asset(warehouse_conn_id, t) for t in _tables_of(connector_type, content_type)]
        super().__init__(**kwargs)
        self.staged = staged
        self.content_type = content_type
        self.connector_type = connector_type
        self.warehouse_conn_id = warehouse_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from seccollect import registry
        from seccollect.operators.collect import run_window
        from seccollect.staging.handoff import flatten
        from seccollect.warehouse import open_warehouse
        from seccollect.warehouse.base import WarehouseSchemaError, WindowKey

        windows = flatten(self.staged)
        if windows:
            bounds = {(w.window_start, w.window_end) for w in windows}
            if len(bounds) != 1:
                raise AirflowFailException(f"the staged outputs disagree on their window: {sorted(bounds)}")
            start, end = bounds.pop()
        else:
            start, end = run_window(self, context)
        key = WindowKey(dag_id=self.dag_id, content_type=self.content_type, window_start=start, window_end=end)
        batches = [batch for window in windows for batch in window.batches]
        cursors = [w.cursor for w in windows if w.cursor is not None]
        collected = [w.collected_at for w in windows if w.collected_at is not None]
        spec = registry.get(self.connector_type) if self.connector_type else None
        post_load = spec.post_load if spec else None
        content = spec.content_types.get(self.content_type) if spec else None
        with open_warehouse(self.warehouse_conn_id) as warehouse:
            try:
                warehouse.ensure_schema()
            except WarehouseSchemaError as exc:
                raise AirflowFailException(str(exc)) from exc  # retrying cannot fix a table's columns
            report = warehouse.load_window(
                key,
                batches,
                run_id=context["run_id"],
                cursor=json.dumps(cursors[0], sort_keys=True) if cursors else None,
                post_load=post_load,
                snapshot=any(w.pattern == "snapshot" for w in windows),
                collected_at=min(collected) if collected else None,
                base_table=content.tables[0] if content else None,
                late_items=sum(w.figures.get("late", 0) for w in windows),
            )
        summary = report.to_xcom()
        self._describe_asset_events(context, key, report)
        self.log.info("Loaded window %s .. %s of %s: %s", key.window_start, key.window_end, self.content_type, summary)
        if report.quarantined:
            self.log.warning(
                "%d record(s) or object(s) of this window are in quarantine (with their reason): "
                "SELECT source_ref, reason FROM quarantine WHERE dag_id = '%s' AND window_start = '%s'",
                report.quarantined,
                self.dag_id,
                key.window_start.isoformat(),
            )
        self._prune_staging()
        return summary

    def _describe_asset_events(self, context: Context, key: Any, report: Any) -> None:
        """Put the window and the rows inserted on the asset event of each table this load writes."""
        events = context.get("outlet_events")
        if events is None:
            return
        for asset in self.outlets:
            table = (getattr(asset, "extra", None) or {}).get("table")
            if table is None:
                continue
            loaded = report.tables.get(table)
            events[asset].extra = {
                "dag_id": key.dag_id,
                "content_type": key.content_type,
                "window_start": key.window_start.isoformat(),
                "window_end": key.window_end.isoformat(),
                "rows_inserted": loaded.inserted if loaded else 0,
            }

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


def load_task(instance: Any, content_type: str, staged: Any) -> WarehouseLoadOperator:
    """The load task of ``instance``'s ``content_type`` (``load_<content_type>``) reading ``staged`` (a
    collect task's output, or a list of them), into the instance's warehouse through its load pool.
    Called inside the DAG's context, as every vendor's ``add_tasks`` builds it."""
    return WarehouseLoadOperator(
        task_id=f"load_{content_type}",
        staged=staged,
        content_type=content_type,
        connector_type=instance.connector_type,
        warehouse_conn_id=instance.warehouse_conn_id,
        pool=instance.load_pool,
    )
