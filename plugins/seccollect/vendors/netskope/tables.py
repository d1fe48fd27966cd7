"""The tables the Netskope alert mapping adds beside the shared indices.

``alerts`` (one row per deduplication key) is a shared index; what is Netskope's own is how its rows
come about: every raw alert is linked to its key (``alert_sources``), and each load recomputes the keys
it touched from all their links (:mod:`seccollect.vendors.netskope.alert_load`).
"""

from __future__ import annotations

from seccollect.records.indices import envelope_column
from seccollect.records.tables import Column, Table

#: The fields the alert mapping reads from a raw alert, named ``raw_<field>`` in ``alert_fields``.
ALERT_MAPPING_FIELDS: tuple[str, ...] = ("type", "alert_type", "user", "breach_id", "connection_id", "malsite_id")

#: Links every raw alert to the alert row it maps to. Alerts rows are recomputed from these links, so
#: re-running or backfilling windows in any order can never change a count.
ALERT_SOURCES = Table(
    "alert_sources",
    (
        Column("alert_key", "uuid", nullable=False),
        *(envelope_column(name) for name in (
            "record_id", "tenant", "instance", "content_type", "msg_class",
            "msg_origin_source", "msg_origin_vendor", "msg_origin_category",
        )),
        Column("alert_kind", "text", nullable=False),
        Column("user_name", "text"),
        Column("dedup_id", "text"),
        # Mapped alerts always have an event time (the raw alert's timestamp), unlike envelope rows.
        Column("event_time", "timestamp", nullable=False),
    ),
    ("alert_key", "record_id"),
)

#: Staged by the mapping task beside the links: per Alerts key the window touched, its latest link (by
#: event time, then record_id) with the raw alert, which the load gives the Alerts row. Links do not
#: store raw alerts (every raw alert is in Syslog already; a copy per link was most of the load's memory).
ALERT_LATEST = Table(
    "alert_latest",
    (
        Column("alert_key", "uuid", nullable=False),
        Column("event_time", "timestamp", nullable=False),
        Column("record_id", "uuid", nullable=False),
        envelope_column("raw"),
    ),
    ("alert_key",),
    role="intermediate",
)

#: Staged by the alert collect task beside every Syslog part, row for row (derived from the part as it
#: is written), so the mapping task reads these narrow rows instead of reading and parsing every raw
#: alert again. ``vendor_id`` repeats the Syslog row's (it proves the two are in step); each field is the
#: text ``json_extract_string`` gives for it (null when absent). Never loaded.
ALERT_FIELDS = Table(
    "alert_fields",
    (
        envelope_column("vendor_id"),
        *(Column(f"raw_{name}", "text") for name in ALERT_MAPPING_FIELDS),
    ),
    ("vendor_id",),
    role="intermediate",
)

TABLES: tuple[Table, ...] = (ALERT_SOURCES, ALERT_LATEST, ALERT_FIELDS)
