"""The warehouse indices: one table per index of the guides, each = envelope columns + typed columns.

This module is the single description of every table's columns; the staging writer (Arrow schema),
the DuckDB and PostgreSQL DDL and the loaders are all derived from it, so adding a column is a
one-line change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: ``uuid`` holds a 128-bit digest (record ids, alert keys). Python and the staged Parquet carry it as 32
#: hex characters; the warehouse stores the database's ``UUID`` type (16 bytes): half the bytes of the
#: hex text, and fixed-width primary-key entries that DuckDB's ART index inserts and checkpoints about
#: twice as fast, and that PostgreSQL compares without collation rules. Both databases show it in the
#: dashed UUID form; ``CAST(x AS UUID)`` accepts the plain 32 hex characters.
ColumnType = Literal["text", "uuid", "timestamp", "bigint", "double", "boolean", "json"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True


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


@dataclass(frozen=True)
class Index:
    """A warehouse table of records, keyed by ``record_id``."""

    name: str
    typed_columns: tuple[Column, ...] = ()

    @property
    def columns(self) -> tuple[Column, ...]:
        return ENVELOPE + self.typed_columns

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


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
#: Mapped alerts: one row per deduplication key (``record_id`` is the key's id). ``raw`` holds the
#: latest raw alert behind the key; the per-raw-alert links live in ALERT_SOURCES.
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
)

INDICES: dict[str, Index] = {i.name: i for i in (SYSLOG, ASSETS, SCANS, AWS_EVENTS, TRAFFIC, ALERTS)}

#: Links every raw alert to the alert row it maps to. Alerts rows are recomputed from these links, so
#: re-running or backfilling windows in any order can never change a count.
_ENVELOPE_BY_NAME = {c.name: c for c in ENVELOPE}
ALERT_SOURCES: tuple[Column, ...] = (
    Column("alert_key", "uuid", nullable=False),
    *(_ENVELOPE_BY_NAME[name] for name in (
        "record_id", "tenant", "instance", "content_type", "msg_class",
        "msg_origin_source", "msg_origin_vendor", "msg_origin_category",
    )),
    Column("alert_kind", "text", nullable=False),
    Column("user_name", "text"),
    Column("dedup_id", "text"),
    # Mapped alerts always have an event time (the raw alert's timestamp), unlike envelope rows.
    Column("event_time", "timestamp", nullable=False),
)
#: Staged by the mapping task beside the links: per Alerts key the window touched, its latest link (by
#: event time, then record_id) with the raw alert, which the load gives the Alerts row. Links do not
#: store raw alerts (every raw alert is in Syslog already; a copy per link was most of the load's memory).
ALERT_LATEST_LINKS: tuple[Column, ...] = (
    Column("alert_key", "uuid", nullable=False),
    Column("event_time", "timestamp", nullable=False),
    Column("record_id", "uuid", nullable=False),
    _ENVELOPE_BY_NAME["raw"],
)
#: The fields the alert mapping reads from a raw alert, named ``raw_<field>`` in ``alert_fields``.
ALERT_MAPPING_FIELDS: tuple[str, ...] = ("type", "alert_type", "user", "breach_id", "connection_id", "malsite_id")
#: Staged by the Netskope alert collect task beside every Syslog part, row for row (derived from the
#: part as it is written), so the mapping task reads these narrow rows instead of reading and parsing
#: every raw alert again. ``vendor_id`` repeats the Syslog row's (it proves the two are in step); each
#: field is the text ``json_extract_string`` gives for it (null when absent). Never loaded.
ALERT_FIELDS: tuple[Column, ...] = (
    _ENVELOPE_BY_NAME["vendor_id"],
    *(Column(f"raw_{name}", "text") for name in ALERT_MAPPING_FIELDS),
)
