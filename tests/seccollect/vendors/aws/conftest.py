"""Shared AWS fixtures: a moto S3/STS server on 127.0.0.1, Airflow ``aws`` connections pointing at it,
and the simulator's scenario (its buckets and ground truth).  Nothing here can reach real AWS: the
endpoint is the local server, and the credentials are dummies moto accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

AWS_CONN_ID = "aws_test"
AWS_ROLE_CONN_ID = "aws_test_role"
SOURCE_ACCESS_KEY = "AKIASOURCEKEYEXAMPLE"
ROLE_ARN = "arn:aws:iam::999988887777:role/seccollect-reader"


def aws_connection(moto_url: str, **extra: Any) -> str:
    """JSON of an ``aws`` Airflow connection with access/secret keys, pointed at ``moto_url``."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": SOURCE_ACCESS_KEY,
            "password": "source-secret-key",
            "extra": {"endpoint_url": moto_url, "region_name": "us-east-1", **extra},
        }
    )


@pytest.fixture
def aws_conn(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Connection ``aws_test``: Access Key / Secret Key auth."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}", aws_connection(moto_url))
    return AWS_CONN_ID


@pytest.fixture
def aws_role_conn(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Connection ``aws_test_role``: source keys + IAM role ARN, assumed through moto's STS.

    The provider never sends the assume-role call to the global ``endpoint_url``; the STS endpoint is
    given per service.
    """
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{AWS_ROLE_CONN_ID.upper()}",
        aws_connection(
            moto_url,
            role_arn=ROLE_ARN,
            assume_role_kwargs={"RoleSessionName": "seccollect-test"},
            service_config={"sts": {"endpoint_url": moto_url}},
        ),
    )
    return AWS_ROLE_CONN_ID


@pytest.fixture
def scenario():
    """The default simulator scenario (2024-12-31 23:30 .. 2025-01-01 00:30) with its ground truth.

    Built per test (70 ms) because it remembers what it uploaded, and every test starts from an
    emptied server.
    """
    from seccollect_dev.simulators.aws_bucket import build_scenario

    return build_scenario()


@pytest.fixture
def duckdb_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Connection ``seccollect_warehouse`` on a DuckDB file of this test; returns its path."""
    path = str(tmp_path / "warehouse.duckdb")
    monkeypatch.setenv("AIRFLOW_CONN_SECCOLLECT_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": path}))
    return path
