"""The ConnectSecure connector's part of its DAGs' docs."""

NOTES = """## How windows are read

ConnectSecure V4 has **no server-side time filter**, so every run pulls the whole list of each
content type and compares it with the last successful pull (the snapshot pattern):

* **Identity and change**: a row is identified by its `id` (assets, suppressions) or, for remediation
  rows that have none, by the documented composite key (`company_id`/`asset_id`/`solution_id` for
  `get_remediation`, `company_id`/`solution_id` for plan endpoints; a hash of the fix's fields where
  `solution_id` is missing). A content hash of the raw row tells whether it changed. Only new and
  changed rows are loaded, stamped with the run's window; rows that disappeared are recorded as
  `removed` in `snapshot_changes` with the window that noticed it. `snapshot_state` holds the current
  version of every row; the `current_assets` view lists the assets that exist now.
* **Re-runs and backfills** compare with the state as of the latest pull: they never load a row twice.
  The state moves only in the load's transaction, so a pull that fails half-way changes nothing, and
  a load older than the latest pull changes nothing at all.
* **Paging while the list changes**: pages are read with `skip`/`limit` in a stable order
  (`order_by=id asc`). Each request starts one row before where the last page ended, so the page must
  begin with a row already read: if rows were inserted before it, the rows already read are skipped; if
  rows were removed before it (the list slid forward), the pull steps back a page until it finds a row
  it has read. A row that exists for the whole pull is read exactly once; one added or removed during
  the pull is read at most once, and the next pull settles it.
* **Asset is always collected**: an instance file that leaves it out of `content_types` still gets it
  (hosts depend on it).
* **Timestamps** come without a zone and are read as **UTC**. A row's `event_time` is its `updated`
  time (remediation rows: `last_vul_discovered`), else the window's end. Large integer ids are kept as
  exact integers (never through a float) and as decimal text in `vendor_id`.

A row that cannot be handled (no identity, a time that does not parse, not a JSON object …) is set aside
in `quarantine` with its reason; the rest of the pull loads.
"""
