"""The AWS connector's part of its DAGs' docs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seccollect.vendors.aws.delivery import MAX_DELIVERY_DELAY

if TYPE_CHECKING:
    from seccollect.vendors.aws.instance import AwsCloudTrailInstance

NOTES = """## How windows are read

Objects are chosen by the **time in their key** (CloudTrail: the delivery minute in the file name;
VPC flow logs: the 5-minute window of flow end times; WAF: the 5-minute folder), never by listing the
whole bucket: the prefix is expanded into the date folders of the window (one delimiter LIST first
discovers the accounts of a Control Tower `*` prefix), so LIST requests grow with window length x
accounts x regions, not with the bucket's history. Every record keeps its own event time
(`eventTime`, flow `end`, WAF `timestamp`) in `event_time`.

1. `wait_{st}` waits until the window's objects can exist: a log object of the window is present, or
   the delivery deadline (window end + {delay} min) has passed. Deferrable.
2. `list_{st}` lists `[window_start - {lookback} min, window_end)` so files that land late (even in an
   earlier date folder) are still found, and skips every `(key, ETag)` already in `object_ledger`,
   so each object is read exactly once. Digests, Insights, Config files and empty objects are skipped.
3. `collect_{st}` (one mapped task per batch of {batch} objects) reads and parses each object.
   An object that cannot be read (corrupt, or holding a value no warehouse can store) is quarantined
   (table `quarantine`, `source_ref` = key, with the reason) and none of its records load; the rest of
   the window loads, and the object ledger records it so later windows do not read it again.
4. `load_{st}` loads rows, quarantine and the object ledger in one transaction. CloudTrail records
   are deduplicated on `eventID`.
"""


def notes(instance: AwsCloudTrailInstance) -> str:
    """The "How windows are read" section of the instance's DAG docs."""
    return (
        NOTES.replace("{st}", instance.sub_type)
        .replace("{delay}", str(int(MAX_DELIVERY_DELAY[instance.sub_type].total_seconds() // 60)))
        .replace("{lookback}", str(instance.lookback_minutes))
        .replace("{batch}", str(instance.batch_size))
    )
