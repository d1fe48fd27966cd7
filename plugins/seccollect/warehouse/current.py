"""The ``current_assets`` view: the assets that exist now, as the latest snapshot pulls saw them.

A snapshot content type loads a row only when an item is new or changed, and records removals in
``snapshot_state`` / ``snapshot_changes``; the Assets index therefore holds every version of every
asset ever seen. ``snapshot_state`` names the current version of each item (``record_id``) and whether
it was removed, so "what exists now" is the Assets rows that are the current, unremoved version of an
item. Assets collected by other patterns (not full pulls) have no snapshot state and are not listed.
"""

from __future__ import annotations

CURRENT_ASSETS_VIEW_SQL = """
CREATE OR REPLACE VIEW current_assets AS
SELECT s.dag_id, s.changed_window_start, s.changed_window_end, a.*
FROM assets a
JOIN snapshot_state s ON s.record_id = a.record_id AND s.content_type = a.content_type
WHERE s.removed_window_start IS NULL
"""
