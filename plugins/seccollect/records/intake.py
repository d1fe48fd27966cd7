"""RecordIntake: raw vendor records in, staged rows out; a record that cannot be handled is quarantined.

Every collect pattern feeds its records through one intake, so the rule "no record blocks its window"
is written once: a record that is not a JSON object, whose vendor fields cannot be read (a missing
required field, a time that does not parse or is out of range), or that holds something a warehouse
cannot store (bytes that are not UTF-8, a lone surrogate, an integer beyond 64 bits) becomes a
quarantine entry with its reason and its bytes, and the rest of the window goes on.

A record is staged all or nothing: its rows in every index are built and checked first, then added.
Many records at once (:meth:`RecordIntake.add_many`, a page) are checked one by one exactly the same
way and staged column by column (Arrow), which costs a fraction of one dict per row and table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from seccollect.records.catalog import table as table_of
from seccollect.records.envelope import canonical_json, identity_of, make_record_ids
from seccollect.records.indices import ENVELOPE
from seccollect.records.quarantine import QuarantineEntry, RecordError, record_bytes
from seccollect.records.values import check_bigint, check_text, check_timestamp

if TYPE_CHECKING:
    from seccollect.records.envelope import EnvelopeContext, MsgOrigin
    from seccollect.staging.store import StagingWriter

#: The staged table quarantine entries go to (loaded into ``quarantine``).
QUARANTINE_TABLE = "quarantine_entries"
#: Records :meth:`RecordIntake.add_many` holds as columns before handing them to the writer.
MANY_BATCH = 5_000
#: A record's typed columns did not name this column (null, or the envelope's value).
_ABSENT: Any = object()
_ENVELOPE_NAMES = frozenset(column.name for column in ENVELOPE)


@dataclass(frozen=True)
class RecordFields:
    """What a vendor reads from one raw record.

    :param vendor_id: the vendor's id of the record (its identity; ``None``: the content's hash).
    :param event_time: when the event happened, aware UTC (``None`` when the record has none).
    :param typed: per index table, the typed columns of the record's row there. The intake's base table
        (Syslog for most vendors) always gets a row; every other table named here gets one too.
    :param version: for one version of an item (a snapshot's), what tells it from the item's other
        versions; it becomes part of the record id.
    """

    vendor_id: str | None
    event_time: datetime | None
    typed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    version: str | None = None


Extract = Callable[[dict[str, Any]], RecordFields]
#: A record :meth:`RecordIntake.add_many` checked: its identity, vendor id, event time, JSON text and
#: typed columns.
_Checked = tuple[str, "str | None", "datetime | None", str, Mapping[str, Mapping[str, Any]]]


class TextedRecords(list):
    """A page of raw records that carries each record's canonical JSON text, for a vendor that makes
    them more cheaply than the intake would (e.g. with a faster encoder that gives the same text for the
    only value types its records can hold). ``texts[i]`` must be exactly ``canonical_json(self[i])``,
    or ``None`` (the intake makes it)."""

    def __init__(self, records: Iterable[Any] = (), texts: Iterable[str | None] = ()) -> None:
        super().__init__(records)
        self.texts: list[str | None] = list(texts)
        if len(self.texts) != len(self):
            raise ValueError(f"{len(self)} records but {len(self.texts)} texts")


@dataclass(frozen=True)
class StagedRecord:
    """A record the intake staged: its record id and what the vendor read from it."""

    record_id: str
    fields: RecordFields


def quarantine(writer: StagingWriter, entry: QuarantineEntry) -> None:
    """Stage a quarantine entry beside the window's records."""
    writer.add(QUARANTINE_TABLE, entry.to_row())


class RecordIntake:
    """Stage raw records of one content type, quarantining the ones that cannot be handled.

    :param writer: the collect task's staging writer.
    :param envelope: what every record of the task shares.
    :param origin: the records' ``msg_class`` and ``msg_origin``.
    :param base_table: the index every record gets a row in (its raw record included).
    :param log: called with a warning for each quarantined record (e.g. the operator's logger).
    """

    def __init__(
        self,
        writer: StagingWriter,
        envelope: EnvelopeContext,
        origin: MsgOrigin,
        *,
        base_table: str = "syslog",
        log: Callable[..., Any] | None = None,
    ) -> None:
        self.writer = writer
        self.envelope = envelope
        self.origin = origin
        self.base_table = base_table
        self._log = log
        self.received = 0
        self.staged = 0
        self.quarantined = 0
        self._kinds: dict[str, dict[str, str]] = {}

    def add(self, raw: Any, extract: Extract, *, where: str = "") -> StagedRecord | None:
        """Stage ``raw`` (and return what was staged), or quarantine it with the reason (``None``).

        :param raw: the record as decoded from the vendor's response.
        :param extract: the vendor's reading of a record (:class:`RecordFields`).
        :param where: where the record was (``page 3, record 17``), added to a quarantine reason.
        """
        self.received += 1
        try:
            if not isinstance(raw, dict):
                raise RecordError(f"the record is {_kind(raw)}, not a JSON object")
            raw_text = canonical_json(raw)
            check_text(raw_text, "the record")
            fields = extract(raw)
            rows = self._rows(raw, raw_text, fields)
        except Exception as exc:  # noqa: BLE001 - whatever one record does, the window goes on
            reason = str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}"
            self.reject(raw, reason + (f" ({where})" if where else ""))
            return None
        for table, row in rows:
            self.writer.add(table, row)
        self.staged += 1
        return StagedRecord(rows[0][1]["record_id"], fields)

    def add_many(self, raws: Iterable[Any], extract: Extract, *, where: str = "",
                 texts: Sequence[str] | None = None) -> int:
        """Stage many records (e.g. a page) exactly as :meth:`add` one by one would - the same rows, in
        the same order and parts, the same quarantine entries - but built column by column.

        :param raws: the records as decoded from the vendor's response.
        :param extract: the vendor's reading of a record (:class:`RecordFields`).
        :param where: where the records were (``page 3``); a quarantine reason ends with it and the
            record's position (``(page 3, record 17)``).
        :param texts: each record's :func:`~seccollect.records.envelope.canonical_json` text, when the
            vendor made them already (see :class:`TextedRecords`; default: the texts ``raws`` carries
            when it is one); ``None`` for a record whose text the intake makes.
        :returns: the number of records staged.
        """
        if texts is None and isinstance(raws, TextedRecords):
            texts = raws.texts
        base = self.base_table
        known = {base, *_index_tables()}
        checked: list[_Checked] = []
        count = 0
        for position, raw in enumerate(raws, 1):
            self.received += 1
            try:
                if not isinstance(raw, dict):
                    raise RecordError(f"the record is {_kind(raw)}, not a JSON object")
                raw_text = None if texts is None else texts[position - 1]
                if raw_text is None:
                    raw_text = canonical_json(raw)
                check_text(raw_text, "the record")
                fields = extract(raw)
                vendor_id = fields.vendor_id
                if vendor_id is not None:
                    vendor_id = check_text(str(vendor_id), "the record's id")
                check_timestamp(fields.event_time, "event time")
                typed = fields.typed
                if typed:  # checked in add()'s order: unknown tables, then the base table's columns first
                    if not known.issuperset(typed):
                        raise ValueError(f"typed columns for unknown tables {sorted(set(typed) - known)}")
                    columns = typed.get(base)
                    if columns:
                        self._check_columns(base, columns)
                    for table, columns in typed.items():
                        if columns and table != base:
                            self._check_columns(table, columns)
            except Exception as exc:  # noqa: BLE001 - whatever one record does, the window goes on
                reason = str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}"
                place = f"{where}, record {position}" if where else f"record {position}"
                self.reject(raw, f"{reason} ({place})")
                continue
            checked.append((identity_of(vendor_id, raw_text, fields.version), vendor_id, fields.event_time, raw_text,
                            typed))
            if len(checked) >= MANY_BATCH:
                self._stage_columns(checked)
                count += len(checked)
                checked = []
        if checked:
            self._stage_columns(checked)
            count += len(checked)
        self.staged += count
        return count

    def _check_columns(self, table: str, typed: Mapping[str, Any]) -> None:
        """:func:`_check_typed`, with the table's column types looked up once per intake."""
        kinds = self._kinds.get(table)
        if kinds is None:
            kinds = self._kinds[table] = {column.name: column.type for column in table_of(table).columns}
        for name, value in typed.items():
            kind = kinds.get(name)
            if kind is None:
                raise KeyError(f"{table} has no column {name!r}")  # what add()'s lookup raises
            if value is None:
                continue
            if kind == "text" or kind == "json":
                if not isinstance(value, str):
                    raise RecordError(f"{name} {value!r} is not text")
                if not value.isascii():
                    check_text(value, name)
            elif kind == "bigint":
                check_bigint(value, name)
            elif kind == "timestamp":
                check_timestamp(value, name)

    def _stage_columns(self, checked: list[_Checked]) -> None:
        """Hand checked records to the writer as one Arrow table per table, the base table first and the
        others in the order records first name them: each table gets the rows :meth:`add` gives it, in
        the same order, so its parts come out the same."""
        import pyarrow as pa

        from seccollect.staging.store import arrow_schema

        base = self.base_table
        record_ids = make_record_ids(self.envelope.tenant, self.origin.msg_class, [r[0] for r in checked])
        tables: dict[str, None] = {base: None}
        for record in checked:
            if record[4]:
                tables.update(dict.fromkeys(record[4]))
        # The envelope columns are converted to Arrow once, whatever number of tables share them.
        schema = arrow_schema(base)
        envelope_arrays = {
            name: pa.array(values, schema.field(name).type) for name, values in (
                ("record_id", record_ids), ("vendor_id", [r[1] for r in checked]),
                ("event_time", [r[2] for r in checked]), ("raw", [r[3] for r in checked]))}
        shared: dict[str, Any] | None = None
        for table in tables:
            rows, arrays = checked, envelope_arrays
            if table != base:
                picked = [i for i, record in enumerate(checked) if table in record[4]]
                if len(picked) != len(checked):
                    rows = [checked[i] for i in picked]
                    positions = pa.array(picked, pa.int64())
                    arrays = {name: values.take(positions) for name, values in envelope_arrays.items()}
            typed_of = [record[4].get(table) if record[4] else None for record in rows]
            names: dict[str, None] = {}
            for typed in typed_of:
                if typed:
                    names.update(dict.fromkeys(typed))
            envelope: dict[str, Any] = dict(arrays)
            columns: dict[str, list[Any]] = {}
            for name in names:
                if name not in _ENVELOPE_NAMES:  # a record that does not name it has null there
                    columns[name] = [typed.get(name) if typed else None for typed in typed_of]
                    continue
                # A typed value naming an envelope column replaces it, as the row's update in add() does.
                values = [typed.get(name, _ABSENT) if typed else _ABSENT for typed in typed_of]
                given = envelope.get(name)
                if given is None:  # tenant, window_start ...: one value for every record
                    shared = shared if shared is not None else self.envelope.shared_columns(self.origin)
                    given = [shared[name]] * len(rows)
                elif isinstance(given, pa.Array):
                    given = given.to_pylist()
                envelope[name] = [e if v is _ABSENT else v for v, e in zip(values, given, strict=True)]
            vendor_ids, event_times = envelope.pop("vendor_id"), envelope.pop("event_time")
            raw_texts, ids = envelope.pop("raw"), envelope.pop("record_id")
            columns.update(envelope)  # shared envelope columns some record's typed values replaced
            self.writer.add_arrow(table, self.envelope.arrow_rows(
                table, self.origin, vendor_ids=vendor_ids, event_times=event_times, raw_texts=raw_texts,
                typed=columns, record_ids=ids))

    def reject(self, raw: Any, reason: str, *, vendor_id: str | None = None) -> None:
        """Quarantine ``raw`` with ``reason`` (also for records a vendor rejects itself)."""
        data = record_bytes(raw)
        ref_id = vendor_id or _vendor_id_of(raw) or "sha256:" + hashlib.sha256(data).hexdigest()[:32]
        entry = QuarantineEntry.of_bytes(f"{self.envelope.content_type}:{ref_id}", reason, data)
        quarantine(self.writer, entry)
        self.quarantined += 1
        if self._log is not None:
            self._log("Quarantined a %s record: %s", self.envelope.content_type, reason)

    def _rows(self, raw: dict[str, Any], raw_text: str, fields: RecordFields) -> list[tuple[str, dict[str, Any]]]:
        vendor_id = fields.vendor_id
        if vendor_id is not None:
            vendor_id = check_text(str(vendor_id), "the record's id")
        check_timestamp(fields.event_time, "event time")
        unknown = set(fields.typed) - {self.base_table} - set(_index_tables())
        if unknown:
            raise ValueError(f"typed columns for unknown tables {sorted(unknown)}")
        tables = [self.base_table, *(t for t in fields.typed if t != self.base_table)]
        rows = []
        for table in tables:
            typed = fields.typed.get(table)
            row = self.envelope.wrap(
                self.origin, raw, vendor_id=vendor_id, event_time=fields.event_time, typed=typed, raw_text=raw_text,
                version=fields.version,
            )
            if typed:
                _check_typed(table, typed)
            rows.append((table, row))
        return rows


def _check_typed(table: str, typed: Mapping[str, Any]) -> None:
    spec = table_of(table)
    for name, value in typed.items():
        kind = spec.column(name).type
        if value is None:
            continue
        if kind in ("text", "json"):
            if not isinstance(value, str):
                raise RecordError(f"{name} {value!r} is not text")
            check_text(value, name)
        elif kind == "bigint":
            check_bigint(value, name)
        elif kind == "timestamp":
            check_timestamp(value, name)


def _index_tables() -> list[str]:
    from seccollect.records.indices import INDICES

    return list(INDICES)


def _vendor_id_of(raw: Any) -> str | None:
    """A short id for a quarantine reference, where the record has an obvious one."""
    if isinstance(raw, dict):
        for key in ("_id", "id", "eventID", "log_item_id"):
            value = raw.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).isascii():
                text = str(value)
                if 0 < len(text) <= 128:
                    return text
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "a list"}.get(
        type(value), type(value).__name__
    )
