"""Netskope operators: collect a content type for a window; map alerts before they load."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from seccollect.operators.collect import BaseCollectOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import EnvelopeContext
    from seccollect.staging.store import StagingWriter

#: msg_class per content type (alerts: CONNECTORS.md; the rest: one class per content type).
MSG_CLASS = {
    "alert": "netskopewsg_alert",
    "event": "netskopewsg_event",
    "page": "netskopewsg_page",
    "pops": "netskopewsg_pops",
    "tunnels": "netskopewsg_tunnels",
}


def contains_midnight(start: datetime, end: datetime) -> bool:
    """True when a UTC midnight falls in ``[start, end)``: the one run per day that takes snapshots."""
    midnight = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight < start:
        midnight += timedelta(days=1)
    return midnight < end


class NetskopeCollectOperator(BaseCollectOperator):
    """Collect one Netskope content type for the run's window into staging (→ Syslog).

    Event-like content (alert, event, page) is selected on *insertion* time over the window shifted
    back by ``settle_lag_seconds``: Netskope makes records queryable late, and a record's insertion
    time never changes, so consecutive shifted windows still tile time exactly and each record is
    collected once, by the first run whose window has settled past its insertion. Pops and tunnels are
    snapshots taken once a day, in the run whose window holds UTC midnight. An item whose content equals
    its latest loaded version reuses that version's id (so it is not loaded again); an item that changed
    — including back to an earlier state — gets a new id stamped with the window, so the warehouse's
    latest row per item is always its current state. Beside every raw alert the task stages the fields
    the alert mapping reads (``alert_fields``), so the mapping never parses raw alerts again.

    :param netskope_conn_id: Airflow connection with the API key.
    :param netskope_tenant: tenant name (host ``<tenant>.goskope.com``).
    :param api_version: ``v1`` or ``v2``.
    :param settle_lag_seconds: how far the queried insertion window trails the data interval.
    :param verify_ssl: verify TLS certificates.
    :param proxy: optional proxy URL.
    :param page_size: records per API request (≤ 10,000).
    :param warehouse_conn_id: the warehouse, read for the latest loaded snapshot versions.
    """

    template_fields: Sequence[str] = ("window_start", "window_end")

    def __init__(
        self,
        *,
        netskope_conn_id: str,
        netskope_tenant: str | None = None,
        api_version: str = "v2",
        settle_lag_seconds: int = 300,
        verify_ssl: bool = True,
        proxy: str | None = None,
        page_size: int = 10_000,
        warehouse_conn_id: str = "seccollect_warehouse",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id
        self.netskope_conn_id = netskope_conn_id
        self.netskope_tenant = netskope_tenant
        self.api_version = api_version
        self.settle_lag_seconds = settle_lag_seconds
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self.page_size = page_size

    def should_collect(self, start: datetime, end: datetime) -> bool:
        if self.content_type in ("pops", "tunnels"):
            return contains_midnight(start, end)
        return True

    def collect(self, writer: StagingWriter, envelope: EnvelopeContext, context: Context) -> dict[str, Any]:
        from seccollect.records.envelope import MsgOrigin, content_hash
        from seccollect.vendors.netskope.alert_mapping import alert_fields
        from seccollect.vendors.netskope.hook import ENDPOINTS, NetskopeHook

        hook = NetskopeHook(
            self.netskope_conn_id,
            tenant=self.netskope_tenant,
            api_version=self.api_version,
            verify_ssl=self.verify_ssl,
            proxy=self.proxy,
            page_size=self.page_size,
        )
        origin = MsgOrigin(MSG_CLASS[self.content_type], "netskope", "netskope", "web_security")
        fetched = 0
        if ENDPOINTS[self.content_type].windowed:
            lag = timedelta(seconds=self.settle_lag_seconds)
            query_start, query_end = envelope.window_start - lag, envelope.window_end - lag
            self.log.info("Querying %s inserted in (%s, %s]", self.content_type, query_start, query_end)
            if self.content_type == "alert":
                # The mapping task's input, extracted from each Syslog part as it is written.
                writer.derive("syslog", "alert_fields", alert_fields)
            for page in hook.iter_window(self.content_type, query_start, query_end):
                fetched += len(page)
                for raw in page:
                    ts = raw.get("timestamp")
                    writer.add(
                        "syslog",
                        envelope.wrap(
                            origin,
                            raw,
                            vendor_id=str(raw["_id"]) if raw.get("_id") else None,
                            event_time=datetime.fromtimestamp(int(ts), UTC) if ts is not None else None,
                        ),
                    )
        else:
            previous = self._previous_versions(origin.msg_class, envelope)
            stamp = envelope.window_end.strftime("%Y%m%dT%H%M%SZ")
            for page in hook.iter_snapshot(self.content_type):
                fetched += len(page)
                for raw in page:
                    item, digest = str(raw.get("id")), content_hash(raw)
                    latest = previous.get(item)
                    vendor_id = latest[1] if latest and latest[0] == digest else f"{item}:{digest}:{stamp}"
                    writer.add("syslog", envelope.wrap(origin, raw, vendor_id=vendor_id, event_time=envelope.window_end))
        return {"fetched": fetched, "api_requests": hook.get_conn().attempts_made}

    def _previous_versions(self, msg_class: str, envelope: EnvelopeContext) -> dict[str, tuple[str, str]]:
        """item id -> (content hash, vendor id) of its latest version loaded before this window.

        "Before this window" (not "latest overall") keeps a re-run or an out-of-order backfill of a
        day producing exactly the ids its first run produced.
        """
        from seccollect.warehouse import open_warehouse

        with open_warehouse(self.warehouse_conn_id) as warehouse:
            warehouse.ensure_schema()
            rows = warehouse.query(
                "SELECT vendor_id, event_time FROM syslog WHERE tenant = ? AND msg_class = ? AND event_time < ? "
                "ORDER BY event_time",
                (envelope.tenant, msg_class, envelope.window_end),
            )
        latest: dict[str, tuple[str, str]] = {}
        for vendor_id, _ in rows:
            item, digest, _stamp = vendor_id.rsplit(":", 2)
            latest[item] = (digest, vendor_id)
        return latest


class NetskopeAlertMappingOperator(BaseOperator):
    """Derive the Alerts-index key of every Breach, Connection and Malsite alert a collect task staged.

    Runs between collect and load as its own task (so a mapping failure never re-calls the API); its
    output, staged ``alert_sources`` links and each key's latest raw alert (``alert_latest``), is loaded
    with the raw alerts in one transaction.

    :param collect_task_id: the task that staged the raw alerts.
    """

    ui_color = "#f0e8fd"

    def __init__(self, *, collect_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.collect_task_id = collect_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        import duckdb
        from airflow.sdk.exceptions import AirflowFailException

        from seccollect.operators.collect import parse_window_bound
        from seccollect.staging.store import StagedBatch, StagingWriter, window_folder
        from seccollect.vendors.netskope.alert_mapping import FieldsOutOfStep, map_window

        collected = context["ti"].xcom_pull(task_ids=self.collect_task_id)
        window = collected["window"]
        start, end = parse_window_bound(window[0]), parse_window_bound(window[1])
        writer = StagingWriter(window_folder(self.dag_id, start, end, self.task_id))
        batches = [StagedBatch.from_xcom(b) for b in collected["batches"]]
        con = duckdb.connect()
        try:
            mapped = map_window(batches, writer, con)
        except FieldsOutOfStep as exc:
            raise AirflowFailException(str(exc)) from exc
        finally:
            con.close()
        staged = writer.close()
        self.log.info("Mapped %d raw alerts to Alerts keys", mapped)
        return {"window": window, "batches": [b.to_xcom() for b in staged], "alerts_mapped": mapped}
