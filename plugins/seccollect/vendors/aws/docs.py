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
2. `list_{st}` lists the date folders of the window, of its look-back ({lookback} min) and always of
   the previous window, and skips every `(key, ETag)` already in `object_ledger`, so each object is
   read exactly once. Digests, Insights, Config files and empty objects are skipped.
   **Late objects** (delivered after their own window was listed, even into an earlier date folder)
   are read by the next run that lists them and counted as `late` in the ledger (`late_items`; the
   coverage view shows that window as late): every unread object keyed within the look-back, the
   previous window included, and any older one found in the listed folders whose own window has
   already been loaded. An object keyed before the look-back and outside the listed folders is only
   found by re-running its own window, so choose a look-back of at least one interval plus the sub
   type's usual lateness (here: {advice} min).
3. `collect_{st}` (one mapped task per batch of {batch} objects) reads and parses each object.
   An object that cannot be read (corrupt, or holding a value no warehouse can store) is quarantined
   (table `quarantine`, `source_ref` = key, with the reason) and none of its records load; the rest of
   the window loads, and the object ledger records it so later windows do not read it again.
4. `load_{st}` loads rows, quarantine and the object ledger in one transaction. CloudTrail records
   are deduplicated on `eventID`.
"""


WARNING = """**Warning: the look-back ({lookback} min) is shorter than one interval ({interval} min) plus the
usual lateness of {st} logs ({late} min).** An object delivered later than the look-back allows
and keyed in another date folder than the listed ones is not found by the next windows: set
`lookback_minutes` to at least {advice} in the instance file.

"""


def lookback_advice(instance: AwsCloudTrailInstance) -> int:
    """The smallest look-back (minutes) that still finds objects as late as the sub type usually is:
    one interval (an object may miss its own window's listing by up to that) plus that lateness."""
    return instance.interval + int(MAX_DELIVERY_DELAY[instance.sub_type].total_seconds() // 60)


def notes(instance: AwsCloudTrailInstance) -> str:
    """The "How windows are read" section of the instance's DAG docs, after a warning when the
    instance's look-back is shorter than :func:`lookback_advice`."""
    advice = lookback_advice(instance)
    warning = ""
    if instance.lookback_minutes < advice:
        warning = (
            WARNING.replace("{lookback}", str(instance.lookback_minutes))
            .replace("{interval}", str(instance.interval))
            .replace("{late}", str(advice - instance.interval))
            .replace("{advice}", str(advice))
            .replace("{st}", instance.sub_type)
        )
    return warning + (
        NOTES.replace("{st}", instance.sub_type)
        .replace("{advice}", str(advice))
        .replace("{delay}", str(int(MAX_DELIVERY_DELAY[instance.sub_type].total_seconds() // 60)))
        .replace("{lookback}", str(instance.lookback_minutes))
        .replace("{batch}", str(instance.batch_size))
    )
