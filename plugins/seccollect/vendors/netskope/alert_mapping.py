"""Map raw Netskope alerts to Alerts-index keys (the guide's "Native Alerts Mapped").

Three kinds are mapped, each deduplicated by its own key (guide 002):

* Breach     — tenant, ``user``, ``breach_id``
* Connection — tenant, ``user``, ``connection_id``
* Malsite    — tenant, ``user``, ``malsite_id``

This module only derives, for every raw alert, the key it belongs to (one ``alert_sources`` row per
raw alert), and, per key, the window's latest raw alert (``alert_latest``). Aggregation into one
Alerts row per key (first/last seen, count, latest raw alert) happens in the warehouse from *all*
links of the key, which is what keeps counts exact across windows, re-runs and out-of-order backfills.

An id that is missing, empty or ``0`` identifies nothing (``connection_id`` is ``0`` on most records),
so such an alert gets a key of its own instead of merging with unrelated alerts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb
    import pyarrow as pa

    from seccollect.staging.store import StagedBatch, StagingWriter

MAPPED_KINDS = ("breach", "connection", "malsite")

# DuckDB over the staged Arrow batch: JSON is parsed in C++, so a million alerts map in seconds.
# Every raw alert is parsed ONCE, extracting all fields in one call into a MATERIALIZED CTE: DuckDB
# inlines an ordinary CTE into each reference, and one json_extract_string per field and reference
# parsed each document up to seven times (2.5x the time of the whole mapping).
_MAP_SQL = """
WITH parsed AS MATERIALIZED (
    SELECT *, json_extract_string(
        raw, ['$.type', '$.alert_type', '$.user', '$.breach_id', '$.connection_id', '$.malsite_id']
    ) AS f
    FROM raw_alerts
), typed AS (
    SELECT * EXCLUDE (f),
        CASE
            WHEN lower(f[1]) IN ('breach', 'connection', 'malsite') THEN lower(f[1])
            WHEN lower(f[2]) = 'compromised credential' THEN 'breach'
            WHEN lower(f[2]) = 'malsite' THEN 'malsite'
        END AS alert_kind,
        f[3] AS user_name, f[4] AS breach_id, f[5] AS connection_id, f[6] AS malsite_id
    FROM parsed
), keyed AS (
    SELECT *,
        CASE alert_kind
            WHEN 'breach' THEN breach_id
            WHEN 'connection' THEN connection_id
            WHEN 'malsite' THEN malsite_id
        END AS raw_dedup_id
    FROM typed WHERE alert_kind IS NOT NULL
)
SELECT
    md5(CASE WHEN raw_dedup_id IS NULL OR trim(raw_dedup_id) IN ('', '0')
        THEN concat_ws(chr(31), tenant, alert_kind, 'unkeyed', record_id)
        ELSE concat_ws(chr(31), tenant, alert_kind, coalesce(user_name, ''), raw_dedup_id) END) AS alert_key,
    record_id, tenant, instance, content_type,
    'netskopewsg_alert' AS msg_class, msg_origin_source, msg_origin_vendor, msg_origin_category,
    alert_kind, user_name,
    CASE WHEN raw_dedup_id IS NULL OR trim(raw_dedup_id) IN ('', '0') THEN NULL ELSE raw_dedup_id END AS dedup_id,
    coalesce(event_time, window_end) AS event_time, raw
FROM keyed
"""


def map_alerts(
    raw_alerts: pa.Table, con: duckdb.DuckDBPyConnection | None = None, *, with_raw: bool = True
) -> pa.Table:
    """``alert_sources`` rows for the mapped kinds among ``raw_alerts`` (staged Syslog rows), each with
    its raw alert unless ``with_raw`` is false."""
    import duckdb

    own = con is None
    con = con or duckdb.connect()
    sql = _MAP_SQL if with_raw else f"SELECT * EXCLUDE (raw) FROM ({_MAP_SQL})"
    try:
        con.register("raw_alerts", raw_alerts)
        return con.sql(sql).to_arrow_table()
    finally:
        con.unregister("raw_alerts")
        if own:
            con.close()


# The window's latest link per key: greatest event time, ties broken by the greatest record_id, the
# order the warehouse's recompute uses (32 hex characters sort as their UUIDs do); a record delivered
# in several parts is taken from the first.
_WINNERS_SQL = """
CREATE OR REPLACE TEMP TABLE alert_winners AS
SELECT alert_key, event_time, record_id, part_no FROM alert_candidates
QUALIFY row_number() OVER (PARTITION BY alert_key ORDER BY event_time DESC, record_id DESC, part_no) = 1
"""
# The raw alerts of one part's winners (a record repeated within the part is taken once).
_WINNER_RAW_SQL = """
SELECT w.alert_key, w.event_time, w.record_id, any_value(p.raw) AS raw
FROM alert_winners w JOIN syslog_part p ON p.record_id = w.record_id
WHERE w.part_no = ?
GROUP BY w.alert_key, w.event_time, w.record_id
"""


def map_window(
    syslog_batches: Sequence[StagedBatch], writer: StagingWriter, con: duckdb.DuckDBPyConnection | None = None
) -> int:
    """Map a window's staged Syslog parts: stage its links (``alert_sources``, one per mapped raw alert)
    and, per Alerts key, its latest link with the raw alert (``alert_latest``). Returns the links.

    Links are staged without the raw alert. Only the narrow key columns of every link are kept (in
    DuckDB, ~100 bytes each) to pick each key's latest link; the winners' raw alerts are then read back
    from the Syslog parts that hold them (``record_id`` and ``raw`` only), so neither this task nor the
    load ever holds a raw alert per link.
    """
    import duckdb

    from seccollect.staging.store import arrow_schema, read_batch

    own = con is None
    con = con or duckdb.connect()
    link_columns = arrow_schema("alert_sources").names
    parts = [batch for batch in syslog_batches if batch.table == "syslog"]
    mapped = 0
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE alert_candidates "
            "(alert_key VARCHAR, event_time TIMESTAMPTZ, record_id VARCHAR, part_no INTEGER)"
        )
        for part_no, batch in enumerate(parts):
            links = map_alerts(read_batch(batch), con, with_raw=False)
            if not links.num_rows:
                continue
            mapped += links.num_rows
            writer.write_table("alert_sources", links.select(link_columns))
            con.register("part_links", links)
            try:
                con.execute(
                    "INSERT INTO alert_candidates SELECT alert_key, event_time, record_id, ? FROM part_links",
                    [part_no],
                )
            finally:
                con.unregister("part_links")
        if mapped:
            con.execute(_WINNERS_SQL)
            for (part_no,) in con.execute("SELECT DISTINCT part_no FROM alert_winners ORDER BY 1").fetchall():
                con.register("syslog_part", read_batch(parts[part_no], columns=("record_id", "raw")))
                try:
                    writer.add_arrow("alert_latest", con.sql(_WINNER_RAW_SQL, params=[part_no]).to_arrow_table())
                finally:
                    con.unregister("syslog_part")
    finally:
        if own:
            con.close()
    return mapped
