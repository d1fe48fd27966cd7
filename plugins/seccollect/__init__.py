"""seccollect: Airflow DAGs that collect security data from vendor APIs and S3 into a warehouse."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

    Registering the connection types here is what makes the UI's connection form show each vendor's
    fields and lets the Test button call the hook's ``test_connection()``. The UI metadata is given
    declaratively (``ui-field-behaviour`` / ``conn-fields``) so the API server need not import hooks;
    every registered connector (:mod:`seccollect.registry`) contributes its own connection types.
    """
    from seccollect import registry

    return {
        "package-name": "seccollect",
        "name": "Security data collectors",
        "description": "Hooks, operators and sensors that collect security data into a warehouse.",
        "versions": [__version__],
        "connection-types": [dict(ct) for spec in registry.specs() for ct in spec.connection_types],
    }
