"""The Netskope connector's part of its DAGs' docs."""

NOTES = """## How windows are read

Netskope makes records queryable late. Each run asks for the records whose **insertion time**
(`_insertion_epoch_timestamp`) lies in the run's data interval shifted back by the settle lag
(`settle_lag_seconds`), i.e. `(start - lag, end - lag]` in whole seconds. Insertion time never changes
once a record is queryable, so consecutive windows tile time: a record that arrives after its event's
window closed is collected exactly once, by a later window. Each record keeps its own event time
(`timestamp`) in `event_time`. Duplicates with the same `_id` collapse on `record_id`. The range
actually queried is kept with the window in `collection_ledger.cursor`.

A record that cannot be handled (not a JSON object, a `timestamp` that is not a Unix time, bytes that
are not UTF-8 …) is set aside in `quarantine` with its reason; the rest of the window loads.

Pops and tunnels are snapshots taken once a day (the run whose window holds 00:00 UTC): the whole list
is pulled and compared with the last pull; only new and changed entries are loaded (so the latest row
per entry is its current state) and entries that disappeared are recorded in `snapshot_changes`.
Breach, Connection and Malsite alerts are mapped into `alerts` (task `map_alerts`), one row per
(tenant, user, id) with first/last seen and the raw alert count.
"""
