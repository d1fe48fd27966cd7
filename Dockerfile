# seccollect: the official Airflow image extended with the pinned requirements and this package.
# Pattern: https://airflow.apache.org/docs/docker-stack/build.html ("Extending the image").
# Built by docker-compose.yaml (`build: .`) and used by every Airflow component there, plus the
# `simulators` and `moto` demo services.
FROM apache/airflow:3.3.2-python3.11

# The official image runs as the non-root `airflow` user (UID 50000, GID 0); install as that user.
USER airflow

# 1) Third-party dependencies, pinned. Copied on its own so this layer stays cached until
#    requirements.txt changes. requirements.txt pins apache-airflow==3.3.2, so pip cannot move Airflow
#    away from the base image's version. `[celery]` is named because CeleryExecutor needs
#    apache-airflow-providers-celery, which the base image ships but requirements.txt does not pin:
#    naming it makes pip check the image's celery provider against the pins instead of ignoring it.
COPY --chown=airflow:0 requirements.txt /tmp/seccollect/requirements.txt
RUN pip install --no-cache-dir "apache-airflow[celery]==3.3.2" -r /tmp/seccollect/requirements.txt

# 2) The seccollect package (hooks, operators, triggers; not the dev-only seccollect_dev simulators and
#    demo, which .dockerignore leaves out and pyproject.toml does not package). It is installed, not only mounted:
#    the triggerer and the api-server (connection "Test" button) import triggers and hooks by dotted
#    path, outside the DAG folder, and the provider entry point in pyproject.toml needs the installed
#    distribution. --no-deps: everything it needs was pinned in step 1.
COPY --chown=airflow:0 pyproject.toml /tmp/seccollect/src/pyproject.toml
COPY --chown=airflow:0 plugins/ /tmp/seccollect/src/plugins/
RUN pip install --no-cache-dir --no-deps /tmp/seccollect/src \
    && rm -rf /tmp/seccollect

# The demo instance files of every registered connector, where docker-compose.yaml's CONNECTORS_DIR
# expects them (make stack assembles the same files; tests/test_docker_compose.py checks both agree).
COPY --chown=airflow:0 plugins/seccollect/vendors/*/demo/*.yaml /opt/airflow/demo-connectors/

# Fail the build, not `docker compose up`, if the executor, the package or moto's server can't import.
RUN python -c "import airflow.providers.celery, celery, redis, seccollect, moto.server"

# 3) DAG files and connector instance files. docker-compose.yaml bind-mounts both over these for
#    development; the copies make the image usable on its own (e.g. Kubernetes).
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 include/ /opt/airflow/include/
