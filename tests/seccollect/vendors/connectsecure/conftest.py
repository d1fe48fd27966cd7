"""Fixtures of the ConnectSecure tests: a simulator on loopback and an Airflow connection to it."""

from __future__ import annotations

import json

import pytest

CS_TENANT = "acme"
CS_CLIENT_ID = "cs-client-7f3a"
CS_CLIENT_SECRET = "cs-secret-4b9d-very-secret"
CS_CONN_ID = "connectsecure_test"


@pytest.fixture
def cs_dataset():
    from seccollect_dev.simulators.connectsecure import ConnectSecureDataset

    return ConnectSecureDataset(seed=5, assets=120, remediation=60, plans=12, suppressions=30, companies=3)


@pytest.fixture
def cs_sim(cs_dataset, monkeypatch: pytest.MonkeyPatch):
    """A ConnectSecure simulator on 127.0.0.1 and the connection ``connectsecure_test`` pointing at it."""
    from seccollect_dev.simulators.base import SimulatorServer
    from seccollect_dev.simulators.connectsecure import ConnectSecureSimulator

    app = ConnectSecureSimulator(cs_dataset, tenant=CS_TENANT, client_id=CS_CLIENT_ID, client_secret=CS_CLIENT_SECRET)
    with SimulatorServer(app) as server:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CS_CONN_ID.upper()}",
            json.dumps({"conn_type": "connectsecure", "host": server.url, "login": CS_CLIENT_ID,
                        "password": CS_CLIENT_SECRET, "extra": {"tenant_name": CS_TENANT}}),
        )
        app.url = server.url
        yield app


@pytest.fixture
def no_waits(monkeypatch: pytest.MonkeyPatch):
    """Retries of the HTTP layer and the authorize retry wait take no time (unit tests)."""
    import seccollect.vendors.connectsecure.hook as hook_module
    from seccollect.http.client import RetryPolicy

    monkeypatch.setattr(hook_module, "CREATE_CUSTOMER_RETRY_WAIT", 0.0)
    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, attempt, rng=None: 0.0)
