"""AWS S3 log operators: list a window's objects, then read them in mapped batches.

``S3LogListOperator`` decides *which* objects a run reads: it expands the configured prefix into the
date folders of its window, of its look-back and of the previous window (one delimiter LIST first for a
Control Tower ``*``), lists only those, keeps log objects whose **key time** lies before the window's
end, and drops every ``(key, ETag)`` already in the warehouse's object ledger.  That is what makes late
objects safe: an object that lands after its own window's run (VPC flow logs arrive ~10 min late,
sometimes much later, into an *earlier* date folder) is found by a later run, read by it and counted
as *late*, and the ledger makes sure it is read exactly once (see :meth:`S3LogListOperator.list_window`
for which older objects a run takes).  Its result - batches of ``batch_size`` objects - drives dynamic
task mapping.

``S3LogBatchOperator`` (one mapped task per batch) streams each object, parses it with
:mod:`~seccollect.vendors.aws.log_formats` and stages enveloped rows; an object that cannot be read
(corrupt, or holding a record a warehouse cannot store) goes to quarantine with its key and reason, and
the rest of the window loads.  Every processed object gets an ``object_ledger`` row, staged beside the
records, so the load commits it together with them and no later window reads it again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from seccollect.operators.collect import (
    DEFAULT_WINDOW_END,
    DEFAULT_WINDOW_START,
    BaseCollectOperator,
    Collected,
    fail_fast,
    parse_window_bound,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from seccollect.records.envelope import EnvelopeContext, MsgOrigin
    from seccollect.staging.store import StagingWriter
    from seccollect.vendors.aws.hook import S3LogHook, S3ObjectInfo

__all__ = [
    "INDEX_OF",
    "S3LogBatchOperator",
    "S3LogListOperator",
    "split_batches",
]

#: Warehouse index per sub type (CONNECTORS.md: cloudtrail and waf -> AWS Events, vpcflow -> Traffic).
INDEX_OF: dict[str, str] = {"cloudtrail": "aws_events", "vpcflow": "traffic", "waf": "aws_events"}


def _hook(aws_conn_id: str | None, region_name: str | None, proxy: str | None, verify_ssl: bool) -> S3LogHook:
    from seccollect.vendors.aws.hook import S3LogHook

    return S3LogHook(aws_conn_id, region_name=region_name, proxy=proxy, verify=None if verify_ssl else False)


def split_batches(items: Sequence[Any], batch_size: int, max_batches: int | None = None) -> list[list[Any]]:
    """``items`` in consecutive batches of ``batch_size``; always at least one (possibly empty) batch.

    An empty window still maps one (empty) processing task, so its load runs and the window gets its
    ledger entry instead of the whole branch being skipped.  ``max_batches`` (Airflow's
    ``[core] max_map_length``) grows the batch size rather than failing a large backfill.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if max_batches and len(items) > batch_size * max_batches:
        batch_size = -(-len(items) // max_batches)
    return [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)] or [[]]


class S3LogListOperator(BaseOperator):
    """List the objects a window must read and split them into batches for dynamic task mapping.

    Returns a list of batches; each batch is a list of ``{"key", "etag", "size"}`` dicts, ordered by
    key time.  Listing statistics (prefixes, LIST requests, what was skipped and why) are logged and
    pushed as the XCom ``listing``.

    :param aws_conn_id: Airflow ``aws`` connection (keys, or keys + ``role_arn``).
    :param bucket: S3 bucket.
    :param prefix: configured prefix (no trailing ``/``; date variables, Control Tower ``*``).
    :param sub_type: ``cloudtrail``, ``vpcflow`` or ``waf``.
    :param region_name: bucket region; the connection's otherwise.
    :param proxy: optional proxy URI.
    :param verify_ssl: verify TLS certificates.
    :param lookback_minutes: how far before ``window_start`` key times are still collected (late files).
    :param batch_size: objects per mapped processing task.
    :param warehouse_conn_id: warehouse whose object ledger says what was already read.
    :param window_start: window start (templated); run conf ``window_start`` or the data interval.
    :param window_end: window end (templated); run conf ``window_end`` or the data interval.
    """

    template_fields: Sequence[str] = ("window_start", "window_end", "bucket", "prefix")
    ui_color = "#f3f8e8"

    def __init__(
        self,
        *,
        aws_conn_id: str | None,
        bucket: str,
        prefix: str,
        sub_type: str,
        region_name: str | None = None,
        proxy: str | None = None,
        verify_ssl: bool = True,
        lookback_minutes: int = 60,
        batch_size: int = 50,
        warehouse_conn_id: str = "seccollect_warehouse",
        window_start: str | datetime = DEFAULT_WINDOW_START,
        window_end: str | datetime = DEFAULT_WINDOW_END,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.bucket = bucket
        self.prefix = prefix
        self.sub_type = sub_type
        self.region_name = region_name
        self.proxy = proxy
        self.verify_ssl = verify_ssl
        self.lookback_minutes = lookback_minutes
        self.batch_size = batch_size
        self.warehouse_conn_id = warehouse_conn_id
        self.window_start = window_start
        self.window_end = window_end
        #: Why the prefix cannot match the bucket's layout, when the last listing had to ask.
        self.layout_problems: list[str] = []

    def list_window(
        self, hook: S3LogHook, start: datetime, end: datetime
    ) -> tuple[list[str], list[tuple[datetime, S3ObjectInfo]], list[tuple[datetime, S3ObjectInfo]], Counter[str]]:
        """``(listed prefixes, candidates, older, skip counts)`` for the window ``[start, end)``.

        The date folders of ``[start - max(lookback, window length), end)`` are listed: the look-back,
        and always the whole previous window, so an object that missed its own window's run is found
        by the next one whatever the look-back.  ``candidates`` are the log objects whose key time lies
        in ``[start - lookback, end)``, which a run reads unless the object ledger holds them (the
        look-back's re-read); ``older`` are those listed with an earlier key time: a run reads them only
        when their own window was already loaded without them (:meth:`late_objects`).  Both are
        ``(key time, object)`` pairs in key-time order.
        """
        from seccollect.vendors.aws.prefix_pattern import (
            check_layout,
            expand_all,
            is_log_object,
            parse_prefix,
        )

        lookback = timedelta(minutes=self.lookback_minutes)
        lo = start - lookback
        pattern = parse_prefix(self.prefix, self.sub_type)
        organisations: list[str] = []
        folders = expand_all(
            self.prefix,
            self.sub_type,
            start,
            end,
            list_common_prefixes=lambda folder: hook.list_common_prefixes(self.bucket, folder),
            lookback=max(lookback, end - start),
            skipped=organisations,
        )
        if pattern.has_wildcard and not folders:
            self.log.warning(
                "No account folder under s3://%s/%s yet: nothing to list",
                self.bucket,
                pattern.discovery_prefix,
            )
        skipped: Counter[str] = Counter()
        found: dict[str, tuple[datetime, S3ObjectInfo]] = {}
        older: dict[str, tuple[datetime, S3ObjectInfo]] = {}
        listed = 0
        for folder in folders:
            for obj in hook.iter_objects(self.bucket, folder):
                listed += 1
                if not is_log_object(obj.key, self.sub_type):
                    skipped["not a log file"] += 1  # digests, Insights, Config, folder markers, strays
                    continue
                when = pattern.key_time(obj.key)
                if when is None or when >= end:
                    skipped["key time outside the window"] += 1  # a later window's (or none)
                    continue
                if obj.size == 0:
                    # Nothing to read and nothing to lose; a re-delivered non-empty copy has a new
                    # ETag and is picked up then.
                    skipped["empty object"] += 1
                    continue
                (found if when >= lo else older)[obj.key] = (when, obj)

        if organisations:
            skipped["organisation folder where accounts were expected"] += len(organisations)
        if listed == 0 or organisations:
            # Nothing at all in the window's folders (or an organisation id where accounts should be):
            # either a quiet window or a prefix that cannot match the bucket. Only then is the layout
            # walked (a few delimiter LISTs), so the task log says which, and what is there instead.
            try:
                self.layout_problems = check_layout(
                    self.prefix, self.sub_type, lambda folder: hook.list_common_prefixes(self.bucket, folder),
                    self.bucket,
                )
            except Exception as exc:  # e.g. a policy that allows listing below the prefix only: not fatal
                self.log.warning("Could not check the prefix against the bucket's layout: %s", exc)
            for problem in self.layout_problems:
                self.log.warning("The prefix cannot match the bucket, so this window reads nothing: %s", problem)

        def ordered(items: dict[str, tuple[datetime, S3ObjectInfo]]) -> list[tuple[datetime, S3ObjectInfo]]:
            return sorted(items.values(), key=lambda item: (item[0], item[1].key))

        return folders, ordered(found), ordered(older), skipped

    def late_objects(
        self, warehouse: Any, older: Sequence[tuple[datetime, S3ObjectInfo]]
    ) -> tuple[list[tuple[datetime, S3ObjectInfo]], int]:
        """Of ``older`` (key time before the look-back), those whose own window is already in the
        collection ledger: it ran before they were delivered, so this run reads them as late items.

        The others are left to their own window, which lists its own date folders whatever happens
        here: it is running now (catch-up, a backfill) or has not run yet (the coverage view shows it
        missing). Taking them here would read them twice at once, or collect windows before the
        instance's start. Returns ``(late objects, how many were left to their window)``.
        """
        if not older:
            return [], 0
        rows = warehouse.query(
            "SELECT window_start, window_end FROM collection_ledger WHERE dag_id = ? AND content_type = ? "
            "AND window_end > ? AND window_start <= ?",
            (self.dag_id, self.sub_type, older[0][0], older[-1][0]),
        )
        loaded = [(parse_window_bound(s), parse_window_bound(e)) for s, e in rows]
        late = [item for item in older if any(s <= item[0] < e for s, e in loaded)]
        return late, len(older) - len(late)

    def execute(self, context: Context) -> list[list[dict[str, Any]]]:
        from airflow.sdk import conf

        from seccollect.operators.collect import run_window
        from seccollect.vendors.aws.hook import aws_errors
        from seccollect.vendors.aws.tables import consumed_objects
        from seccollect.warehouse import open_warehouse

        start, end = run_window(self, context, self.window_start, self.window_end)
        hook = _hook(self.aws_conn_id, self.region_name, self.proxy, self.verify_ssl)
        with fail_fast(), aws_errors(f"ListObjectsV2 s3://{self.bucket}/{self.prefix}", self.aws_conn_id):
            folders, found, older, skipped = self.list_window(hook, start, end)
        with open_warehouse(self.warehouse_conn_id) as warehouse:
            warehouse.ensure_schema()
            late_older, left = self.late_objects(warehouse, older)
            candidates = sorted([*late_older, *found], key=lambda item: (item[0], item[1].key))
            done = consumed_objects(warehouse, self.dag_id, self.bucket, [o.key for _, o in candidates])
        if left:
            skipped["key time before the look-back, left to its own window (not collected yet)"] += left
        # Late: its key time lies before this window, so its own window's run did not read it.
        todo = [
            {**o.to_xcom(), **({"late": True} if when < start else {})}
            for when, o in candidates
            if (o.key, o.etag) not in done
        ]
        late = sum(1 for o in todo if o.get("late"))
        batches = split_batches(todo, self.batch_size, conf.getint("core", "max_map_length", fallback=1024))
        listing = {
            "window": [start.isoformat(), end.isoformat()],
            "lookback_minutes": self.lookback_minutes,
            "prefixes": folders,
            "list_requests": hook.list_requests,
            "candidates": len(candidates),
            "already_consumed": len(candidates) - len(todo),
            "to_read": len(todo),
            "late": late,
            "batches": len(batches) if todo else 0,
            "skipped": dict(skipped),
            "layout_problems": self.layout_problems,
        }
        context["ti"].xcom_push(key="listing", value=listing)
        self.log.info(
            "Listed %d prefix(es) of s3://%s with %d LIST request(s): %d object(s) in [%s, %s), %d already "
            "read, %d to read in %d batch(es); skipped %s",
            len(folders),
            self.bucket,
            hook.list_requests,
            len(candidates),
            start - timedelta(minutes=self.lookback_minutes),
            end,
            len(candidates) - len(todo),
            len(todo),
            listing["batches"],
            dict(skipped) or "nothing",
        )
        if late:
            self.log.warning(
                "%d object(s) were delivered after their own window was listed; read now as late items: %s",
                late,
                ", ".join(o["key"] for o in todo if o.get("late")),
            )
        return batches


# --------------------------------------------------------------------------------------------------
# typed columns
# --------------------------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _arn_part(arn: Any, index: int) -> str | None:
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        return None
    parts = arn.split(":", 5)
    return _str(parts[index]) if len(parts) > index else None


def _cloudtrail_values(raw: dict[str, Any]) -> tuple[Any, ...]:
    get = raw.get
    identity = get("userIdentity")
    if not isinstance(identity, dict):
        identity = {}
    return (
        _str(get("recipientAccountId")) or _str(identity.get("accountId")),
        _str(get("awsRegion")),
        _str(get("eventSource")),
        _str(get("eventName")),
        _str(get("sourceIPAddress")),
        _str(identity.get("arn")),
        _str(get("errorCode")),
        None,
    )


def _cloudtrail_run_columns(fields: Sequence[Any]) -> tuple[list[Any], ...]:
    """:func:`_cloudtrail_values` of many records at once, column by column, from their
    :class:`~seccollect.vendors.aws.log_formats.CloudTrailFields` (every member a string or null,
    so ``_str`` reduces to "empty string is null")."""
    identities = [record.userIdentity for record in fields]
    accounts = [
        record.recipientAccountId or (identity.accountId if identity is not None else None) or None
        for record, identity in zip(fields, identities, strict=True)
    ]
    return (
        accounts,
        [record.awsRegion or None for record in fields],
        [record.eventSource or None for record in fields],
        [record.eventName or None for record in fields],
        [record.sourceIPAddress or None for record in fields],
        [(identity.arn or None) if identity is not None else None for identity in identities],
        [record.errorCode or None for record in fields],
        [None] * len(fields),
    )


def _waf_values(raw: dict[str, Any]) -> tuple[Any, ...]:
    request = raw.get("httpRequest") if isinstance(raw.get("httpRequest"), dict) else {}
    acl = raw.get("webaclId")
    return (
        _arn_part(acl, 4),
        _arn_part(acl, 3),
        _str(raw.get("httpSourceName")),
        _str(raw.get("terminatingRuleId")),
        _str(request.get("clientIp")),
        None,
        None,
        _str(raw.get("action")),
    )


def _vpcflow_values(raw: dict[str, Any]) -> tuple[Any, ...]:
    return (
        _str(raw.get("account-id")),
        _str(raw.get("interface-id")),
        _str(raw.get("srcaddr")),
        _str(raw.get("dstaddr")),
        _int(raw.get("srcport")),
        _int(raw.get("dstport")),
        _int(raw.get("protocol")),
        _int(raw.get("packets")),
        _int(raw.get("bytes")),
        _str(raw.get("action")),
        _str(raw.get("log-status")),
    )


_EVENTS_COLUMNS = (
    "account_id", "aws_region", "event_source", "event_name", "source_ip", "user_arn", "error_code", "action",
)
_TRAFFIC_COLUMNS = (
    "account_id", "interface_id", "src_addr", "dst_addr", "src_port", "dst_port", "protocol", "packets",
    "bytes", "action", "log_status",
)
#: Per sub type: the typed column names (``s3_key`` aside) and the function giving their values.
_TYPED: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], tuple[Any, ...]]]] = {
    "cloudtrail": (_EVENTS_COLUMNS, _cloudtrail_values),
    "waf": (_EVENTS_COLUMNS, _waf_values),
    "vpcflow": (_TRAFFIC_COLUMNS, _vpcflow_values),
}


# --------------------------------------------------------------------------------------------------
# processing
# --------------------------------------------------------------------------------------------------


def _problem(exc: Exception) -> str:
    """Why an object was set aside, in words a person can act on (never the offending text itself)."""
    from seccollect.vendors.aws.log_formats import CorruptObjectError

    if isinstance(exc, CorruptObjectError):
        return str(exc)
    if isinstance(exc, UnicodeEncodeError) and "surrogate" in exc.reason:
        # A JSON escape of one half of a UTF-16 pair (e.g. \ud800): valid JSON, but no text at all
        # in UTF-8, so neither warehouse can store the record.
        char = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        return f"a string holds a lone surrogate ({char}), which no warehouse can store"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: {exc.reason} at byte {exc.start}"
    return f"{type(exc).__name__}: {exc}"


class S3LogBatchOperator(BaseCollectOperator):
    """Read one batch of listed objects, stage their records, quarantine corrupt objects.

    Used mapped: ``S3LogBatchOperator.partial(...).expand(objects=list_task.output)``.  Each object is
    all-or-nothing: a :class:`~seccollect.vendors.aws.log_formats.CorruptObjectError` discards what was
    read from it, records ``{source_ref: key, reason}`` for the quarantine table and goes on with the
    next object.  Network and permission errors are *not* quarantined: they fail the task, which
    retries.  Records keep their own event time (``eventTime``, flow ``end``, WAF ``timestamp``).

    Speed and memory: each object is read once (one GET; a quarantined one once more, to hash its bytes
    for its quarantine entry), streamed through the parser and staged in
    an all-or-nothing block (:meth:`StagingWriter.atomic`): every ``max_buffered_records`` records
    (or the first run past it) become one Arrow table, built column by column (no dict per row);
    CloudTrail records keep their exact JSON text as ``raw`` (no re-serialisation) and come from the
    parser in runs (:class:`~seccollect.vendors.aws.log_formats.CloudTrailRun`): only the members
    the index needs are decoded, and the texts arrive as an Arrow array.  Full Parquet parts of a
    large object are written while it is read, so memory is bounded by the part size whatever the
    object size, and they are deleted again if the object turns out to be corrupt.

    Stages, beside the records, one ``object_ledger`` row per object read or quarantined (with its ETag
    and record count) and a quarantine entry per object set aside; its figures count ``objects``,
    ``records``, ``quarantined``, ``vanished`` (deleted after listing), ``late`` (objects whose key time
    lies before the window: delivered after their own window was listed; the load adds them to the
    ledger's ``late_items``) and ``get_requests``.

    :param aws_conn_id: Airflow ``aws`` connection.
    :param bucket: S3 bucket.
    :param sub_type: ``cloudtrail``, ``vpcflow`` or ``waf`` (also the content type).
    :param objects: the batch: ``{"key", "etag", "size"}`` dicts from :class:`S3LogListOperator`.
    :param region_name: bucket region; the connection's otherwise.
    :param proxy: optional proxy URI.
    :param verify_ssl: verify TLS certificates.
    :param max_buffered_records: records of one object turned into one Arrow table at a time.
    :param kwargs: :class:`~seccollect.operators.collect.BaseCollectOperator` arguments (tenant,
        instance_name, window_start, window_end …); ``content_type`` defaults to ``sub_type``.
    """

    ui_color = "#e8f4fd"
    pattern: ClassVar[str] = "objects"
    #: Per-object problems that set the object aside instead of failing the task: a corrupt object, or
    #: one holding a value no warehouse can store (bytes that are not UTF-8, a lone surrogate, a number
    #: out of range). Network and permission errors are not among them: they fail the task, which retries.
    OBJECT_PROBLEMS: ClassVar[tuple[type[Exception], ...]] = (UnicodeError, ValueError, TypeError, OverflowError)

    def __init__(
        self,
        *,
        aws_conn_id: str | None,
        bucket: str,
        sub_type: str,
        objects: Sequence[dict[str, Any]] | None = None,
        region_name: str | None = None,
        proxy: str | None = None,
        verify_ssl: bool = True,
        max_buffered_records: int = 10_000,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("content_type", sub_type)
        super().__init__(**kwargs)
        if sub_type not in INDEX_OF:
            raise ValueError(f"unknown sub type {sub_type!r}; allowed: {', '.join(INDEX_OF)}")
        self.aws_conn_id = aws_conn_id
        self.bucket = bucket
        self.sub_type = sub_type
        self.objects = list(objects or [])
        self.region_name = region_name
        self.proxy = proxy
        self.verify_ssl = verify_ssl
        self.max_buffered_records = max_buffered_records

    def _read_object(
        self, hook: S3LogHook, writer: StagingWriter, key: str, envelope: EnvelopeContext, origin: MsgOrigin
    ) -> tuple[int, str]:
        """Stage all records of one object, or none (raises one of :attr:`OBJECT_PROBLEMS`, carrying the
        ETag read); ``(records, etag)``."""
        import pyarrow as pa

        from seccollect.records.envelope import canonical_json
        from seccollect.vendors.aws.log_formats import CloudTrailRun, parse_object

        table = INDEX_OF[self.sub_type]
        names, typed_values = _TYPED[self.sub_type]
        body, etag = hook.open_object(self.bucket, key)
        count = 0
        ids: list[str] = []
        times: list[datetime] = []
        texts: list[pa.Array] = []  # runs' texts come as Arrow arrays, single records' as strings
        singles: list[str] = []
        typed: list[list[Any]] = [[] for _ in names]

        def texts_so_far() -> None:
            """Single records' texts (exact path) become one Arrow chunk, in order with the runs'."""
            nonlocal singles
            if singles:
                texts.append(pa.array(singles, pa.string()))
                singles = []

        def stage() -> None:
            texts_so_far()
            columns: dict[str, Any] = dict(zip(names, typed, strict=True))
            columns["s3_key"] = key
            raw_texts = pa.chunked_array(texts, pa.string())
            writer.add_arrow(
                table,
                envelope.arrow_rows(
                    table, origin, vendor_ids=ids, event_times=times, raw_texts=raw_texts, typed=columns
                ),
            )

        with closing(body), writer.atomic():
            try:
                for item in parse_object(body, self.sub_type, key=key, runs=True):
                    if isinstance(item, CloudTrailRun):
                        texts_so_far()
                        ids += item.vendor_ids
                        times += item.event_times
                        texts.append(item.texts)
                        for column, values in zip(typed, _cloudtrail_run_columns(item.fields), strict=True):
                            column += values
                    else:
                        ids.append(item.vendor_id)
                        times.append(item.event_time)
                        singles.append(item.text if item.text is not None else canonical_json(item.raw))
                        for column, value in zip(typed, typed_values(item.raw), strict=True):
                            column.append(value)
                    if len(ids) >= self.max_buffered_records:
                        count += len(ids)
                        stage()
                        ids, times, texts, typed = [], [], [], [[] for _ in names]
                if ids:
                    count += len(ids)
                    stage()
            except self.OBJECT_PROBLEMS as exc:
                # Nothing of this object stays staged (atomic); the ledger records the version read.
                exc.etag = etag  # type: ignore[attr-defined]
                raise
        return count, etag

    def _quarantine_entry(self, hook: S3LogHook, key: str, etag: str, reason: str, listed_size: Any) -> Any:
        """The quarantine entry of an object set aside: its reason, the SHA-256 and size of the version
        read (its bytes too when small). The bytes are read again for that - one more GET, only for an
        object being quarantined - rather than hashing every object's bytes while parsing (~8% of the
        collect's CPU, for what is rare)."""
        from seccollect.records.quarantine import MAX_RAW_BYTES, QuarantineEntry, readable
        from seccollect.vendors.aws.hook import aws_errors

        try:
            with aws_errors(f"GetObject s3://{self.bucket}/{key}", self.aws_conn_id):
                sha256, size, data = hook.digest_object(self.bucket, key, etag, keep=MAX_RAW_BYTES)
        except Exception as exc:  # rewritten or deleted since, or S3 unreachable: the reason still counts
            self.log.warning("Could not re-read s3://%s/%s to hash it: %s", self.bucket, key, exc)
            return QuarantineEntry(source_ref=key, reason=reason, raw_bytes=listed_size)
        return QuarantineEntry(
            source_ref=key,
            reason=reason,
            raw=readable(data) if data is not None else None,
            raw_sha256=sha256,
            raw_bytes=size,
        )

    def collect(self, writer: StagingWriter, envelope: EnvelopeContext, context: Context) -> Collected:
        from seccollect.http.errors import VendorApiError
        from seccollect.records.envelope import MsgOrigin
        from seccollect.records.intake import quarantine
        from seccollect.vendors.aws.hook import aws_errors
        from seccollect.vendors.aws.log_formats import MSG_CLASS, MSG_ORIGIN

        hook = _hook(self.aws_conn_id, self.region_name, self.proxy, self.verify_ssl)
        origin = MsgOrigin(MSG_CLASS[self.sub_type], **MSG_ORIGIN[self.sub_type])
        quarantined: list[str] = []
        vanished: list[str] = []
        records = 0
        late = 0  # objects whose key time lies before this window (the list task marks them)

        def ledger(key: str, etag: str, count: int, status: str) -> None:
            writer.add("object_ledger", {
                "dag_id": self.dag_id, "bucket": self.bucket, "key": key, "etag": etag, "records": count,
                "status": status, "window_start": envelope.window_start, "window_end": envelope.window_end,
                "loaded_at": envelope.ingest_time,
            })

        for obj in self.objects:
            key = obj["key"]
            try:
                with aws_errors(f"GetObject s3://{self.bucket}/{key}", self.aws_conn_id):
                    count, etag = self._read_object(hook, writer, key, envelope, origin)
            except self.OBJECT_PROBLEMS as exc:
                # All-or-nothing: nothing of this object stays staged. A corrupt object (truncated gzip,
                # broken JSON) and one holding a value no warehouse can store are alike set aside, with
                # the reason, and recorded in the ledger so later windows do not read them again.
                reason = _problem(exc)
                etag = getattr(exc, "etag", None) or obj.get("etag", "")
                self.log.warning("Quarantined s3://%s/%s: %s", self.bucket, key, reason)
                quarantine(writer, self._quarantine_entry(hook, key, etag, reason, obj.get("size")))
                quarantined.append(key)
                ledger(key, etag, 0, "quarantined")
                late += bool(obj.get("late"))
                continue
            except VendorApiError as exc:
                if exc.status != 404 or not (exc.vendor_message or "").startswith("NoSuchKey"):
                    raise  # fatal ones (403, NoSuchBucket) fail the task at once, others retry
                # Deleted between listing and reading (e.g. a lifecycle rule): nothing left to read.
                self.log.warning("s3://%s/%s disappeared after it was listed; skipped", self.bucket, key)
                vanished.append(key)
                continue
            records += count
            late += bool(obj.get("late"))
            ledger(key, etag, count, "loaded")
        if quarantined:
            self.log.warning(
                "%d of %d object(s) quarantined (their records are not loaded): %s",
                len(quarantined), len(self.objects), ", ".join(quarantined),
            )
        self.log.info(
            "Read %d object(s), %d record(s) of %s with %d GET request(s)",
            len(self.objects) - len(quarantined) - len(vanished),
            records,
            self.sub_type,
            hook.request_counts["GetObject"],
        )
        return Collected(figures={
            "objects": len(self.objects),
            "records": records,
            "quarantined": len(quarantined),
            "vanished": len(vanished),
            "late": late,
            "get_requests": hook.request_counts["GetObject"],
        })
