"""When AWS delivers log objects: how long after a window its objects have normally landed."""

from __future__ import annotations

from datetime import timedelta

#: How long after ``window_end`` every object whose key time lies in the window has normally landed
#: (vendor-apis/aws-s3-logs.md §1.4).  The key time is the *delivery* minute for CloudTrail, so its
#: objects exist as soon as they are named; 5 minutes absorb S3 visibility and clock skew.  A VPC
#: flow log object keyed ``t`` holds flows ending in ``[t, t+5min)`` and is delivered ~10 min after
#: that, best effort: 15 minutes.  WAF publishes every 5 minutes with the previous 5 minutes of
#: records: 10 minutes.  These bound the *wait*, not correctness: an object later than this is still
#: collected by the next windows (look-back + object ledger).
MAX_DELIVERY_DELAY: dict[str, timedelta] = {
    "cloudtrail": timedelta(minutes=5),
    "vpcflow": timedelta(minutes=15),
    "waf": timedelta(minutes=10),
}
