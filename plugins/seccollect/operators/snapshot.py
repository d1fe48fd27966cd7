"""SnapshotCollectOperator: the shared way to read an API without time filters - a full pull whose
changes since the last successful pull are what gets loaded.

A vendor supplies the pages of the full data set (:meth:`items`), each record's identity
(:meth:`identity`: its id, or a documented composite key) and how to read a record (:meth:`extract`).
The pattern stages every record with a version id made of its identity, its content hash and the
window, plus one ``snapshot_items`` row (identity, content hash, record id) per record. The load, in its
transaction, compares these with the ``snapshot_state`` of the instance's content type: new and changed
items are loaded, items missing from the pull are recorded as removed (a quarantined record whose
identity is known is staged as *held*: it exists, so it is neither removed nor changed), and the state
moves on - never
from a collect task, so a pull that fails half-way changes nothing, and re-running a window adds
nothing. Memory stays bounded whatever the data set's size: items go to Parquet parts as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from seccollect.operators.collect import BaseCollectOperator, Collected

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import EnvelopeContext, MsgOrigin
    from seccollect.records.intake import RecordFields
    from seccollect.staging.store import StagingWriter


class SnapshotCollectOperator(BaseCollectOperator):
    """Pull a whole data set and stage it for change detection (see the module docstring).

    :param kwargs: :class:`~seccollect.operators.collect.BaseCollectOperator` arguments.
    """

    pattern: ClassVar[str] = "snapshot"
    #: The index every record gets a row in (its raw record included).
    base_table: ClassVar[str] = "syslog"

    def origin(self) -> MsgOrigin:
        raise NotImplementedError

    def items(self, context: Context) -> Iterator[Sequence[Any]]:
        """The pages of the full data set."""
        raise NotImplementedError

    def identity(self, raw: dict[str, Any]) -> str:
        """What identifies one item across pulls (raise when a record has none: it is quarantined)."""
        raise NotImplementedError

    def extract(self, raw: dict[str, Any]) -> RecordFields:
        """Read one raw record; its ``vendor_id`` is replaced by :meth:`identity`."""
        raise NotImplementedError

    def request_figures(self) -> dict[str, int]:
        return {}

    def _identity_of_quarantined(self, raw: Any) -> str | None:
        try:
            identity = self.identity(raw)
        except Exception:  # noqa: BLE001 - no identity: nothing to hold, the quarantine entry says why
            return None
        return identity if isinstance(identity, str) and identity else None

    def collect(self, writer: StagingWriter, envelope: EnvelopeContext, context: Context) -> Collected:
        from seccollect.records.envelope import content_hash
        from seccollect.records.intake import RecordIntake

        stamp = envelope.window_end.strftime("%Y%m%dT%H%M%SZ")

        def versioned(raw: dict[str, Any]) -> RecordFields:
            identity = self.identity(raw)
            if not isinstance(identity, str) or not identity:
                raise ValueError(f"the record has no identity ({identity!r})")
            fields = self.extract(raw)
            return replace(
                fields,
                vendor_id=identity,
                version=f"{content_hash(raw)}:{stamp}",
                # An item without a time of its own is as of the window that pulled it.
                event_time=fields.event_time or envelope.window_end,
            )

        intake = RecordIntake(writer, envelope, self.origin(), base_table=self.base_table, log=self.log.warning)
        for number, page in enumerate(self.items(context), 1):
            for position, raw in enumerate(page, 1):
                staged = intake.add(raw, versioned, where=f"page {number}, record {position}")
                if staged is not None:
                    writer.add("snapshot_items", {
                        "identity": staged.fields.vendor_id,
                        "content_hash": staged.fields.version.partition(":")[0],  # type: ignore[union-attr]
                        "record_id": staged.record_id,
                        "held": False,
                    })
                    continue
                # Quarantined: if it still has an identity, the item exists - it must not look removed.
                held = self._identity_of_quarantined(raw)
                if held is not None:
                    writer.add("snapshot_items", {"identity": held, "content_hash": "", "record_id": "0" * 32,
                                                  "held": True})
        self.log.info("Pulled %d item(s) of %s; the load compares them with the last pull", intake.staged, self.content_type)
        return Collected(
            figures={
                "fetched": intake.received,
                "staged": intake.staged,
                "quarantined": intake.quarantined,
                **self.request_figures(),
            },
            cursor={"pull": "full", "pulled_at": envelope.ingest_time.isoformat()},
        )
