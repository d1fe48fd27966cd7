"""The Trend Micro Cloud App Security connector's part of its DAGs' docs."""

NOTES = """## How windows are read

Each run asks `GET /v1/siem/security_events` for every selected log event type (one task per event type)
with both `start` and `end` always sent (`yyyy-mm-ddThh:mm:ss.000Z`: the API's 5-minute defaults never
apply), the run's data interval shifted back by the settle lag (`settle_lag_seconds`), and follows
`next_link` as given until there is none. Consecutive windows share their boundary second, so a record
on a boundary may be served to both: the record id derives from `log_item_id`, and the load keeps it once.

The API serves only the last **72 hours**. A window older than that is refused before any request (the
completeness view shows it as `lost_to_retention`, not `missing`).

Every request with one API key, from any instance, task, run, worker or the Test button, draws from one
shared request budget (about 20 per minute; set `requests_per_minute` / `requests_per_day` in the
connection's extra). A task that would wait longer than `max_budget_wait_seconds` before its first
request defers (its worker slot is freed) and comes back when the budget has room. A 429 that still
arrives is waited out and the same page asked again; no page is skipped.

A record that cannot be handled (not an object, no `log_item_id`, a `detection_time` that is not a time)
is set aside in `quarantine` with its reason; the rest of the window loads.
"""
