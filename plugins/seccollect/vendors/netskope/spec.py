"""The Netskope connector: web-security alerts and events over REST API v1 or v2."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from seccollect.registry import ConnectorSpec, Lazy
from seccollect.vendors.netskope.alert_load import recompute_alerts
from seccollect.vendors.netskope.docs import NOTES
from seccollect.vendors.netskope.instance import NetskopeInstance
from seccollect.vendors.netskope.tables import TABLES

CONNECTION_TYPE = {
    "connection-type": "netskope",
    "hook-class-name": "seccollect.vendors.netskope.hook.NetskopeHook",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "login", "extra"],
        "relabeling": {"host": "Netskope Tenant Name", "password": "API Key"},
        "placeholders": {"host": "companya (not companya.goskope.com)"},
    },
    "conn-fields": {
        "api_version": {
            "label": "API Version",
            "description": "v1 or v2; must match the version of the API token.",
            "schema": {"type": ["string", "null"], "enum": ["v1", "v2", None], "default": "v2"},
        },
        "proxy": {
            "label": "Proxy URL",
            "description": "Optional HTTP(S) proxy, with its user and password if it needs them.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "base_url": {
            "label": "Base URL override",
            "description": "Only for the local simulator; leave empty for https://<tenant>.goskope.com.",
            "schema": {"type": ["string", "null"]},
        },
    },
}

SPEC = ConnectorSpec(
    connector_type="netskope",
    vendor="Netskope",
    instance_model=NetskopeInstance,
    build_tasks=Lazy("seccollect.vendors.netskope.dag:add_tasks"),
    connection_types=(CONNECTION_TYPE,),
    tables=TABLES,
    post_load=recompute_alerts,
    notes=NOTES,
    simulator="seccollect_dev.simulators.netskope:SIMULATOR",
    demo_instances=Path(__file__).parent / "demo",
    # The longest look-back the API documents (``timeperiod`` up to 90 days): catch-up after an outage
    # goes no further back, and the coverage view calls older windows lost to retention.
    retention=timedelta(days=90),
)
