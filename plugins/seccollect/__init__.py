"""seccollect: Airflow DAGs that collect security data from vendor APIs and S3 into a warehouse."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

    Registering the connection types here is what makes the UI's connection form show each vendor's
    fields and lets the Test button call the hook's ``test_connection()``. The UI metadata is given
    declaratively (``ui-field-behaviour`` / ``conn-fields``) so the API server need not import hooks.
    """
    return {
        "package-name": "seccollect",
        "name": "Security data collectors",
        "description": "Hooks, operators and sensors that collect security data into a warehouse.",
        "versions": [__version__],
        "connection-types": [
            {
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
                    "base_url": {
                        "label": "Base URL override",
                        "description": "Only for the local simulator; leave empty for https://<tenant>.goskope.com.",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
        ],
    }
