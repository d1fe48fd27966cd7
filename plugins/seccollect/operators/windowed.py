"""WindowedCollectOperator: the shared way to read a time-filtered API, page by page, for one window.

A vendor supplies three things: the vendor query range for a window (:meth:`query_range`; by default
the window itself), the pages of raw records in that range (:meth:`pages`, through its hook, ending
with the vendor's own paging rules), and how to read one record (:meth:`extract`). The pattern does the
rest the same way for every vendor: each record goes through a
:class:`~seccollect.records.intake.RecordIntake` (a record that cannot be handled is quarantined, the
rest of the window loads), and the query range actually sent is handed to the load, which keeps it
with the window in the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from seccollect.operators.collect import BaseCollectOperator, Collected

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import EnvelopeContext, MsgOrigin
    from seccollect.records.intake import RecordFields
    from seccollect.staging.store import StagingWriter


class WindowedCollectOperator(BaseCollectOperator):
    """Collect a window of a time-filtered API (see the module docstring).

    :param kwargs: :class:`~seccollect.operators.collect.BaseCollectOperator` arguments.
    """

    pattern: ClassVar[str] = "windowed"
    #: The index every record gets a row in (its raw record included).
    base_table: ClassVar[str] = "syslog"

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

    def collect(self, writer: StagingWriter, envelope: EnvelopeContext, context: Context) -> Collected:
        from seccollect.records.intake import RecordIntake

        query_start, query_end = self.query_range(envelope.window_start, envelope.window_end)
        self.log.info("Querying %s %s", self.content_type, self.describe_query(query_start, query_end))
        self.prepare(writer, context)
        intake = RecordIntake(writer, envelope, self.origin(), base_table=self.base_table, log=self.log.warning)
        for number, page in enumerate(self.pages(query_start, query_end, context), 1):
            for position, raw in enumerate(page, 1):
                intake.add(raw, self.extract, where=f"page {number}, record {position}")
        return Collected(
            figures={
                "fetched": intake.received,
                "staged": intake.staged,
                "quarantined": intake.quarantined,
                **self.request_figures(),
            },
            cursor={"query_start": query_start.isoformat(), "query_end": query_end.isoformat()},
        )
