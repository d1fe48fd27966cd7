"""The warehouse indices of the guides: one table per index, each = envelope columns + typed columns.

These are the tables every vendor writes to (CONNECTORS.md: Syslog for every raw record, Assets,
Scans, AWS Events, Traffic, Alerts); a content type names the indices it fills in its spec. Tables
that only one vendor needs are declared by that vendor (see :mod:`seccollect.registry`).
"""

from __future__ import annotations

from seccollect.records.tables import Column, ColumnType, Table

__all__ = ["ENVELOPE", "INDICES", "Column", "ColumnType", "Index", "envelope_column"]

#: Every record of every index carries these (CONNECTORS.md, "Record envelope").
ENVELOPE: tuple[Column, ...] = (
    Column("record_id", "uuid", nullable=False),
    Column("tenant", "text", nullable=False),
    Column("instance", "text", nullable=False),
    Column("content_type", "text", nullable=False),
    Column("msg_class", "text", nullable=False),
    Column("msg_origin_source", "text", nullable=False),
    Column("msg_origin_vendor", "text", nullable=False),
    Column("msg_origin_category", "text", nullable=False),
    Column("vendor_id", "text"),
    Column("event_time", "timestamp"),
    Column("ingest_time", "timestamp", nullable=False),
    Column("window_start", "timestamp", nullable=False),
    Column("window_end", "timestamp", nullable=False),
    Column("raw", "json", nullable=False),
)

_ENVELOPE_BY_NAME = {c.name: c for c in ENVELOPE}


def envelope_column(name: str) -> Column:
    """An envelope column, for tables that repeat some of them (e.g. link tables)."""
    return _ENVELOPE_BY_NAME[name]


class Index(Table):
    """A warehouse table of records, keyed by ``record_id``: the envelope plus typed columns."""

    def __init__(self, name: str, typed_columns: tuple[Column, ...] = (), *, append_only: bool = True) -> None:
        super().__init__(name, ENVELOPE + typed_columns, ("record_id",), "records", append_only)
        object.__setattr__(self, "typed_columns", typed_columns)

    typed_columns: tuple[Column, ...]


SYSLOG = Index("syslog")
ASSETS = Index(
    "assets",
    (Column("asset_id", "text"), Column("hostname", "text"), Column("ip_address", "text"), Column("os", "text")),
)
SCANS = Index(
    "scans",
    (
        Column("asset_id", "text"),
        Column("vulnerability_id", "text"),
        Column("severity", "text"),
        Column("status", "text"),
    ),
)
AWS_EVENTS = Index(
    "aws_events",
    (
        Column("account_id", "text"),
        Column("aws_region", "text"),
        Column("event_source", "text"),
        Column("event_name", "text"),
        Column("source_ip", "text"),
        Column("user_arn", "text"),
        Column("error_code", "text"),
        Column("action", "text"),
        Column("s3_key", "text"),
    ),
)
TRAFFIC = Index(
    "traffic",
    (
        Column("account_id", "text"),
        Column("interface_id", "text"),
        Column("src_addr", "text"),
        Column("dst_addr", "text"),
        Column("src_port", "bigint"),
        Column("dst_port", "bigint"),
        Column("protocol", "bigint"),
        Column("packets", "bigint"),
        Column("bytes", "bigint"),
        Column("action", "text"),
        Column("log_status", "text"),
        Column("s3_key", "text"),
    ),
)
#: Mapped alerts: one row per deduplication key (``record_id`` is the key's id). Its rows are written by
#: the mapping vendor's post-load step (upserted, so not append-only); ``raw`` holds the latest raw alert
#: behind the key.
ALERTS = Index(
    "alerts",
    (
        Column("alert_kind", "text", nullable=False),
        Column("user_name", "text"),
        Column("dedup_id", "text"),
        Column("first_seen", "timestamp", nullable=False),
        Column("last_seen", "timestamp", nullable=False),
        Column("raw_count", "bigint", nullable=False),
        Column("latest_record_id", "uuid", nullable=False),
    ),
    append_only=False,
)

INDICES: dict[str, Index] = {i.name: i for i in (SYSLOG, ASSETS, SCANS, AWS_EVENTS, TRAFFIC, ALERTS)}
