"""S3LogHook against moto in server mode: both auth methods, listing, reading, request counting."""

from __future__ import annotations

import pytest

from seccollect.vendors.aws.hook import S3LogHook, normalize_etag
from tests.seccollect.vendors.aws.conftest import SOURCE_ACCESS_KEY, aws_connection

BUCKET = "seccollect-hook-test"


@pytest.fixture
def bucket(s3):
    s3.create_bucket(Bucket=BUCKET)
    for i in range(5):
        s3.put_object(
            Bucket=BUCKET,
            Key=f"AWSLogs/{100 + i}/CloudTrail/us-east-1/2025/01/01/f{i}.json.gz",
            Body=b"x" * i,
        )
    return BUCKET


def test_access_key_auth_lists_pages_and_counts_list_requests(aws_conn, bucket):
    hook = S3LogHook(aws_conn)
    objects = list(hook.iter_objects(bucket, "AWSLogs/", page_size=2))
    assert [o.key.rsplit("/", 1)[1] for o in objects] == [f"f{i}.json.gz" for i in range(5)]
    assert [o.size for o in objects] == [0, 1, 2, 3, 4]
    assert all(o.etag and '"' not in o.etag for o in objects)
    assert hook.list_requests == 3  # 5 keys, 2 per page
    assert hook.get_credentials().access_key == SOURCE_ACCESS_KEY

    assert hook.list_common_prefixes(bucket, "AWSLogs/") == [f"AWSLogs/{100 + i}/" for i in range(5)]
    assert hook.list_requests == 4


def test_iter_objects_stops_paging_when_the_caller_stops(aws_conn, bucket):
    hook = S3LogHook(aws_conn)
    first = next(hook.iter_objects(bucket, "AWSLogs/", page_size=1))
    assert first.key.endswith("f0.json.gz")
    assert hook.list_requests == 1


def test_open_object_streams_the_body_and_returns_the_served_etag(aws_conn, bucket, s3):
    key = "AWSLogs/103/CloudTrail/us-east-1/2025/01/01/f3.json.gz"
    hook = S3LogHook(aws_conn)
    body, etag = hook.open_object(bucket, key)
    assert body.read() == b"xxx" and etag == normalize_etag(s3.head_object(Bucket=bucket, Key=key)["ETag"])
    # A rewritten object is read as it is now, with the ETag of what was read (the ledger records that).
    s3.put_object(Bucket=bucket, Key=key, Body=b"rewritten")
    body, new_etag = hook.open_object(bucket, key)
    assert body.read() == b"rewritten" and new_etag != etag
    assert hook.request_counts["GetObject"] == 2 and hook.list_requests == 0


def test_iam_role_is_assumed_through_sts(aws_role_conn, bucket):
    hook = S3LogHook(aws_role_conn)
    credentials = hook.get_credentials()
    # moto's STS hands out temporary "ASIA…" keys with a session token: the role's, not the source keys.
    assert credentials.access_key.startswith("ASIA") and credentials.access_key != SOURCE_ACCESS_KEY
    assert credentials.token
    assert len(list(hook.iter_objects(bucket, "AWSLogs/"))) == 5


def test_region_proxy_and_ssl_settings(moto_url, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_TEST_CFG", aws_connection(moto_url, config_kwargs={"read_timeout": 7})
    )
    hook = S3LogHook(
        "aws_test_cfg", region_name="eu-west-1", proxy="http://proxy.internal:3128", verify=False
    )
    client = hook.get_conn()
    assert client.meta.region_name == "eu-west-1"  # the instance's region wins over the connection's
    assert client.meta.config.proxies == {
        "http": "http://proxy.internal:3128",
        "https": "http://proxy.internal:3128",
    }
    assert client.meta.config.read_timeout == 7  # the connection's config_kwargs are kept
    assert hook.verify is False

    plain = S3LogHook("aws_test_cfg")
    assert plain.get_conn().meta.region_name == "us-east-1"
    assert not plain.get_conn().meta.config.proxies


def test_aws_errors_explain_failures_in_the_guides_words(aws_conn, s3):
    from seccollect.http.errors import VendorApiError
    from seccollect.vendors.aws.hook import aws_errors

    hook = S3LogHook(aws_conn)
    with pytest.raises(VendorApiError) as err, aws_errors("ListObjectsV2 s3://no-such-bucket-x/AWSLogs"):
        list(hook.iter_objects("no-such-bucket-x", "AWSLogs/"))
    message = str(err.value)
    assert err.value.status == 404 and err.value.fatal
    assert "ListObjectsV2 s3://no-such-bucket-x/AWSLogs" in message and "NoSuchBucket" in message
    assert "Is the API URL entered correctly?" in message and SOURCE_ACCESS_KEY not in message


def test_unreachable_endpoint_is_a_retryable_error(monkeypatch):
    from seccollect.http.errors import VendorApiError
    from seccollect.vendors.aws.hook import aws_errors

    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DOWN", aws_connection("http://127.0.0.1:9", config_kwargs={"retries": {"max_attempts": 1}})
    )
    with pytest.raises(VendorApiError) as err, aws_errors("ListObjectsV2 s3://b/p"):
        list(S3LogHook("aws_down").iter_objects("some-bucket", "p/"))
    assert err.value.status is None and not err.value.fatal and "EndpointConnectionError" in str(err.value)
