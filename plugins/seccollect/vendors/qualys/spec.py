"""The Qualys connector: hosts and host detections from the VM/VMDR FO API, streamed page by page."""

from __future__ import annotations

from pathlib import Path

from seccollect.registry import ConnectorSpec, Lazy
from seccollect.vendors.qualys.docs import NOTES
from seccollect.vendors.qualys.instance import QualysInstance
from seccollect.vendors.qualys.tables import VIEWS

CONNECTION_TYPE = {
    "connection-type": "qualys",
    "hook-class-name": "seccollect.vendors.qualys.hook.QualysHook",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "extra"],
        "relabeling": {"host": "Qualys API URL", "login": "Username", "password": "Password"},
        "placeholders": {"host": "https://qualysapi.qg2.apps.qualys.com/ (your platform's API server)"},
    },
    "conn-fields": {
        "api_version": {
            "label": "API Version",
            "description": "5.0 (default); 2.0-4.0 reached end of support in December 2025.",
            "schema": {"type": ["string", "null"], "enum": ["5.0", "4.0", "3.0", "2.0", None], "default": "5.0"},
        },
        "concurrency_limit": {
            "label": "Concurrency limit",
            "description": "Calls the subscription may run at once (X-Concurrency-Limit-Limit; Standard tier: 2). "
            "Every task of every instance on this account shares it.",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": 2},
        },
        "rate_limit": {
            "label": "Rate limit (calls per window)",
            "description": "Calls of one API function the subscription may make per window (X-RateLimit-Limit; "
            "Standard tier: 300). Every task of every instance on this account draws on it.",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": 300},
        },
        "rate_window_seconds": {
            "label": "Rate limit window (seconds)",
            "description": "The rate limit's window (X-RateLimit-Window-Sec; Standard tier: 3600).",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": 3600},
        },
        "proxy": {
            "label": "Proxy URL",
            "description": "Optional HTTP(S) proxy, with its user and password if it needs them.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
    },
}

SPEC = ConnectorSpec(
    connector_type="qualys",
    vendor="Qualys",
    instance_model=QualysInstance,
    build_tasks=Lazy("seccollect.vendors.qualys.dag:add_tasks"),
    connection_types=(CONNECTION_TYPE,),
    notes=NOTES,
    simulator="seccollect_dev.simulators.qualys:SIMULATOR",
    demo_instances=Path(__file__).parent / "demo",
    views=VIEWS,
)
