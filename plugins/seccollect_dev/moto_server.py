"""A local S3 (moto in server mode) for tests and the demo; nothing here talks to real AWS.

Server mode rather than ``mock_aws()`` because the code under test - and Airflow's S3 hook in the
demo - must make real HTTP requests through botocore, exactly as against AWS; only the endpoint
changes.  The server binds to 127.0.0.1 on a free port (port 0), so parallel test runs do not clash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["DUMMY_CREDENTIALS", "reset_moto_server", "s3_client", "start_moto_server"]

#: Credentials moto accepts; never real ones (moto does not check them).
DUMMY_CREDENTIALS: dict[str, str] = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def start_moto_server(
    host: str = "127.0.0.1", port: int = 0, quiet: bool = True
) -> tuple[str, Callable[[], None]]:
    """Start moto's threaded server and return ``(endpoint_url, stop)``.

    ``port=0`` lets the OS choose a free port.  ``quiet`` silences werkzeug's per-request access log
    (it would otherwise print one line per S3 call).  ``stop()`` shuts the server down and joins its thread;
    it is idempotent.  State (buckets, objects) lives as long as the server: use distinct bucket names
    per test or start a new server.
    """
    from moto.server import ThreadedMotoServer  # heavy import; only when a server is wanted

    if quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            server.stop()

    return f"http://{bound_host}:{bound_port}", stop


def reset_moto_server(endpoint_url: str) -> None:
    """Drop every bucket and object of the server (moto's ``/moto-api/reset``), e.g. between tests."""
    _check_local(endpoint_url)
    import urllib.request

    request = urllib.request.Request(endpoint_url.rstrip("/") + "/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local server only
        response.read()


def _check_local(endpoint_url: str) -> None:
    if not endpoint_url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise ValueError(
            f"refusing non-local endpoint {endpoint_url!r}: this helper is for the local moto server"
        )


def s3_client(endpoint_url: str, region_name: str = "us-east-1") -> Any:
    """A boto3 S3 client for ``endpoint_url`` with dummy credentials and path-style addressing.

    Path style because virtual-host style would put the bucket into the host name
    (``bucket.127.0.0.1``), which does not resolve.  Retries are kept low so a broken test fails fast.
    """
    if not endpoint_url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise ValueError(
            f"refusing non-local endpoint {endpoint_url!r}: this helper is for the local moto server"
        )
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region_name,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"}),
        **DUMMY_CREDENTIALS,
    )
