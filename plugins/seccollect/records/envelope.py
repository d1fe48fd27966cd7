"""The record envelope every collected record is wrapped in, and its deterministic ``record_id``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class MsgOrigin:
    """``msg_class`` and ``msg_origin`` of CONNECTORS.md for one kind of record."""

    msg_class: str
    source: str
    vendor: str
    category: str


def canonical_json(raw: Any) -> str:
    """Stable JSON text of a record: sorted keys, no spaces. Used for hashing and storage alike.

    NaN and Infinity raise ``ValueError``: they are not JSON, and PostgreSQL's JSON type refuses them.
    """
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False)


def content_hash(raw: Any) -> str:
    """Identity of a record that has no vendor id: a hash of its canonical content."""
    return hashlib.blake2b(canonical_json(raw).encode(), digest_size=16).hexdigest()


def identity_of(vendor_id: str | None, raw_text: str, version: str | None = None) -> str:
    """What a record's id is made from: its vendor id (else the hash of its canonical JSON text), and its
    version for a record that is one version of an item (see :meth:`EnvelopeContext.wrap`)."""
    identity = vendor_id if vendor_id else hashlib.blake2b(raw_text.encode(), digest_size=16).hexdigest()
    return identity if version is None else f"{identity}\x1f{version}"


def make_record_id(tenant: str, msg_class: str, vendor_id: str) -> str:
    """Deterministic id: the same vendor record collected twice (any window, any run) gets the same id.

    The instance name is left out on purpose: renaming an instance, or running two instances on the
    same tenant, must not load a record twice.
    """
    key = f"{tenant}\x1f{msg_class}\x1f{vendor_id}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def make_record_ids(tenant: str, msg_class: str, vendor_ids: Sequence[str]) -> list[str]:
    """:func:`make_record_id` of many vendor ids (same values, one call)."""
    prefix = f"{tenant}\x1f{msg_class}\x1f"
    blake2b = hashlib.blake2b
    return [blake2b((prefix + vendor_id).encode(), digest_size=16).hexdigest() for vendor_id in vendor_ids]


@dataclass(frozen=True)
class EnvelopeContext:
    """What every record of one collect task shares."""

    tenant: str
    instance: str
    content_type: str
    window_start: datetime
    window_end: datetime
    ingest_time: datetime

    def shared_columns(self, origin: MsgOrigin) -> dict[str, Any]:
        """The envelope columns every record of this task and origin has in common."""
        return {
            "tenant": self.tenant,
            "instance": self.instance,
            "content_type": self.content_type,
            "msg_class": origin.msg_class,
            "msg_origin_source": origin.source,
            "msg_origin_vendor": origin.vendor,
            "msg_origin_category": origin.category,
            "ingest_time": self.ingest_time,
            "window_start": self.window_start,
            "window_end": self.window_end,
        }

    def wrap(
        self,
        origin: MsgOrigin,
        raw: dict[str, Any],
        *,
        vendor_id: str | None,
        event_time: datetime | None,
        typed: Mapping[str, Any] | None = None,
        raw_text: str | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """One envelope row (plus the index's typed columns) for ``raw``.

        :param raw_text: ``canonical_json(raw)`` when the caller has it already.
        :param version: set for a record that is one version of an item (a snapshot): the record id is
            then that of the vendor id *and* the version, so each version is its own row.
        """
        raw_text = canonical_json(raw) if raw_text is None else raw_text
        row = {
            "record_id": make_record_id(self.tenant, origin.msg_class, identity_of(vendor_id, raw_text, version)),
            **self.shared_columns(origin),
            "vendor_id": vendor_id,
            "event_time": event_time,
            "raw": raw_text,
        }
        if typed:
            row.update(typed)
        return row

    def arrow_rows(
        self,
        table: str,
        origin: MsgOrigin,
        *,
        vendor_ids: Sequence[str | None] | pa.Array,
        event_times: Sequence[datetime | None] | pa.Array,
        raw_texts: Sequence[str] | pa.Array | pa.ChunkedArray,
        typed: Mapping[str, Any] | None = None,
        record_ids: Sequence[str] | pa.Array | None = None,
    ) -> pa.Table:
        """The rows :meth:`wrap` builds, for many records at once, as an Arrow table of ``table``.

        Built column by column instead of one dict per row, which is several times cheaper for large
        volumes.  Two differences from :meth:`wrap`: every record must have a vendor id (a record
        without one needs the hash of its canonical JSON: use :meth:`wrap`), and ``raw_texts`` are
        stored as given, so each must be the JSON text of its record - e.g. its exact text in the
        vendor's file, which :meth:`wrap` would have re-serialised as :func:`canonical_json`. They
        may be an Arrow (chunked) array already, which is used as it is.

        :param typed: the index's typed columns: a list or tuple of values per record, or one value for
            every record (e.g. the object key); a column not given is null.
        :param record_ids: the records' ids when the caller made them already (one record's rows in
            several tables share its id, so it is hashed once): then a record may have no vendor id
            (``None``), as :meth:`wrap` allows, its id being that of its content.

        Any column may be given as an Arrow array already (e.g. one shared by several tables' rows).
        """
        import pyarrow as pa

        from seccollect.staging.store import arrow_schema

        if record_ids is None and not all(vendor_ids):
            raise ValueError("arrow_rows needs a vendor id for every record; use wrap() for records without one")
        n = len(raw_texts)
        if len(vendor_ids) != n or len(event_times) != n or (record_ids is not None and len(record_ids) != n):
            raise ValueError("vendor_ids, event_times, raw_texts and record_ids must have one entry per record")
        columns: dict[str, Any] = {
            "record_id": make_record_ids(self.tenant, origin.msg_class, vendor_ids) if record_ids is None else record_ids,
            **self.shared_columns(origin),
            "vendor_id": vendor_ids,
            "event_time": event_times,
            "raw": raw_texts,
            **(typed or {}),
        }
        schema = arrow_schema(table)
        arrays = []
        for column in schema:
            value = columns.get(column.name)
            if isinstance(value, pa.Array | pa.ChunkedArray):
                if len(value) != n:
                    raise ValueError(f"column {column.name} has {len(value)} values for {n} records")
                arrays.append(value.cast(column.type) if value.type != column.type else value)
            elif isinstance(value, list | tuple):
                if len(value) != n:
                    raise ValueError(f"column {column.name} has {len(value)} values for {n} records")
                arrays.append(pa.array(value, column.type))
            elif value is None:
                arrays.append(pa.nulls(n, column.type))
            else:
                arrays.append(pa.repeat(pa.scalar(value, column.type), n))
        return pa.Table.from_arrays(arrays, schema=schema)
