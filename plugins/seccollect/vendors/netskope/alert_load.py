"""The Netskope post-load step: recompute the Alerts rows of the keys a window's links touched.

Runs inside the load's transaction after every link of the window is in (see the spec's
``post_load``), so a key whose links span several parts is computed once from all of them, and the
rows, links and Alerts commit together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from seccollect.warehouse.base import LoadContext, Warehouse

#: Alerts keys recomputed per statement at the end of a window's load (bounds its memory).
RECOMPUTE_CHUNK = 20_000

# Recomputes the Alerts rows of the keys a window touched from ALL their links. Because the result is a
# function of the link set (and links are insert-if-absent), re-runs, overlaps and out-of-order
# backfills cannot change first/last seen or counts. Written once for both backends (both support
# DISTINCT ON and ON CONFLICT ... DO UPDATE).
# The latest link of each key is chosen in the same filtered scan that reads its columns (links are
# narrow: joining them back by key instead scanned the whole link table per chunk); its raw alert comes from the
# window's own staged links when the latest link is one of them ({staged}, one row per touched key),
# and otherwise from the Alerts row itself: a latest link from an earlier window was already the latest
# when that window's load recomputed the row, in the same transaction as it inserted the link. Links do
# not store raw alerts (Syslog has them), which keeps a large window's transaction small.
_RECOMPUTE_ALERTS = """
INSERT INTO alerts (record_id, tenant, instance, content_type, msg_class, msg_origin_source,
    msg_origin_vendor, msg_origin_category, vendor_id, event_time, ingest_time, window_start,
    window_end, raw, alert_kind, user_name, dedup_id, first_seen, last_seen, raw_count, latest_record_id)
SELECT l.alert_key, l.tenant, l.instance, l.content_type, l.msg_class, l.msg_origin_source,
    l.msg_origin_vendor, l.msg_origin_category, l.dedup_id, agg.last_seen, ?, ?, ?,
    CASE WHEN c.record_id IS NOT NULL THEN c.raw WHEN a.latest_record_id = l.record_id THEN a.raw END,
    l.alert_kind, l.user_name, l.dedup_id, agg.first_seen, agg.last_seen, agg.raw_count, l.record_id
FROM (
    SELECT alert_key, min(event_time) AS first_seen, max(event_time) AS last_seen, count(*) AS raw_count
    FROM alert_sources WHERE alert_key IN (SELECT CAST(alert_key AS UUID) FROM {staged})
    GROUP BY alert_key
) agg
JOIN (
    SELECT DISTINCT ON (alert_key) * FROM alert_sources
    WHERE alert_key IN (SELECT CAST(alert_key AS UUID) FROM {staged})
    ORDER BY alert_key, event_time DESC, record_id DESC
) l ON l.alert_key = agg.alert_key
LEFT JOIN {staged} c ON CAST(c.alert_key AS UUID) = l.alert_key AND CAST(c.record_id AS UUID) = l.record_id
LEFT JOIN alerts a ON a.record_id = l.alert_key
ON CONFLICT (record_id) DO UPDATE SET
    event_time = excluded.event_time, ingest_time = excluded.ingest_time,
    window_start = excluded.window_start, window_end = excluded.window_end, raw = excluded.raw,
    first_seen = excluded.first_seen, last_seen = excluded.last_seen, raw_count = excluded.raw_count,
    latest_record_id = excluded.latest_record_id
"""


def recompute_alerts(warehouse: Warehouse, context: LoadContext) -> Mapping[str, int]:
    """Recompute the Alerts rows of the keys in the window's staged ``alert_latest`` rows (one per key
    the window's links touched, its latest link with the raw alert).

    Keys go in chunks of :data:`RECOMPUTE_CHUNK`, which bounds the memory of one statement; the result
    does not depend on the chunking, as each key is computed from its own links only. Concurrent loads
    (PostgreSQL) take turns on the lock: two windows touching the same key would otherwise each
    recompute it from the links their own snapshot sees, and the later commit would drop the other's
    links from the count.
    """
    from seccollect.staging.store import read_batch

    latest_parts = context.parts("alert_latest")
    if not latest_parts:
        return {}
    warehouse.lock("netskope:alerts")
    touched = 0
    for batch in latest_parts:
        touched += _recompute(warehouse, read_batch(batch), context)
    return {"alerts_touched": touched}


def _recompute(warehouse: Warehouse, latest: pa.Table, context: LoadContext) -> int:
    touched = 0
    window = context.window
    for start in range(0, latest.num_rows, RECOMPUTE_CHUNK):
        with warehouse.staged("stg_alert_latest", "alert_latest", latest.slice(start, RECOMPUTE_CHUNK)) as staged:
            touched += warehouse.execute(
                _RECOMPUTE_ALERTS.format(staged=staged), (context.now, window.window_start, window.window_end)
            )
    return touched
