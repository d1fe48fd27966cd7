"""The Trend Micro Cloud App Security connector: security event logs over the Log Retrieval API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from seccollect.registry import ConnectorSpec, Lazy
from seccollect.vendors.trendmicro.docs import NOTES
from seccollect.vendors.trendmicro.instance import TrendMicroCasInstance

#: The API serves only the last 72 hours (vendor-apis/trendmicro-cas.md §3.1).
RETENTION = timedelta(hours=72)

CONNECTION_TYPE = {
    "connection-type": "trendmicro_cas",
    "hook-class-name": "seccollect.vendors.trendmicro.hook.TrendMicroCasHook",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "login", "extra"],
        "relabeling": {"host": "Base URL", "password": "API Key"},
        "placeholders": {"host": "https://api.tmcas.trendmicro.com (your region's service URL)"},
    },
    "conn-fields": {
        "requests_per_minute": {
            "label": "Requests per minute",
            "description": "The API key's rate limit, shared by every instance, task and worker using this key "
            "(Trend Micro documents about 20; an older KB says 10).",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": 20},
        },
        "requests_per_day": {
            "label": "Requests per day",
            "description": "Optional daily limit of the key (an older Trend Micro KB gives 14,400).",
            "schema": {"type": ["integer", "null"], "minimum": 1},
        },
        "budget_key": {
            "label": "Shared budget name",
            "description": "Optional: connections whose keys share one limit (e.g. a per-customer limit) name "
            "the same budget; default: one budget per API key.",
            "schema": {"type": ["string", "null"]},
        },
    },
}

SPEC = ConnectorSpec(
    connector_type="trendmicro_cas",
    vendor="Trend Micro Cloud App Security",
    instance_model=TrendMicroCasInstance,
    build_tasks=Lazy("seccollect.vendors.trendmicro.dag:add_tasks"),
    connection_types=(CONNECTION_TYPE,),
    notes=NOTES,
    simulator="seccollect_dev.simulators.trendmicro:SIMULATOR",
    demo_instances=Path(__file__).parent / "demo",
    retention=RETENTION,
)
