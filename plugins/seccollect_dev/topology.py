"""The settings ``make stack`` and docker-compose.yaml share: one source, so what ran is what compose says.

``make stack`` (:mod:`seccollect_dev.stack`) puts :data:`SHARED_SETTINGS` into every component's
environment; ``tests/test_docker_compose.py`` checks that docker-compose.yaml's common Airflow environment
holds the same values, that both name the same Airflow connections, and that the values that must
differ (host names of services, local paths) differ only where :data:`HOST_SPECIFIC` says why. What only
compose sets (:data:`COMPOSE_ONLY`) is a development necessity of its network, never a production setting.
"""

from __future__ import annotations

from seccollect.http.url import INSECURE_HTTP_HOSTS_ENV

__all__ = [
    "COMPOSE_ONLY",
    "HOST_SPECIFIC",
    "LIMITS_URL_ENV",
    "SHARED_SETTINGS",
    "STAGING_BUCKET",
    "STAGING_CONN_ID",
    "STAGING_URL",
    "WAREHOUSE_CONN_ID",
]

#: Staging is on S3 whenever more than one worker runs: a collect task on one worker writes what a
#: load task on another reads. Locally and in compose the bucket lives in moto.
STAGING_BUCKET = "seccollect-staging"
STAGING_URL = f"s3://{STAGING_BUCKET}/staging"
#: The Airflow connection that reaches the staging bucket (the demo's AWS connection, i.e. moto).
STAGING_CONN_ID = "aws_demo"
#: The warehouse the load tasks write to.
WAREHOUSE_CONN_ID = "seccollect_warehouse"
#: Where the per-credential request budgets and concurrency slots live (seccollect.http.budget,
#: seccollect.http.slots): the broker's Redis.
LIMITS_URL_ENV = "SECCOLLECT_LIMITS_URL"

#: Environment of every Airflow component, identical in make stack and docker-compose.yaml.
SHARED_SETTINGS: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
    "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    # Sensors wait in the triggerer instead of holding a worker slot.
    "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "true",
    # Stated although it is the provider's default: a message is acknowledged only once its task ended.
    "AIRFLOW__CELERY__TASK_ACKS_LATE": "true",
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    "SECCOLLECT_STAGING_URL": STAGING_URL,
    "SECCOLLECT_STAGING_CONN_ID": STAGING_CONN_ID,
}

#: Settings both set, to values that differ by where the service runs (key -> why).
HOST_SPECIFIC: dict[str, str] = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "PostgreSQL: the `postgres` service vs the machine's (or embedded) server",
    "AIRFLOW__CELERY__BROKER_URL": "Redis: the `redis` service vs the machine's 127.0.0.1:6379",
    "AIRFLOW__CELERY__RESULT_BACKEND": "the metadata database, wherever it is",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "the api-server's address",
    "AIRFLOW__API_AUTH__JWT_SECRET": "a secret: random per make stack, from .env in compose",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "the login: admin locally, $_AIRFLOW_WWW_USER_USERNAME in compose",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": "a path in the Airflow home vs the config mount",
    "CONNECTORS_DIR": "the demo instance files: assembled in the stack's folder vs where the image puts them",
    LIMITS_URL_ENV: "the broker's Redis (another database number in compose)",
}

#: Settings only docker-compose.yaml sets, never make stack (key -> why). Development only.
COMPOSE_ONLY: dict[str, str] = {
    INSECURE_HTTP_HOSTS_ENV: (
        "the demo connections reach the `simulators` service over plain http, and from the Airflow "
        "containers it is not loopback; make stack runs the simulators on 127.0.0.1, which needs no exception"
    ),
}
