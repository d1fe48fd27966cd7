"""``make airflow``: the Airflow UI (``airflow standalone``) on the demo's home, DAGs and connections.

Every simulator (the Netskope API, moto's S3/STS) is started on the demo's ports too, and moto's buckets
are filled, so triggering a DAG, a backfill or a connection's Test button from the UI works against
them. Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from seccollect_dev.demo import AIRFLOW_HOME, demo_environment, prepare_airflow, services


def main() -> int:
    env = {**os.environ, **demo_environment()}
    # `airflow standalone` starts its components as `airflow <command>` found on PATH: the venv's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    prepare_airflow(env)
    password_file = AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated"
    with services(env):
        print("Airflow UI: http://localhost:8080 (user 'admin'; password printed below and stored in "
              f"{password_file})", flush=True)
        airflow = Path(sys.executable).with_name("airflow")
        try:
            return subprocess.call([str(airflow), "standalone"], env=env)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
