"""The simulator specs the CLI and the demo loop over: ports, start/stop, connections, demo data."""

from __future__ import annotations

import argparse
import json
import socket
from datetime import UTC, datetime

import pytest
import requests

from seccollect_dev.simulators import SIMULATORS, aws, connectsecure, netskope, qualys, trendmicro
from seccollect_dev.simulators.spec import SimulatorSpec


def _args(**extra: object) -> argparse.Namespace:
    """What the CLI's parser gives a spec's start(): the common options and each spec's own."""
    parser = argparse.ArgumentParser()
    for spec in SIMULATORS.values():
        spec.add_arguments(parser)
    args = parser.parse_args([])
    vars(args).update({"seed": 7, "hours": 0.25, **extra})
    return args


def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def test_one_mapping_names_every_simulator_once() -> None:
    assert SIMULATORS == {"netskope": netskope.SIMULATOR, "aws": aws.SIMULATOR, "connectsecure": connectsecure.SIMULATOR,
                          "qualys": qualys.SIMULATOR, "trendmicro": trendmicro.SIMULATOR}
    assert all(isinstance(spec, SimulatorSpec) and spec.name == name for name, spec in SIMULATORS.items())
    assert {name: spec.default_port for name, spec in SIMULATORS.items()} == {
        "netskope": 18801, "aws": 18802, "connectsecure": 18803, "qualys": 18804, "trendmicro": 18806}
    with pytest.raises(AttributeError):
        netskope.SIMULATOR.name = "other"  # type: ignore[misc]  # frozen


def test_netskope_spec_serves_the_tokens_its_connections_carry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_NETSKOPE_V1_TOKEN", "spec-v1")
    monkeypatch.setenv("SIM_NETSKOPE_V2_TOKEN", "spec-v2")
    running = netskope.SIMULATOR.start(_args(), "127.0.0.1", 0)
    try:
        conns = netskope.SIMULATOR.connections(running.url)
        assert set(conns) == {"netskope_demo", "netskope_demo_v1"}
        v2, v1 = conns["netskope_demo"], conns["netskope_demo_v1"]
        assert json.loads(v2["extra"]) == {"api_version": "v2", "base_url": running.url}
        assert json.loads(v1["extra"]) == {"api_version": "v1", "base_url": running.url}
        now = int(datetime.now(UTC).timestamp())
        r = requests.get(
            running.url + netskope.V2_DATA_PATHS["alert"],
            headers={"Netskope-Api-Token": v2["password"]},
            params={"insertionstarttime": now - 900, "insertionendtime": now, "limit": 5},
            timeout=10,
        )
        assert r.status_code == 200 and len(r.json()["result"]) == 5
        r = requests.post(
            running.url + netskope.V1_ALERTS_PATH, json={"token": v1["password"], "timeperiod": 3600}, timeout=10
        )
        assert r.json()["status"] == "success"
    finally:
        running.stop()
    assert _refused(running.url)


def test_aws_spec_runs_moto_and_fills_the_demo_buckets() -> None:
    from seccollect_dev.moto_server import s3_client
    from seccollect_dev.simulators.aws_bucket import CT_BUCKET

    running = aws.SIMULATOR.start(_args(), "127.0.0.1", 0)
    try:
        conn = aws.SIMULATOR.connections(running.url)["aws_demo"]
        assert json.loads(conn["extra"])["endpoint_url"] == running.url
        assert aws.SIMULATOR.populate is not None
        aws.SIMULATOR.populate(running.url, datetime.now(UTC))
        buckets = {b["Name"] for b in s3_client(running.url).list_buckets()["Buckets"]}
        assert CT_BUCKET in buckets
    finally:
        running.stop()
    assert _refused(running.url)


def test_demo_connections_are_the_warehouse_plus_every_simulators_own() -> None:
    from seccollect_dev.demo import demo_connections, simulator_urls

    urls = simulator_urls()
    assert urls == {"netskope": "http://127.0.0.1:18801", "aws": "http://127.0.0.1:18802",
                    "connectsecure": "http://127.0.0.1:18803", "qualys": "http://127.0.0.1:18804",
                    "trendmicro": "http://127.0.0.1:18806"}
    expected = {"seccollect_warehouse"}
    for name, spec in SIMULATORS.items():
        expected |= set(spec.connections(urls[name]))
    assert set(demo_connections()) == expected == {
        "seccollect_warehouse", "netskope_demo", "netskope_demo_v1", "aws_demo", "connectsecure_demo", "qualys_demo",
        "trendmicro_cas_demo"
    }
