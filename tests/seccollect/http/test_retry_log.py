"""Retries say why, one short line per attempt, and the final error names the connection to fix."""

from __future__ import annotations

import logging

import pytest

from seccollect.http.client import RetryPolicy, VendorHttpClient
from seccollect.http.errors import VendorApiError


def test_each_retry_of_a_refused_connection_is_logged_with_its_short_cause() -> None:
    from seccollect_dev.airflow_stack import free_port

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("seccollect.http.client")
    logger.addHandler(handler)

    client = VendorHttpClient(vendor="Acme", base_url=f"http://127.0.0.1:{free_port()}", conn_id="acme_conn",
                              retry=RetryPolicy(max_attempts=3, backoff_base=0.01), sleep=lambda _: None)
    try:
        with pytest.raises(VendorApiError) as failed:
            client.get_json("/items?token=abc")
    finally:
        logger.removeHandler(handler)
    retries = [r.getMessage() for r in records if "attempt" in r.getMessage()]
    assert [m.split(" failed")[0] for m in retries] == ["Acme GET /items attempt 1", "Acme GET /items attempt 2"]
    for message in retries:
        assert "[Errno 111] Connection refused" in message and len(message) < 200, message
        assert "token=abc" not in message
    final = str(failed.value)
    assert "failed after 3 attempt(s)" in final and "Connection refused" in final
    assert "Check the Airflow connection 'acme_conn': its host/URL, port and proxy" in final


def test_an_aws_error_names_the_aws_connection_and_what_to_check() -> None:
    from botocore.exceptions import ClientError

    from seccollect.vendors.aws.hook import aws_errors

    error = ClientError({"Error": {"Code": "NoSuchBucket", "Message": "The specified bucket does not exist"},
                        "ResponseMetadata": {"HTTPStatusCode": 404}}, "ListObjectsV2")
    with pytest.raises(VendorApiError) as failed, aws_errors("ListObjectsV2 s3://logs/AWSLogs/", "aws_prod"):
        raise error
    text = str(failed.value)
    assert "NoSuchBucket" in text and "Check the Airflow connection 'aws_prod'" in text
