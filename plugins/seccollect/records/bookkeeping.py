"""The pipeline's own tables: what each window loaded, what was quarantined, and snapshot state.

They are written by the load task inside the same transaction as the window's records, so they can
never disagree with the data: a window is in the ledger exactly when its rows are in the warehouse.
"""

from __future__ import annotations

from seccollect.records.tables import Column, Table

#: What a window's loads did, counted in the window's records (its content type's main index):
#: ``staged_rows`` = what the collect handed over = ``inserted_rows`` (new) + ``duplicate_rows`` (already
#: in the warehouse) + ``quarantined`` (set aside: a record, or a whole object that could not be read).
_LOAD_FIGURES: tuple[Column, ...] = (
    Column("run_id", "text"),
    Column("staged_rows", "bigint", nullable=False),
    Column("inserted_rows", "bigint", nullable=False),
    Column("duplicate_rows", "bigint", nullable=False),
    Column("quarantined", "bigint", nullable=False),
    Column("cursor", "json"),
    Column("loaded_at", "timestamp", nullable=False),
)
_WINDOW: tuple[Column, ...] = (
    Column("dag_id", "text", nullable=False),
    Column("content_type", "text", nullable=False),
    Column("window_start", "timestamp", nullable=False),
    Column("window_end", "timestamp", nullable=False),
)

#: One row per (window, content type), summed over all its loads: the figures above add up for every
#: row (each load's do), ``loads`` counts them, ``run_ids`` lists the runs in load order, ``run_id`` and
#: ``cursor`` (the vendor query range the collect used) are the latest load's.
COLLECTION_LEDGER = Table(
    "collection_ledger",
    (
        *_WINDOW,
        *_LOAD_FIGURES,
        Column("loads", "bigint"),
        Column("run_ids", "json"),
        Column("first_loaded_at", "timestamp"),
        Column("late_items", "bigint"),
    ),
    ("dag_id", "content_type", "window_start", "window_end"),
    role="bookkeeping",
    append_only=False,
)

#: What windows each instance's content types should have: the coverage view lays them out from here.
#: Written by every DAG's coverage check, so it follows the instance files.
INSTANCE_SCHEDULES = Table(
    "instance_schedules",
    (
        Column("dag_id", "text", nullable=False),
        Column("content_type", "text", nullable=False),
        Column("first_window", "timestamp", nullable=False),
        Column("step_seconds", "bigint", nullable=False),
        Column("window_seconds", "bigint", nullable=False),
        Column("retention_seconds", "bigint"),
        Column("grace_seconds", "bigint", nullable=False),
        Column("updated_at", "timestamp", nullable=False),
    ),
    ("dag_id", "content_type"),
    role="bookkeeping",
    append_only=False,
)

#: The last failure of a window's collect or load task (after its retries): why a window is 'failed'.
WINDOW_FAILURES = Table(
    "window_failures",
    (
        Column("dag_id", "text", nullable=False),
        Column("content_type", "text", nullable=False),
        Column("window_start", "timestamp", nullable=False),
        Column("window_end", "timestamp", nullable=False),
        Column("task_id", "text", nullable=False),
        Column("run_id", "text"),
        Column("reason", "text", nullable=False),
        Column("failed_at", "timestamp", nullable=False),
    ),
    ("dag_id", "content_type", "window_start", "window_end"),
    role="bookkeeping",
    append_only=False,
)

#: Every load of every window, with its own figures: the history behind ``collection_ledger``.
COLLECTION_LOADS = Table(
    "collection_loads",
    (*_WINDOW, *_LOAD_FIGURES),
    ("dag_id", "content_type", "window_start", "window_end", "loaded_at"),
    role="bookkeeping",
    append_only=False,
)

#: Records and objects that could not be handled, with the reason, instead of being dropped or blocking
#: their window. ``raw`` is the record's text (bytes that are not UTF-8 and NUL characters shown as
#: escapes), ``raw_sha256`` and ``raw_bytes`` identify the exact bytes; ``raw`` is left empty when the
#: bytes are large (a whole object), the hash and size are always kept.
QUARANTINE = Table(
    "quarantine",
    (
        Column("dag_id", "text", nullable=False),
        Column("content_type", "text", nullable=False),
        Column("source_ref", "text", nullable=False),
        Column("reason", "text", nullable=False),
        Column("raw", "text"),
        Column("window_start", "timestamp", nullable=False),
        Column("window_end", "timestamp", nullable=False),
        Column("quarantined_at", "timestamp", nullable=False),
        Column("raw_sha256", "text"),
        Column("raw_bytes", "bigint"),
    ),
    ("dag_id", "content_type", "source_ref"),
    role="bookkeeping",
    append_only=False,
)

#: Snapshot content types (full pulls of APIs without time filters): the current version of every item
#: of an instance's content type, as of its last successful pull. Written only by the load.
SNAPSHOT_STATE = Table(
    "snapshot_state",
    (
        Column("dag_id", "text", nullable=False),
        Column("content_type", "text", nullable=False),
        Column("identity", "text", nullable=False),
        Column("content_hash", "text", nullable=False),
        Column("record_id", "uuid", nullable=False),
        Column("changed_window_start", "timestamp", nullable=False),
        Column("changed_window_end", "timestamp", nullable=False),
        Column("removed_window_start", "timestamp"),
        Column("removed_window_end", "timestamp"),
        Column("updated_at", "timestamp", nullable=False),
    ),
    ("dag_id", "content_type", "identity"),
    role="bookkeeping",
    append_only=False,
)

#: The newest pull each snapshot content type's state reflects. A pull older than it (a load that was
#: retried after a later window loaded) cannot say what exists now, so it changes no state.
SNAPSHOT_HEADS = Table(
    "snapshot_heads",
    (
        Column("dag_id", "text", nullable=False),
        Column("content_type", "text", nullable=False),
        Column("pulled_at", "timestamp", nullable=False),
        Column("window_start", "timestamp", nullable=False),
        Column("window_end", "timestamp", nullable=False),
    ),
    ("dag_id", "content_type"),
    role="bookkeeping",
    append_only=False,
)

#: Every change a snapshot pull noticed: ``added``, ``changed`` or ``removed`` (``record_id`` is the
#: version added, or the last version of a removed item), with the window that noticed it.
SNAPSHOT_CHANGES = Table(
    "snapshot_changes",
    (
        Column("dag_id", "text", nullable=False),
        Column("content_type", "text", nullable=False),
        Column("identity", "text", nullable=False),
        Column("change", "text", nullable=False),
        Column("record_id", "uuid", nullable=False),
        Column("window_start", "timestamp", nullable=False),
        Column("window_end", "timestamp", nullable=False),
        Column("run_id", "text"),
        Column("noticed_at", "timestamp", nullable=False),
    ),
    ("dag_id", "content_type", "identity", "record_id", "change"),
    role="bookkeeping",
    append_only=False,
)

#: Staged by a snapshot collect beside its records: every item's identity, content hash and the
#: record id its version gets if it is new or changed. The load compares these with ``snapshot_state``.
#: ``held`` marks an item the pull saw but quarantined: it still exists (it is not removed), and its
#: state stays as it was until a pull can read it again.
SNAPSHOT_ITEMS = Table(
    "snapshot_items",
    (
        Column("identity", "text", nullable=False),
        Column("content_hash", "text", nullable=False),
        Column("record_id", "uuid", nullable=False),
        Column("held", "boolean"),
    ),
    ("identity",),
    role="intermediate",
)


#: Staged by a collect task: what it quarantined (see :mod:`seccollect.records.quarantine`). The load
#: writes these into ``quarantine`` with the window, in the window's transaction.
QUARANTINE_ENTRIES = Table(
    "quarantine_entries",
    (
        Column("source_ref", "text", nullable=False),
        Column("reason", "text", nullable=False),
        Column("raw", "text"),
        Column("raw_sha256", "text"),
        Column("raw_bytes", "bigint"),
    ),
    ("source_ref",),
    role="intermediate",
)

BOOKKEEPING: dict[str, Table] = {
    t.name: t
    for t in (COLLECTION_LEDGER, COLLECTION_LOADS, INSTANCE_SCHEDULES, WINDOW_FAILURES, QUARANTINE, SNAPSHOT_STATE, SNAPSHOT_HEADS, SNAPSHOT_CHANGES, SNAPSHOT_ITEMS,
              QUARANTINE_ENTRIES)
}
