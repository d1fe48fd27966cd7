"""ToyHook: a 'vendor API' that needs no network: it reports ``per_minute`` sightings every minute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import BaseHook


class ToyHook(BaseHook):
    conn_name_attr = "toy_conn_id"
    default_conn_name = "toy_default"
    conn_type = "toy"
    hook_name = "Toy"

    def __init__(self, toy_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.toy_conn_id = toy_conn_id

    def sightings(self, start: datetime, end: datetime, per_minute: int) -> Iterator[list[dict[str, Any]]]:
        self.get_connection(self.toy_conn_id)  # the connection must exist, like any vendor's
        minute = start.replace(second=0, microsecond=0)
        while minute < end:
            if minute >= start:
                yield [
                    {"id": f"{minute:%H%M}-{n}", "host": f"host-{n}", "seen": int(minute.timestamp())}
                    for n in range(per_minute)
                ]
            minute += timedelta(minutes=1)

    def test_connection(self) -> tuple[bool, str]:
        return True, "toy: OK"
