"""S3LogHook: the amazon provider's ``S3Hook`` plus the few thin methods a windowed log reader needs.

Everything about credentials comes from the provider and the Airflow ``aws`` connection, unchanged:

* **Access key / secret key**: connection login and password.
* **IAM role**: the same source-account keys plus ``role_arn`` in the connection's extra; the provider
  assumes the role through STS (``assume_role_kwargs`` are passed on, e.g. ``ExternalId``) and
  refreshes the temporary credentials itself, so long backfills do not expire.
* ``endpoint_url``, ``region_name``, ``config_kwargs`` and ``service_config`` (e.g. an STS endpoint)
  in the extra.  Note that the provider never uses the global ``endpoint_url`` for the assume-role
  STS call; a non-AWS STS endpoint goes into ``service_config: {"sts": {"endpoint_url": ...}}``.

What is added here, and why:

* :meth:`S3LogHook.iter_objects`: the provider's paginated ``iter_file_metadata`` with the fields a
  ledger needs (key, ETag without quotes, size), as a generator, so a caller can stop paging as soon
  as it has seen enough and memory never holds a whole prefix (``list_keys`` would).
* :meth:`S3LogHook.list_common_prefixes`: ``list_prefixes`` with ``Delimiter='/'`` (Control Tower
  account discovery); named so the call site says what it is for.
* :meth:`S3LogHook.open_object`: one ``GetObject`` returning the streaming body and the ETag of the
  bytes actually served.  ``get_key()`` would add a ``HeadObject`` per object and ``read_key()``
  decodes UTF-8 (unusable for gzip).  The ledger records the ETag of what was read.
* **Request counting** (:attr:`S3LogHook.request_counts`, :attr:`S3LogHook.list_requests`): every S3
  API call made through the hook's client is counted per operation, from botocore's own event
  system, so tests and the benchmark can prove that LIST cost follows the window, not the bucket.
* The instance's **proxy** is merged into the botocore ``Config`` (``proxies``) on top of whatever
  ``config_kwargs`` the connection holds, and it applies to the STS call of an assumed role as well.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

__all__ = ["S3LogHook", "S3ObjectInfo", "aws_errors", "normalize_etag"]

#: ListObjectsV2 returns at most 1,000 keys per request; ask for the maximum so LIST count is minimal.
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class S3ObjectInfo:
    """One listed object: what the object ledger and the processing tasks need."""

    key: str
    etag: str  # without the surrounding quotes S3 puts around it
    size: int

    def to_xcom(self) -> dict[str, Any]:
        return {"key": self.key, "etag": self.etag, "size": self.size}


def normalize_etag(value: str | None) -> str:
    """ETags come quoted from S3 (``"5d41…"``); the ledger stores them bare."""
    return (value or "").strip().strip('"')


@contextmanager
def aws_errors(endpoint: str, conn_id: str | None = None) -> Iterator[None]:
    """Turn botocore failures into :class:`~seccollect.http.errors.VendorApiError`.

    The error then explains itself with the guides' HTTP table (403: "the permission or scope of a
    valid credential is not right …") plus AWS's own code and message, and collect tasks fail at once
    on 400/401/403/404 (retrying cannot fix a missing bucket or permission) while throttling, 5xx and
    network errors are retried.  botocore has already retried transient errors by then.

    :param endpoint: what was being done, e.g. ``ListObjectsV2 s3://bucket/prefix`` (no secrets).
    :param conn_id: the Airflow ``aws`` connection used; the final message names it (keys, role_arn,
        region and endpoint are set there).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from seccollect.http.errors import VendorApiError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        raise VendorApiError(
            vendor="AWS",
            endpoint=endpoint,
            status=int(status) if status else None,
            vendor_message=f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": "),
            attempts=int(meta.get("RetryAttempts", 0)) + 1,
            conn_id=conn_id,
        ) from exc
    except BotoCoreError as exc:  # no HTTP response: endpoint unreachable, timeout, bad credentials setup
        raise VendorApiError(vendor="AWS", endpoint=endpoint, detail=f"{type(exc).__name__}: {exc}",
                             conn_id=conn_id) from exc


class S3LogHook(S3Hook):
    """Read log objects from one S3 bucket through the amazon provider.

    :param aws_conn_id: Airflow ``aws`` connection (keys, or keys + ``role_arn`` in extra).
    :param region_name: bucket region; overrides the connection's ``region_name`` when set.
    :param proxy: optional proxy URI for every AWS call (S3 and the assume-role STS call).  A proxy
        that needs a password belongs in the connection instead (``config_kwargs.proxies``), because
        instance files hold no secrets.
    :param verify: ``False`` disables TLS certificate verification (logged as a warning); ``None``
        keeps the connection's setting (verification on by default).
    :param kwargs: passed to :class:`~airflow.providers.amazon.aws.hooks.s3.S3Hook`.
    """

    def __init__(
        self,
        aws_conn_id: str | None = S3Hook.default_conn_name,
        *,
        region_name: str | None = None,
        proxy: str | None = None,
        verify: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, **kwargs)
        self.proxy = proxy or None
        #: S3 API calls made through this hook's client, per operation name (``ListObjectsV2`` …).
        self.request_counts: Counter[str] = Counter()
        if verify is False:
            self.log.warning("TLS certificate verification is DISABLED for AWS connection %r", aws_conn_id)

    # --- configuration --------------------------------------------------------------------------

    @property
    def config(self) -> Any:
        """The connection's botocore ``Config`` with the instance proxy merged in.

        Merged rather than passed to the constructor, because a hook-level ``Config`` would replace
        the connection's ``config_kwargs`` entirely (provider precedence), dropping e.g. its retries.
        """
        base = super().config
        if not self.proxy:
            return base
        from botocore.config import Config

        return base.merge(Config(proxies={"http": self.proxy, "https": self.proxy}))

    def get_client_type(self, *args: Any, **kwargs: Any) -> Any:
        client = super().get_client_type(*args, **kwargs)
        # "before-call" fires once per API call (i.e. per page of a paginated listing), which is what
        # S3 bills and what the LIST-cost guarantees talk about.
        client.meta.events.register("before-call.s3", self._count_call)
        return client

    def _count_call(self, event_name: str = "", **_: Any) -> None:
        self.request_counts[event_name.rsplit(".", 1)[-1]] += 1

    @property
    def list_requests(self) -> int:
        """Number of ``ListObjectsV2`` requests (pages) made so far, delimiter listings included."""
        return self.request_counts["ListObjectsV2"]

    # --- thin additions -------------------------------------------------------------------------

    def iter_objects(
        self, bucket: str, prefix: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[S3ObjectInfo]:
        """Objects under ``prefix`` in key order, one ``ListObjectsV2`` page at a time.

        A generator: stop iterating and no further page is requested.

        :param bucket: bucket name.
        :param prefix: listing prefix (no wildcard: ``*`` would be listed literally).
        :param page_size: keys per request (S3 caps it at 1,000).
        """
        for meta in self.iter_file_metadata(prefix, bucket_name=bucket, page_size=page_size):
            yield S3ObjectInfo(meta["Key"], normalize_etag(meta.get("ETag")), int(meta.get("Size") or 0))

    def list_common_prefixes(self, bucket: str, prefix: str) -> list[str]:
        """The ``CommonPrefixes`` (sub-folders) directly under ``prefix`` (``Delimiter='/'``), all pages.

        :param bucket: bucket name.
        :param prefix: a folder, ending in ``/``.
        """
        return self.list_prefixes(bucket_name=bucket, prefix=prefix, delimiter="/", page_size=MAX_PAGE_SIZE)

    def check_prefix(self, bucket: str, prefix: str, sub_type: str) -> tuple[bool, str]:
        """An instance's test, in the shape of ``test_connection()``: can ``prefix`` match the bucket?

        Refuses (``False``) a prefix whose folders are not in the bucket - e.g. the older Control Tower
        form ``<o-id>/AWSLogs/*/…`` on a bucket with the organisation trail layout, where it would take
        the organisation folder and AWS Config's account folders for accounts and find nothing - with
        what was found instead and, when it can tell, the prefix that matches.

        :param bucket: bucket name.
        :param prefix: the configured prefix.
        :param sub_type: ``cloudtrail``, ``vpcflow`` or ``waf``.
        """
        from seccollect.vendors.aws.prefix_pattern import check_layout, parse_prefix

        try:
            parse_prefix(prefix, sub_type)
            with aws_errors(f"ListObjectsV2 s3://{bucket}/{prefix}"):
                problems = check_layout(prefix, sub_type, lambda folder: self.list_common_prefixes(bucket, folder), bucket)
        except Exception as exc:  # a refused prefix (PrefixError), S3 refusing the listing (VendorApiError)
            return False, str(exc)
        if problems:
            return False, " | ".join(problems)
        return True, f"s3://{bucket}/{prefix} matches the bucket's layout"

    def digest_object(self, bucket: str, key: str, etag: str, *, keep: int) -> tuple[str, int, bytes | None]:
        """``(SHA-256, size, bytes)`` of the object version ``etag`` (``GetObject`` with ``If-Match``,
        so a version rewritten since is refused rather than hashed in its place), read in chunks; the
        bytes only when there are at most ``keep`` of them.

        :param bucket: bucket name.
        :param key: object key.
        :param etag: the ETag of the version to hash (bare, as the ledger stores it).
        :param keep: the most bytes returned as such.
        """
        import hashlib

        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "IfMatch": f'"{etag}"'}
        if self._requester_pays:
            params["RequestPayer"] = "requester"
        body = self.get_conn().get_object(**params)["Body"]
        sha, size, head = hashlib.sha256(), 0, bytearray()
        try:
            while chunk := body.read(1 << 20):
                sha.update(chunk)
                size += len(chunk)
                if len(head) <= keep:
                    head += chunk[: keep + 1 - len(head)]
        finally:
            body.close()
        return sha.hexdigest(), size, bytes(head) if size <= keep else None

    def open_object(self, bucket: str, key: str) -> tuple[Any, str]:
        """``GetObject``: the streaming body (read it in chunks, close it) and the served ETag.

        Not pinned to the listed ETag: an object rewritten since it was listed is read as it is now,
        and the ledger records the version actually read (a pinned read would fail, and the new version
        might never be listed again once its key time falls out of the look-back).

        :param bucket: bucket name.
        :param key: object key.
        """
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if self._requester_pays:
            params["RequestPayer"] = "requester"
        response = self.get_conn().get_object(**params)
        return response["Body"], normalize_etag(response.get("ETag"))
