"""Records and objects that cannot be handled: kept with their reason, never dropped, never blocking.

A collect task turns every per-record (or per-object) failure into a :class:`QuarantineEntry`, staged
beside the window's records and loaded into the ``quarantine`` table in the same transaction, so the
rest of the window loads and a person can see exactly what was set aside and why.

The quarantined bytes are kept as readable text (bytes that are not UTF-8 and NUL characters shown as
escapes, which every warehouse can store) plus their SHA-256 and size; beyond :data:`MAX_RAW_BYTES`
only the hash and size are kept (e.g. a whole corrupt object, which stays in its source).
"""

from __future__ import annotations

import codecs
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

#: Quarantined bytes above this size keep only their hash and size.
MAX_RAW_BYTES = 64 * 1024


def _original_bytes(error: UnicodeError) -> tuple[bytes, int]:
    """Codec error handler: lone surrogates back to bytes - the original byte for one that
    ``surrogateescape`` made from a byte that was not UTF-8, its 3-byte form for any other."""
    assert isinstance(error, UnicodeEncodeError)
    chunk = error.object[error.start : error.end]
    out = bytearray()
    for char in chunk:
        point = ord(char)
        out += bytes([point - 0xDC00]) if 0xDC80 <= point <= 0xDCFF else char.encode("utf-8", "surrogatepass")
    return bytes(out), error.end


codecs.register_error("seccollect.original_bytes", _original_bytes)


def text_bytes(text: str) -> bytes:
    """The bytes behind ``text``, including any that were not valid UTF-8 when it was decoded."""
    return text.encode("utf-8", "seccollect.original_bytes")


def readable(data: bytes) -> str:
    """``data`` as text every warehouse stores: invalid UTF-8 as ``\\xNN`` escapes, NUL as ``\\x00``."""
    return data.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def record_bytes(record: Any) -> bytes:
    """The bytes of a record as received (its JSON text when it is not already text or bytes)."""
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return text_bytes(record)
    try:
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(record)
    return text_bytes(text)


@dataclass(frozen=True)
class QuarantineEntry:
    """A record or object set aside with its reason.

    :param source_ref: what it was, stable across re-runs (``alert:<_id>``, an object key …): a
        re-run of the window updates its entry instead of adding another.
    :param reason: why it could not be handled, in words a person can act on.
    :param raw: its bytes as readable text (see :func:`readable`); ``None`` when large.
    :param raw_sha256: SHA-256 of its exact bytes.
    :param raw_bytes: its size in bytes.
    """

    source_ref: str
    reason: str
    raw: str | None = None
    raw_sha256: str | None = None
    raw_bytes: int | None = None

    @classmethod
    def of_bytes(cls, source_ref: str, reason: str, data: bytes | None) -> QuarantineEntry:
        """An entry for ``data`` (hash and size always; the text only when small)."""
        if data is None:
            return cls(source_ref, reason)
        return cls(
            source_ref,
            reason,
            raw=readable(data) if len(data) <= MAX_RAW_BYTES else None,
            raw_sha256=hashlib.sha256(data).hexdigest(),
            raw_bytes=len(data),
        )

    @classmethod
    def of_record(cls, source_ref: str, reason: str, record: Any) -> QuarantineEntry:
        """An entry for a decoded record (its JSON text), with its original bytes where it had any."""
        return cls.of_bytes(source_ref, reason, record_bytes(record))

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


class RecordError(ValueError):
    """One record cannot be handled (wrong type, unparseable time, …): it goes to quarantine."""
