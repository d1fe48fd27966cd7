"""WindowedCollectOperator: the shared way to read a time-filtered API, page by page, for one window.

A vendor supplies three things: the vendor query range for a window (:meth:`query_range`; by default
the window itself), the pages of raw records in that range (:meth:`pages`, through its hook, ending
with the vendor's own paging rules), and how to read one record (:meth:`extract`). The pattern does the
rest the same way for every vendor:

* **Ranges tile the vendor's time axis.** The range actually queried is kept with the window in the
  ledger (``collection_ledger.cursor``). A window starts its range where its predecessor's stored range
  ended and ends it where its successor's stored range starts, when those windows were collected; only
  an end without a collected neighbour is computed from the vendor's rule (e.g. a settle lag). So a lag
  that changes between runs, or windows collected in any order, leave no gap and no overlap, and a
  replayed window re-reads exactly its own stored range.
* **The vendor's clock decides.** Before querying, the vendor's own time (e.g. its ``Date`` header) must
  have reached the end of the range; if not, the task defers (freeing its worker slot) and tries again,
  instead of succeeding with records the vendor has not made queryable yet.
* Each record goes through a :class:`~seccollect.records.intake.RecordIntake`: a record that cannot be
  handled is quarantined, the rest of the window loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from seccollect.operators.collect import BaseCollectOperator, Collected, VendorClockBehind

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import EnvelopeContext, MsgOrigin
    from seccollect.records.intake import RecordFields
    from seccollect.staging.store import StagingWriter


class WindowedCollectOperator(BaseCollectOperator):
    """Collect a window of a time-filtered API (see the module docstring).

    :param warehouse_conn_id: the warehouse whose ledger holds the neighbouring windows' query ranges.
    :param kwargs: :class:`~seccollect.operators.collect.BaseCollectOperator` arguments.
    """

    pattern: ClassVar[str] = "windowed"
    #: The index every record gets a row in (its raw record included).
    base_table: ClassVar[str] = "syslog"

    def __init__(self, *, warehouse_conn_id: str | None = "seccollect_warehouse", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.warehouse_conn_id = warehouse_conn_id

    def origin(self) -> MsgOrigin:
        """``msg_class`` and ``msg_origin`` of this task's records."""
        raise NotImplementedError

    def query_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """The vendor query range for the window ``[start, end)``."""
        return start, end

    def describe_query(self, query_start: datetime, query_end: datetime) -> str:
        """How the log names the query range (e.g. which time the vendor filters on)."""
        return f"in [{query_start}, {query_end})"

    def prepare(self, writer: StagingWriter, context: Context) -> None:
        """Set-up before the first page (e.g. derived tables staged beside the records)."""

    def pages(self, query_start: datetime, query_end: datetime, context: Context) -> Iterator[Sequence[Any]]:
        """The pages of raw records the vendor serves for the query range."""
        raise NotImplementedError

    def extract(self, raw: dict[str, Any]) -> RecordFields:
        """Read one raw record (raise for a record that cannot be handled: it is quarantined)."""
        raise NotImplementedError

    def request_figures(self) -> dict[str, int]:
        """Counts of the vendor requests made (for the log and XCom)."""
        return {}

    def vendor_clock(self) -> datetime | None:
        """The vendor's time as of its last response (e.g. its ``Date`` header), or ``None`` when it tells
        none. Looked at after the first page, so checking it costs no request of its own."""
        return None

    def _check_vendor_clock(self, query_end: datetime) -> None:
        vendor_now = self.vendor_clock()
        if vendor_now is not None and vendor_now < query_end:
            # What was staged so far is dropped: the next attempt's writer empties the folder first.
            raise VendorClockBehind(query_end, vendor_now)

    def tiled_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime, str]:
        """The range to query for ``[start, end)``, stitched to the neighbours' stored ranges (see the
        module docstring), and where it came from (for the log)."""
        query_start, query_end = self.query_range(start, end)
        if self.warehouse_conn_id is None:
            return query_start, query_end, "computed"
        own, before, after = _stored_neighbours(self.warehouse_conn_id, self.dag_id, self.content_type, start, end)
        if own is not None:
            return own[0], own[1], "stored with this window (a replay reads its own range)"
        origin = []
        if before is not None:
            query_start = before
            origin.append("starts where the previous window's range ended")
        if after is not None:
            query_end = after
            origin.append("ends where the next window's range starts")
        # A lag that grew since the previous window can leave nothing to query yet: an empty range.
        return query_start, max(query_start, query_end), "; ".join(origin) or "computed"

    def collect(self, writer: StagingWriter, envelope: EnvelopeContext, context: Context) -> Collected:
        from seccollect.records.intake import RecordIntake

        query_start, query_end, origin = self.tiled_range(envelope.window_start, envelope.window_end)
        self.log.info("Querying %s %s (%s)", self.content_type, self.describe_query(query_start, query_end), origin)
        self.prepare(writer, context)
        intake = RecordIntake(writer, envelope, self.origin(), base_table=self.base_table, log=self.log.warning)
        clock_checked = query_end <= query_start  # an empty range needs no vendor time
        for number, page in enumerate(self.pages(query_start, query_end, context), 1):
            if not clock_checked:
                self._check_vendor_clock(query_end)
                clock_checked = True
            # The whole page at once: the same rows and quarantine as record by record, built as columns.
            intake.add_many(page, self.extract, where=f"page {number}")
        if not clock_checked:
            self._check_vendor_clock(query_end)
        return Collected(
            figures={
                "fetched": intake.received,
                "staged": intake.staged,
                "quarantined": intake.quarantined,
                **self.request_figures(),
            },
            cursor={"query_start": query_start.isoformat(), "query_end": query_end.isoformat()},
        )


def _stored_neighbours(
    warehouse_conn_id: str, dag_id: str, content_type: str, start: datetime, end: datetime
) -> tuple[tuple[datetime, datetime] | None, datetime | None, datetime | None]:
    """From the ledger: this window's stored range, the previous window's stored end and the next
    window's stored start (each ``None`` when that window was not collected)."""
    from seccollect.operators.collect import parse_window_bound
    from seccollect.warehouse import open_warehouse

    with open_warehouse(warehouse_conn_id) as warehouse:
        warehouse.ensure_schema()
        rows = warehouse.query(
            "SELECT window_start, window_end, cursor FROM collection_ledger WHERE dag_id = ? AND content_type = ? "
            "AND (window_end = ? OR window_start = ? OR window_start = ?)",
            (dag_id, content_type, start, end, start),
        )
    own = before = after = None
    for window_start, window_end, cursor in rows:
        stored = json.loads(cursor) if isinstance(cursor, str) else cursor
        if not isinstance(stored, dict) or "query_start" not in stored or "query_end" not in stored:
            continue
        q_start, q_end = parse_window_bound(stored["query_start"]), parse_window_bound(stored["query_end"])
        w_start, w_end = parse_window_bound(window_start), parse_window_bound(window_end)
        if (w_start, w_end) == (start, end):
            own = (q_start, q_end)
        elif w_end == start:
            before = q_end
        elif w_start == end:
            after = q_start
    return own, before, after
