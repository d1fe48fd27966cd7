"""The record envelope every collected record is wrapped in, and its deterministic ``record_id``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MsgOrigin:
    """``msg_class`` and ``msg_origin`` of CONNECTORS.md for one kind of record."""

    msg_class: str
    source: str
    vendor: str
    category: str


def canonical_json(raw: Any) -> str:
    """Stable JSON text of a record: sorted keys, no spaces. Used for hashing and storage alike."""
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(raw: Any) -> str:
    """Identity of a record that has no vendor id: a hash of its canonical content."""
    return hashlib.blake2b(canonical_json(raw).encode(), digest_size=16).hexdigest()


def make_record_id(tenant: str, msg_class: str, vendor_id: str) -> str:
    """Deterministic id: the same vendor record collected twice (any window, any run) gets the same id.

    The instance name is left out on purpose: renaming an instance, or running two instances on the
    same tenant, must not load a record twice.
    """
    key = f"{tenant}\x1f{msg_class}\x1f{vendor_id}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


@dataclass(frozen=True)
class EnvelopeContext:
    """What every record of one collect task shares."""

    tenant: str
    instance: str
    content_type: str
    window_start: datetime
    window_end: datetime
    ingest_time: datetime

    def wrap(
        self,
        origin: MsgOrigin,
        raw: dict[str, Any],
        *,
        vendor_id: str | None,
        event_time: datetime | None,
        typed: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One envelope row (plus the index's typed columns) for ``raw``."""
        raw_text = canonical_json(raw)
        identity = vendor_id if vendor_id else hashlib.blake2b(raw_text.encode(), digest_size=16).hexdigest()
        row = {
            "record_id": make_record_id(self.tenant, origin.msg_class, identity),
            "tenant": self.tenant,
            "instance": self.instance,
            "content_type": self.content_type,
            "msg_class": origin.msg_class,
            "msg_origin_source": origin.source,
            "msg_origin_vendor": origin.vendor,
            "msg_origin_category": origin.category,
            "vendor_id": vendor_id,
            "event_time": event_time,
            "ingest_time": self.ingest_time,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "raw": raw_text,
        }
        if typed:
            row.update(typed)
        return row
