"""Netskope operators: collect event-like content for a window, take the daily steering snapshots, and
map alerts before they load."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from seccollect.operators.snapshot import SnapshotCollectOperator
from seccollect.operators.windowed import WindowedCollectOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import MsgOrigin
    from seccollect.records.intake import RecordFields
    from seccollect.staging.handoff import StagedWindow
    from seccollect.staging.store import StagingWriter
    from seccollect.vendors.netskope.hook import NetskopeHook

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


def _origin(content_type: str) -> MsgOrigin:
    from seccollect.records.envelope import MsgOrigin

    return MsgOrigin(MSG_CLASS[content_type], "netskope", "netskope", "web_security")


class _NetskopeMixin:
    """The connection settings both Netskope collect operators hold, and the hook built from them."""

    netskope_conn_id: str
    netskope_tenant: str | None
    api_version: str
    verify_ssl: bool
    proxy: str | None
    page_size: int
    _hook: NetskopeHook | None = None

    @property
    def hook(self) -> NetskopeHook:
        from seccollect.vendors.netskope.hook import NetskopeHook

        if self._hook is None:
            self._hook = NetskopeHook(
                self.netskope_conn_id,
                tenant=self.netskope_tenant,
                api_version=self.api_version,
                verify_ssl=self.verify_ssl,
                proxy=self.proxy,
                page_size=self.page_size,
            )
        return self._hook

    def request_figures(self) -> dict[str, int]:
        return {"api_requests": self.hook.get_conn().attempts_made} if self._hook is not None else {}


class NetskopeCollectOperator(_NetskopeMixin, WindowedCollectOperator):
    """Collect one event-like Netskope content type (alert, event, page) for the run's window (→ Syslog).

    Records are selected on *insertion* time over the window shifted back by ``settle_lag_seconds``:
    Netskope makes records queryable late, and a record's insertion time never changes, so consecutive
    shifted windows still tile time exactly and each record is collected once, by the first run whose
    window has settled past its insertion. Beside every raw alert the task stages the fields the alert
    mapping reads (``alert_fields``), so the mapping never parses raw alerts again. A record that cannot
    be handled (not an object, a ``timestamp`` that is not a Unix time, bytes that are not UTF-8 …) is
    quarantined with its reason; the rest of the window loads.

    :param netskope_conn_id: Airflow connection with the API key.
    :param netskope_tenant: tenant name (host ``<tenant>.goskope.com``).
    :param api_version: ``v1`` or ``v2``.
    :param settle_lag_seconds: how far the queried insertion window trails the data interval.
    :param verify_ssl: verify TLS certificates.
    :param proxy: optional proxy URL (without credentials).
    :param page_size: records per API request (at most 10,000 on v2, 9,999 on v1).
    :param kwargs: :class:`~seccollect.operators.collect.BaseCollectOperator` arguments.
    """

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.netskope_conn_id = netskope_conn_id
        self.netskope_tenant = netskope_tenant
        self.api_version = api_version
        self.settle_lag_seconds = settle_lag_seconds
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self.page_size = page_size

    def origin(self) -> MsgOrigin:
        return _origin(self.content_type)

    def query_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        lag = timedelta(seconds=self.settle_lag_seconds)
        return start - lag, end - lag

    def describe_query(self, query_start: datetime, query_end: datetime) -> str:
        return f"inserted in ({query_start}, {query_end}]"

    def vendor_clock(self) -> datetime | None:
        # Insertion times are on Netskope's clock, not ours: its Date header says how far it has got.
        return self.hook.get_conn().server_time

    def prepare(self, writer: StagingWriter, context: Context) -> None:
        if self.content_type == "alert":
            from seccollect.vendors.netskope.alert_mapping import alert_fields

            # The mapping task's input, extracted from each Syslog part as it is written.
            writer.derive("syslog", "alert_fields", alert_fields)

    def pages(self, query_start: datetime, query_end: datetime, context: Context) -> Iterator[Sequence[Any]]:
        return self.hook.iter_window(self.content_type, query_start, query_end)

    def extract(self, raw: dict[str, Any]) -> RecordFields:
        from seccollect.records.intake import RecordFields
        from seccollect.records.values import epoch_seconds

        ts = raw.get("timestamp")
        return RecordFields(
            vendor_id=str(raw["_id"]) if raw.get("_id") else None,
            event_time=epoch_seconds(ts, "timestamp") if ts is not None else None,
        )


class NetskopeSteeringOperator(_NetskopeMixin, SnapshotCollectOperator):
    """Take the daily snapshot of a Netskope steering list (pops, tunnels) (→ Syslog).

    Taken once a day, in the run whose window holds UTC midnight. The whole list is pulled and the load
    compares it with the last pull: only new and changed entries are loaded (each version stamped with
    the window that noticed it, so the latest row per entry is its current state), and entries that
    disappeared are recorded as removed in ``snapshot_changes``.

    :param netskope_conn_id: Airflow connection with the API key.
    :param netskope_tenant: tenant name (host ``<tenant>.goskope.com``).
    :param api_version: must be ``v2`` (v1 serves no steering lists).
    :param verify_ssl: verify TLS certificates.
    :param proxy: optional proxy URL (without credentials).
    :param page_size: entries per API request.
    :param settle_lag_seconds: accepted for symmetry with the event operator; snapshots ignore it.
    :param kwargs: :class:`~seccollect.operators.collect.BaseCollectOperator` arguments.
    """

    def __init__(
        self,
        *,
        netskope_conn_id: str,
        netskope_tenant: str | None = None,
        api_version: str = "v2",
        verify_ssl: bool = True,
        proxy: str | None = None,
        page_size: int = 10_000,
        settle_lag_seconds: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.netskope_conn_id = netskope_conn_id
        self.netskope_tenant = netskope_tenant
        self.api_version = api_version
        self.verify_ssl = verify_ssl
        self.proxy = proxy
        self.page_size = page_size
        self.settle_lag_seconds = settle_lag_seconds

    def should_collect(self, start: datetime, end: datetime) -> bool:
        return contains_midnight(start, end)

    def origin(self) -> MsgOrigin:
        return _origin(self.content_type)

    def items(self, context: Context) -> Iterator[Sequence[Any]]:
        return self.hook.iter_snapshot(self.content_type)

    def identity(self, raw: dict[str, Any]) -> str:
        item = raw.get("id")
        if item is None or item == "":
            raise ValueError("the entry has no 'id'")
        return str(item)

    def extract(self, raw: dict[str, Any]) -> RecordFields:
        from seccollect.records.intake import RecordFields

        # Steering entries carry no event time: the pattern dates them as of the window that took them.
        return RecordFields(vendor_id=None, event_time=None)


class NetskopeAlertMappingOperator(BaseOperator):
    """Derive the Alerts-index key of every Breach, Connection and Malsite alert a collect task staged.

    Runs between collect and load as its own task (so a mapping failure never re-calls the API); its
    output, staged ``alert_sources`` links and each key's latest raw alert (``alert_latest``), is loaded
    with the raw alerts in one transaction.

    :param staged: the alert collect task's output (templated: pass ``collect_alert.output``).
    """

    template_fields: Sequence[str] = ("staged",)
    ui_color = "#f0e8fd"

    def __init__(self, *, staged: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.staged = staged

    def execute(self, context: Context) -> StagedWindow:
        import duckdb
        from airflow.sdk.exceptions import AirflowFailException

        from seccollect.staging.handoff import StagedWindow, flatten
        from seccollect.staging.store import StagingWriter, window_folder
        from seccollect.vendors.netskope.alert_mapping import FieldsOutOfStep, map_window

        (collected,) = flatten(self.staged)
        writer = StagingWriter(window_folder(self.dag_id, collected.window_start, collected.window_end, self.task_id))
        con = duckdb.connect()
        try:
            mapped = map_window(list(collected.batches), writer, con)
        except FieldsOutOfStep as exc:
            raise AirflowFailException(str(exc)) from exc
        finally:
            con.close()
        staged = writer.close()
        self.log.info("Mapped %d raw alerts to Alerts keys", mapped)
        return StagedWindow(
            content_type=collected.content_type,
            pattern="derived",
            window_start=collected.window_start,
            window_end=collected.window_end,
            batches=tuple(staged),
            figures={"alerts_mapped": mapped},
        )
