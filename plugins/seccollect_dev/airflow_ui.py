"""``make airflow``: the Airflow UI on the demo's home, DAGs and connections, until Ctrl-C.

A whole Airflow (:mod:`seccollect_dev.airflow_stack`: api-server, scheduler, dag-processor, triggerer)
on the home's PostgreSQL metadata database, with every simulator on the demo's ports: the Netskope API
generates data for the next 24 hours as well (served as its clock reaches it) and moto's buckets are
filled every minute with what has been delivered since, so scheduled runs, backfills, replays and the
connections' Test button work against them. A component that exits is started again. Ctrl-C (or
SIGTERM) stops every process within seconds.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from seccollect_dev.airflow_stack import exit_at_once, log_progress, stop_on_signals
from seccollect_dev.demo import (
    AIRFLOW_HOME,
    DEMO_DIR,
    UI_PORT,
    airflow_stack,
    demo_environment,
    running_stack,
    services,
)

#: Named, not ``__name__``: run as ``python -m`` this module is ``__main__``.
log = logging.getLogger("seccollect_dev.airflow_ui")


def main() -> int:
    running = running_stack()
    if running is not None:
        print(f"An Airflow of this home already runs ({running['owner']}, pid {running['pid']}) at {running['url']}.",
              file=sys.stderr)
        return 2
    stop_on_signals()
    log_progress()
    env = {**os.environ, **demo_environment()}
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    try:
        with services(env, keep_filling=True, ahead_hours=24) as urls, \
                airflow_stack(env, owner="make airflow", api_port=UI_PORT) as stack:
            print("Simulators: " + ", ".join(f"{name} {url}" for name, url in urls.items()))
            print(f"Airflow UI: http://localhost:{UI_PORT}  user 'admin', password {stack.password!r} "
                  f"(stored in {AIRFLOW_HOME / 'simple_auth_manager_passwords.json.generated'})")
            print(f"Component logs: {DEMO_DIR / 'logs'}.  Ctrl-C stops everything.", flush=True)
            while True:
                for name in stack.restart_exited():
                    print(f"airflow {name} had exited; started it again (see {DEMO_DIR / 'logs' / name}.log)",
                          flush=True)
                time.sleep(2)
    except KeyboardInterrupt:
        log.info("Stopped.")
    return 0


if __name__ == "__main__":
    exit_at_once(main())  # everything is stopped by now: no need to wait for the interpreter's teardown
