"""Turn vendor values into what both warehouses store the same way, or say why they cannot be.

Every function raises :class:`~seccollect.records.quarantine.RecordError` with a reason a person can
act on; the record intake turns that into a quarantine entry. Two rules hold for every text column:

* a NUL character (which PostgreSQL cannot store in text) is kept as the six characters ``\\u0000``
  (the staging writer applies it to every text column, on DuckDB as on PostgreSQL); ``raw`` keeps the
  JSON escape ``\\u0000`` that the record's JSON text already has;
* a lone surrogate (a byte that was not UTF-8 when the body was decoded, or a ``\\ud800`` escape) cannot
  be stored as UTF-8 at all: the record is quarantined with its original bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from seccollect.records.quarantine import RecordError

#: How a NUL character is kept in text columns (see the module docstring).
NUL_ESCAPE = "\\u0000"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def required(record: dict[str, Any], field: str) -> Any:
    """``record[field]``, or :class:`RecordError` naming the missing field."""
    value = record.get(field)
    if value is None or value == "":
        raise RecordError(f"the record has no {field!r} (a required field)")
    return value


def check_text(value: str, what: str) -> str:
    """``value`` if it can be stored as UTF-8 text, else :class:`RecordError`."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(
            f"{what} holds bytes that are not valid UTF-8 (or a lone surrogate) at character {exc.start}"
        ) from None
    return value


def epoch_seconds(value: Any, what: str) -> datetime:
    """A Unix time in seconds (an int, a float, or digits in a string) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordError(f"{what} {value!r} is not a Unix time in seconds")
    if isinstance(value, str):
        try:
            value = float(value) if "." in value else int(value)
        except ValueError:
            raise RecordError(f"{what} {value!r} is not a Unix time in seconds") from None
    try:
        moment = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise RecordError(f"{what} {value!r} is out of range (not a Unix time in seconds before year 10000)") from None
    return moment


def iso_time(value: Any, what: str) -> datetime:
    """An ISO 8601 time (``2026-03-01T10:00:00Z``; no zone = UTC) as an aware UTC datetime."""
    if not isinstance(value, str):
        raise RecordError(f"{what} {value!r} is not an ISO 8601 time")
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise RecordError(f"{what} {value!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_bigint(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{what} {value!r} is not an integer")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise RecordError(f"{what} {value} does not fit a 64-bit integer column")
    return value


def check_timestamp(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise RecordError(f"{what} {value!r} is not a time with a zone")
    return value
