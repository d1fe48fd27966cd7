"""The AWS simulator: moto's S3/STS server, filled with the bucket scenario of :mod:`.aws_bucket`.

Why moto rather than a simulator of our own: the AWS connectors talk to S3 through botocore and
Airflow's amazon provider, whose protocol moto already speaks. What is ours is the data
(:mod:`seccollect_dev.simulators.aws_bucket`) and how the demo reaches it (:data:`SIMULATOR`).
Faults are not injected here: moto has no fault middleware.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from seccollect_dev.simulators.spec import SimulatorSpec, StartedServer

__all__ = ["DEFAULT_PORT", "SIMULATOR"]

#: The demo's fixed port for moto.
DEFAULT_PORT = 18802


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    """moto takes no options of ours."""


def _start(args: argparse.Namespace, host: str, port: int) -> StartedServer:
    from seccollect_dev.moto_server import start_moto_server  # moto is a heavy import

    url, stop = start_moto_server(host=host, port=port)
    return StartedServer(url, stop)


def _connections(url: str) -> dict[str, dict[str, Any]]:
    """The demo's AWS connection (dummy keys: moto does not check them)."""
    return {
        "aws_demo": {
            "conn_type": "aws",
            "login": "demo-access-key",
            "password": "demo-secret-key",
            # The provider's Test button calls STS GetCallerIdentity on the STS endpoint of service_config,
            # never on the global endpoint_url: without it, Test would ask the real AWS.
            "extra": json.dumps({"endpoint_url": url, "region_name": "us-east-1",
                                 "service_config": {"sts": {"endpoint_url": url}}}),
        }
    }


def _populate(url: str, now: datetime) -> None:
    from seccollect_dev.demo_data import populate_demo_buckets

    populate_demo_buckets(url, now)


SIMULATOR = SimulatorSpec(
    name="aws",
    default_port=DEFAULT_PORT,
    add_arguments=_add_arguments,
    start=_start,
    connections=_connections,
    populate=_populate,
    help="aws: moto's S3/STS server (moto's own /moto-api/reset); no fault injection.\n",
)
