# Two commands matter on a fresh machine (Python 3.11):  make demo   and   make test
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export SCARF_NO_ANALYTICS := true
export DO_NOT_TRACK := 1

.PHONY: demo test venv airflow stack lint bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
# The build leaves plugins/seccollect.egg-info beside the package; plugins/ is on sys.path (below), so
# Airflow would see a second "seccollect" distribution and register its plugin twice (a "Plugin Import
# Error" in the UI).
	rm -rf plugins/seccollect.egg-info
# The dev-only package plugins/seccollect_dev (simulators, demo) is not part of the distribution
# (pyproject.toml packages only seccollect): a .pth file puts plugins/ on the venv's sys.path instead.
	echo "$(CURDIR)/plugins" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/seccollect_dev.pth"
	touch $@

venv: $(VENV)/.installed

## The demo: simulators + moto, every demo connector DAG over the last hour, a summary table.
demo: venv
	$(PY) -m seccollect_dev.demo --fresh

## The whole test suite (PostgreSQL tests skip when the server is absent, unless REQUIRE_SERVICES=1).
## The tests that run a whole Airflow (marker `scheduler`) spend most of their time waiting on its
## scheduler: they run beside the others, in a second pytest process, and their output follows.
test: venv
	$(VENV)/bin/ruff check .
	@tmp=$$(mktemp -d); \
	$(PY) -m pytest -q -p no:logging -m scheduler --basetemp=$$tmp/scheduler > $$tmp/scheduler.log 2>&1 & pid=$$!; \
	$(PY) -m pytest -q -p no:logging -m "not scheduler" --basetemp=$$tmp/rest; rest=$$?; \
	wait $$pid; scheduler=$$?; \
	echo "---- the tests that run a whole Airflow (pytest -m scheduler):"; cat $$tmp/scheduler.log; \
	rm -rf $$tmp; \
	if [ $$rest -ne 0 ] || [ $$scheduler -ne 0 ]; then exit 1; fi

## The Airflow UI on the demo's home, DAGs and connections (run `make demo` first).
airflow: venv
	$(PY) -m seccollect_dev.airflow_ui

## The production topology without Docker: CeleryExecutor with two workers on Redis, PostgreSQL
## metadata and warehouse, S3 staging (moto), the simulators. Ctrl-C stops every process.
stack: venv
	$(PY) -m seccollect_dev.stack

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/dag_generation.py
	$(PY) bench/load_throughput.py
	$(PY) bench/alert_mapping.py
	$(PY) bench/cloudtrail_throughput.py
	$(PY) bench/stack_throughput.py
	$(PY) bench/qualys_throughput.py

clean:
	rm -rf .airflow .demo .stack
