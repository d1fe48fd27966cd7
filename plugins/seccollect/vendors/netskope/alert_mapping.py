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

from seccollect.vendors.netskope.tables import ALERT_MAPPING_FIELDS

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb
    import pyarrow as pa

    from seccollect.staging.store import StagedBatch, StagingWriter

MAPPED_KINDS = ("breach", "connection", "malsite")


#: The Syslog columns a link needs besides the mapping fields.
_LINK_ENVELOPE = ("record_id", "tenant", "instance", "content_type", "msg_origin_source", "msg_origin_vendor",
                  "msg_origin_category", "event_time", "window_end")

# The mapping fields of raw alerts, parsed in C++ once per alert with every path in one call; the
# other columns of the relation pass through. The one place the fields are read from a raw alert.
_FIELDS_SQL = f"""
SELECT * EXCLUDE (raw, f), {", ".join(f"f[{i}] AS raw_{name}" for i, name in enumerate(ALERT_MAPPING_FIELDS, 1))}
FROM (SELECT *, json_extract_string(raw, {["$." + name for name in ALERT_MAPPING_FIELDS]}) AS f FROM raw_alerts)
"""


def _extract_fields(rows: pa.Table, con: duckdb.DuckDBPyConnection | None) -> pa.Table:
    import duckdb

    own = con is None
    con = con or duckdb.connect()
    try:
        con.register("raw_alerts", rows)
        return con.sql(_FIELDS_SQL).to_arrow_table()
    finally:
        con.unregister("raw_alerts")
        if own:
            con.close()


def alert_fields(syslog_part: pa.Table) -> pa.Table:
    """The ``alert_fields`` of a Syslog part of raw alerts, row for row: what the collect task stages
    beside each part (:meth:`StagingWriter.derive`) so that the mapping task never reads or parses the
    raw alerts again."""
    from seccollect.staging.store import arrow_schema

    return _extract_fields(syslog_part.select(["vendor_id", "raw"]), None).cast(arrow_schema("alert_fields"))


class FieldsOutOfStep(ValueError):
    """Staged ``alert_fields`` that do not hold the records of their Syslog part: only re-collecting the
    window fixes it, so the mapping task fails without retries."""


def with_fields(syslog_part: pa.Table, fields_part: pa.Table) -> pa.Table:
    """A Syslog part's link columns beside its staged ``alert_fields`` (the mapping's input); raises
    :class:`FieldsOutOfStep` if the two are not row for row the same records."""
    if fields_part.num_rows != syslog_part.num_rows or not fields_part["vendor_id"].equals(syslog_part["vendor_id"]):
        raise FieldsOutOfStep(
            "Staged alert_fields are out of step with their Syslog part; re-run the window's collect task"
        )
    data = syslog_part.select(list(_LINK_ENVELOPE))
    for name in fields_part.column_names[1:]:
        data = data.append_column(name, fields_part[name])
    return data


# Links from the mapping fields: kind, user and id, then the key (md5 of its parts = 32 hex characters).
_MAP_SQL = """
WITH typed AS (
    SELECT *,
        CASE
            WHEN lower(raw_type) IN ('breach', 'connection', 'malsite') THEN lower(raw_type)
            WHEN lower(raw_alert_type) = 'compromised credential' THEN 'breach'
            WHEN lower(raw_alert_type) = 'malsite' THEN 'malsite'
        END AS alert_kind
    FROM alert_fields
), keyed AS (
    SELECT *, raw_user AS user_name,
        CASE alert_kind
            WHEN 'breach' THEN raw_breach_id
            WHEN 'connection' THEN raw_connection_id
            WHEN 'malsite' THEN raw_malsite_id
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
    coalesce(event_time, window_end) AS event_time{keep}
FROM keyed
"""


def _keep(columns: Sequence[str]) -> str:
    return "".join(f", {column}" for column in columns)


def map_fields(
    fields: pa.Table, con: duckdb.DuckDBPyConnection | None = None, *, keep: Sequence[str] = ()
) -> pa.Table:
    """``alert_sources`` rows (links, without the raw alert) for the mapped kinds among ``fields``
    (see :func:`with_fields`); ``keep`` names further columns of ``fields`` to pass through."""
    import duckdb

    own = con is None
    con = con or duckdb.connect()
    try:
        con.register("alert_fields", fields)
        return con.sql(_MAP_SQL.format(keep=_keep(keep))).to_arrow_table()
    finally:
        con.unregister("alert_fields")
        if own:
            con.close()


# The window's latest link per key: greatest event time, ties broken by the greatest record_id, the
# order the warehouse's recompute uses (32 hex characters sort as their UUIDs do); a record delivered
# twice is taken where it was first staged (the Syslog row the load keeps).
_WINNERS_SQL = """
CREATE OR REPLACE TEMP TABLE alert_winners AS
SELECT alert_key, event_time, record_id, row_no FROM alert_candidates
QUALIFY row_number() OVER (PARTITION BY alert_key ORDER BY event_time DESC, record_id DESC, row_no) = 1
"""


def map_window(
    staged: Sequence[StagedBatch], writer: StagingWriter, con: duckdb.DuckDBPyConnection | None = None
) -> int:
    """Map a window's staged raw alerts: stage its links (``alert_sources``, one per mapped raw alert)
    and, per Alerts key, its latest link with the raw alert (``alert_latest``). Returns the links.

    ``staged`` is what the collect task staged: Syslog parts and, beside them, ``alert_fields`` parts
    (the mapping fields of every raw alert, row for row in the same order). Links come from the fields;
    only the narrow key columns of every link and its row number in the window are kept (in DuckDB,
    ~100 bytes each) to pick each key's latest link, whose raw alert is then taken by position from
    the Syslog part holding it (``record_id`` and ``raw`` read, the record_ids checked). Neither this
    task nor the load ever holds a raw alert per link. Parts whose fields are missing or out of step
    raise :class:`FieldsOutOfStep` (re-collecting the window fixes it).
    """
    import duckdb
    import pyarrow as pa

    from seccollect.staging.store import arrow_schema, read_batch

    own = con is None
    con = con or duckdb.connect()
    link_columns = arrow_schema("alert_sources").names
    parts = [batch for batch in staged if batch.table == "syslog"]
    fields = [batch for batch in staged if batch.table == "alert_fields"]
    if [b.rows for b in fields] != [b.rows for b in parts]:
        raise FieldsOutOfStep(
            f"{len(parts)} Syslog part(s) of raw alerts but {len(fields)} alert_fields part(s) of other sizes; "
            "re-run the window's collect task"
        )
    mapped = offset = 0
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE alert_candidates "
            "(alert_key VARCHAR, event_time TIMESTAMPTZ, record_id VARCHAR, row_no BIGINT)"
        )
        for part_no, batch in enumerate(parts):
            data = with_fields(read_batch(batch, columns=(*_LINK_ENVELOPE, "vendor_id")), read_batch(fields[part_no]))
            data = data.append_column("row_no", pa.array(range(offset, offset + data.num_rows), pa.int64()))
            offset += data.num_rows
            links = map_fields(data, con, keep=("row_no",))
            if not links.num_rows:
                continue
            mapped += links.num_rows
            writer.write_table("alert_sources", links.select(link_columns))
            con.register("part_links", links)
            try:
                con.execute("INSERT INTO alert_candidates SELECT alert_key, event_time, record_id, row_no FROM part_links")
            finally:
                con.unregister("part_links")
        if mapped:
            con.execute(_WINNERS_SQL)
            offset = 0
            for batch in parts:
                start, offset = offset, offset + batch.rows
                winners = con.sql(
                    "SELECT alert_key, event_time, record_id, row_no - ? AS pos FROM alert_winners "
                    "WHERE row_no >= ? AND row_no < ?",
                    params=[start, start, offset],
                ).to_arrow_table()
                if not winners.num_rows:
                    continue
                part = read_batch(batch, columns=("record_id", "raw"))
                if not part["record_id"].take(winners["pos"]).equals(winners["record_id"]):
                    raise RuntimeError(
                        f"Syslog part {batch.path} changed while its alerts were mapped (collect re-run?); "
                        "re-run this task"
                    )
                latest = winners.drop_columns("pos").append_column("raw", part["raw"].take(winners["pos"]))
                writer.add_arrow("alert_latest", latest)
    finally:
        if own:
            con.close()
    return mapped
