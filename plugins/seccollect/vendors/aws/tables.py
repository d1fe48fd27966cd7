"""The table the AWS connector adds: which S3 objects each window consumed (read once, ever)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from seccollect.records.tables import Column, Table

if TYPE_CHECKING:
    from seccollect.warehouse.base import Warehouse

#: One row per object version a window read (loaded) or set aside (quarantined): later windows whose
#: look-back lists it again skip it, so each object is read exactly once. Staged by the collect tasks
#: and inserted by the load with the records, in one transaction.
OBJECT_LEDGER = Table(
    "object_ledger",
    (
        Column("dag_id", "text", nullable=False),
        Column("bucket", "text", nullable=False),
        Column("key", "text", nullable=False),
        Column("etag", "text", nullable=False),
        Column("records", "bigint", nullable=False),
        Column("status", "text", nullable=False),
        Column("window_start", "timestamp", nullable=False),
        Column("window_end", "timestamp", nullable=False),
        Column("loaded_at", "timestamp", nullable=False),
    ),
    ("dag_id", "bucket", "key", "etag"),
    # Keeps its primary key on DuckDB too: a small table, read by key before every listing.
    append_only=False,
)

TABLES: tuple[Table, ...] = (OBJECT_LEDGER,)

#: Keys per ledger lookup (bounded statements).
LOOKUP_CHUNK = 500


def consumed_objects(warehouse: Warehouse, dag_id: str, bucket: str, keys: Sequence[str]) -> set[tuple[str, str]]:
    """``(key, etag)`` pairs already processed, so no object is read twice.

    Only the asked keys are read (in chunks), not the whole ledger: the ledger grows with the bucket's
    history, and a 5-minute window must not pay for years of it.
    """
    wanted = sorted(set(keys))
    found: set[tuple[str, str]] = set()
    for i in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[i : i + LOOKUP_CHUNK]
        found.update(
            (key, etag)
            for key, etag in warehouse.query(
                f"SELECT key, etag FROM object_ledger WHERE dag_id = ? AND bucket = ? "
                f"AND key IN ({', '.join('?' * len(chunk))})",
                (dag_id, bucket, *chunk),
            )
        )
    return found
