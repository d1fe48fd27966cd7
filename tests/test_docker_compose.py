"""Static checks of docker-compose.yaml, Dockerfile and .dockerignore.

Docker does not run where these tests run, so nothing is built or started. Instead:

* docker-compose.yaml is validated against the Compose Specification JSON schema, vendored at
  tests/fixtures/compose-spec.json (copied from the PyPI package check-jsonschema 0.39.0, which
  vendors compose-spec/compose-spec ``schema/compose-spec.json``; see tests/fixtures/README.md);
* the settings the project relies on are asserted one by one (executor, connection testing,
  services, health checks, dependencies, demo connections, the pool);
* the Dockerfile is parsed to check that it installs requirements.txt and this package.

YAML anchors and ``<<`` merge keys are resolved by ``yaml.safe_load`` the same way Compose does, so
every service is checked as Compose will see it. ``${VAR:-default}`` interpolation is not applied.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIREMENTS = ROOT / "requirements.txt"
SCHEMA_FILE = Path(__file__).parent / "fixtures" / "compose-spec.json"

BASE_IMAGE = "apache/airflow:3.3.2-python3.11"

# Airflow service -> the `airflow` sub-command it runs (airflow-init runs a bash script).
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
    "airflow-init": None,
}
# Profile-only helpers kept from the official file; they share the common block as well.
AIRFLOW_HELPER_SERVICES = ("airflow-cli", "flower")
DEMO_SERVICES = ("warehouse", "simulators", "moto")
REQUIRED_SERVICES = ("postgres", "redis", *AIRFLOW_SERVICES, *DEMO_SERVICES)

# Environment keys a service may set differently from x-airflow-common.
ALLOWED_ENV_OVERRIDES = {"airflow-init": {"_PIP_ADDITIONAL_REQUIREMENTS"}}

POOL_COMMAND = ["warehouse_loads", "1", "DuckDB single writer / warehouse load concurrency"]


# --------------------------------------------------------------------------------------------------
# Helpers (each has a negative control below, so a broken helper cannot make the checks vacuous)
# --------------------------------------------------------------------------------------------------


def schema_errors(document: object, schema: dict) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def env_of(service: dict) -> dict[str, str]:
    """A service's `environment`, in either of Compose's forms (mapping or list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def depends_on_names(service: dict) -> list[str]:
    deps = service.get("depends_on") or []
    return list(deps) if isinstance(deps, list | dict) else []


def depends_on_conditions(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def build_dockerfile(service: dict) -> Path | None:
    """The Dockerfile a service is built from, or None when it has no `build`."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    else:
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    return (ROOT / context / dockerfile).resolve()


def command_tokens(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def strip_proj_dir(source: str) -> str:
    return re.sub(r"^\$\{AIRFLOW_PROJ_DIR:-\.\}/", "", source).removeprefix("./")


def volume_pairs(service: dict) -> dict[str, str]:
    """Bind-mount source (relative to the project) -> container path, for short-syntax volumes."""
    pairs = {}
    for volume in service.get("volumes") or []:
        volume = strip_proj_dir(volume) if isinstance(volume, str) else volume
        if isinstance(volume, str) and ":" in volume:
            source, target = volume.split(":")[:2]
            pairs[source.rstrip("/")] = target.rstrip("/")
    return pairs


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and `\\` continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
    if pending:
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
    return instructions


def copy_destinations(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """COPY source -> container path of that source (flags such as --chown are skipped)."""
    copies = {}
    for keyword, args in instructions:
        if keyword != "COPY":
            continue
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        *sources, dest = parts
        for source in sources:
            name = source.rstrip("/")
            target = (
                dest.rstrip("/") + "/" + Path(name).name
                if dest.endswith("/") and len(sources) == 1 and not source.endswith("/")
                else dest
            )
            copies[name] = target.rstrip("/")
    return copies


def pip_installs(instructions: list[tuple[str, str]]) -> list[tuple[int, list[str]]]:
    """(instruction index, pip install arguments) for every `pip install` inside a RUN."""
    installs = []
    for index, (keyword, args) in enumerate(instructions):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", args):
            tokens = shlex.split(command)
            for start in range(len(tokens) - 1):
                if tokens[start].endswith("pip") and tokens[start + 1] == "install":
                    installs.append((index, tokens[start + 2 :]))
                    break
    return installs


def dockerignore_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def is_dockerignored(path: str, patterns: list[str]) -> bool:
    """Approximation of Docker's rules: root-anchored patterns, a match also covers everything below."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def requirement_pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", re.sub(r"\[.*\]", "", name)).lower().strip()] = version.strip()
    return pins


def conn_env(env: dict[str, str], conn_id: str) -> dict:
    return json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def common(compose) -> dict:
    return compose["x-airflow-common"]


@pytest.fixture(scope="module")
def common_env(common) -> dict[str, str]:
    return env_of(common)


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


# --------------------------------------------------------------------------------------------------
# Compose Specification schema
# --------------------------------------------------------------------------------------------------


def test_vendored_schema_is_a_valid_json_schema(schema):
    assert schema.get("title") == "Compose Specification"
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_compose_file_matches_compose_spec(compose, schema):
    assert schema_errors(compose, schema) == []


def test_schema_check_rejects_invalid_compose(compose, schema):
    """Negative control: the same validation must flag a typo'd key and a wrongly typed field."""
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-worker"]["helthcheck"] = {"test": ["CMD", "true"]}
    broken["services"]["airflow-apiserver"]["ports"] = "8080:8080"
    errors = "\n".join(schema_errors(broken, schema))
    assert "helthcheck" in errors
    assert "services/airflow-apiserver/ports" in errors


# --------------------------------------------------------------------------------------------------
# Services and the shared Airflow block
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REQUIRED_SERVICES)
def test_required_service_exists(services, name):
    assert name in services, f"service {name!r} missing from docker-compose.yaml"


def test_common_block_builds_from_the_dockerfile(common):
    assert build_dockerfile(common) == DOCKERFILE.resolve()
    assert DOCKERFILE.is_file()
    assert common.get("image"), "name the built image so all services reuse one build"


@pytest.mark.parametrize("name", [*AIRFLOW_SERVICES, *AIRFLOW_HELPER_SERVICES])
def test_airflow_service_shares_the_common_block(services, common, common_env, name):
    service = services[name]
    assert build_dockerfile(service) == DOCKERFILE.resolve(), f"{name} is not built from ./Dockerfile"
    assert service.get("image") == common["image"]
    assert service.get("volumes") == common["volumes"]
    if name != "airflow-init":  # runs as root to chown the shared folders, as in the official file
        assert service.get("user") == common["user"]
    env = env_of(service)
    allowed = ALLOWED_ENV_OVERRIDES.get(name, set())
    differing = {key for key, value in common_env.items() if key not in allowed and env.get(key) != value}
    assert not differing, f"{name} lacks or overrides common environment keys: {sorted(differing)}"


@pytest.mark.parametrize("name", ["simulators", "moto"])
def test_demo_service_runs_the_project_image(services, common, name):
    service = services[name]
    assert build_dockerfile(service) == DOCKERFILE.resolve()
    assert service.get("image") == common["image"]


@pytest.mark.parametrize(("name", "subcommand"), [(n, c) for n, c in AIRFLOW_SERVICES.items() if c])
def test_airflow_service_command(services, name, subcommand):
    assert command_tokens(services[name]) == subcommand.split()


@pytest.mark.parametrize(
    ("name", "image"),
    [("postgres", "postgres:16"), ("warehouse", "postgres:16"), ("redis", "redis:7.2-bookworm")],
)
def test_backing_service_image(services, name, image):
    assert services[name].get("image") == image


# --------------------------------------------------------------------------------------------------
# Airflow settings
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor"),
        ("AIRFLOW__CORE__TEST_CONNECTION", "Enabled"),
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "false"),
        ("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "true"),
        ("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "true"),
        ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://airflow-apiserver:8080/execution/"),
    ],
)
def test_airflow_setting(common_env, key, expected):
    assert common_env.get(key) == expected


@pytest.mark.parametrize(
    ("key", "scheme", "host"),
    [
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql", "postgres"),
        ("AIRFLOW__CELERY__RESULT_BACKEND", "db+postgresql", "postgres"),
        ("AIRFLOW__CELERY__BROKER_URL", "redis", "redis"),
    ],
)
def test_metadata_db_and_broker_urls(common_env, services, key, scheme, host):
    url = urlsplit(common_env[key])
    assert url.scheme.split("+")[0] == scheme.split("+")[0] and url.scheme.startswith(scheme)
    assert url.hostname == host and host in services


def test_execution_api_url_points_at_the_api_server(common_env, services):
    url = urlsplit(common_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert url.hostname in services
    assert command_tokens(services[url.hostname]) == ["api-server"]
    assert any(str(p).split(":")[-1] == str(url.port) for p in services[url.hostname].get("ports", []))


# --------------------------------------------------------------------------------------------------
# Health checks and dependencies
# --------------------------------------------------------------------------------------------------


def test_apiserver_healthcheck(services):
    service = services["airflow-apiserver"]
    assert "8080:8080" in service.get("ports", [])
    test = " ".join(service["healthcheck"]["test"])
    assert "http://localhost:8080/api/v2/version" in test


def test_scheduler_healthcheck(services, common_env):
    test = " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    assert "http://localhost:8974/health" in test
    # The :8974 health server only runs when this is on.
    assert common_env.get("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK") == "true"


def test_depends_on_references_exist(services):
    problems = []
    for name, service in services.items():
        for dep in depends_on_names(service):
            if dep not in services:
                problems.append(f"{name} -> {dep} (no such service)")
            elif dep == name:
                problems.append(f"{name} depends on itself")
    assert not problems, problems


def test_service_healthy_targets_have_healthchecks(services):
    """`condition: service_healthy` on a service without a healthcheck never becomes true."""
    problems = [
        f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
        for name, service in services.items()
        for dep, condition in depends_on_conditions(service).items()
        if condition == "service_healthy" and dep in services and "healthcheck" not in services[dep]
    ]
    assert not problems, problems


@pytest.mark.parametrize("name", [n for n in AIRFLOW_SERVICES if n != "airflow-init"])
def test_airflow_service_waits_for_init(services, name):
    assert depends_on_conditions(services[name]).get("airflow-init") == "service_completed_successfully"


@pytest.mark.parametrize("name", ["airflow-worker", "airflow-triggerer", "airflow-apiserver"])
def test_components_that_reach_the_demo_backends_wait_for_them(services, name):
    conditions = depends_on_conditions(services[name])
    assert {dep: conditions.get(dep) for dep in DEMO_SERVICES} == dict.fromkeys(
        DEMO_SERVICES, "service_healthy"
    )


# --------------------------------------------------------------------------------------------------
# Demo connections and backends
# --------------------------------------------------------------------------------------------------


def test_every_airflow_conn_is_json_with_a_conn_type(services, common_env):
    found = {}
    for where, env in [("x-airflow-common", common_env)] + [(n, env_of(s)) for n, s in services.items()]:
        for key, value in env.items():
            if key.startswith("AIRFLOW_CONN_"):
                try:
                    parsed = json.loads(value)
                except (TypeError, json.JSONDecodeError) as exc:
                    pytest.fail(f"{where}: {key} is not JSON: {exc}")
                assert isinstance(parsed, dict), f"{where}: {key} is not a JSON object"
                assert isinstance(parsed.get("conn_type"), str) and parsed["conn_type"], f"{where}: {key}"
                found[key] = parsed["conn_type"]
    assert {
        "AIRFLOW_CONN_SECCOLLECT_WAREHOUSE": "postgres",
        "AIRFLOW_CONN_NETSKOPE_DEMO": "netskope",
        "AIRFLOW_CONN_AWS_DEMO": "aws",
    }.items() <= found.items()


def test_warehouse_connection_matches_the_warehouse_service(common_env, services):
    conn = conn_env(common_env, "seccollect_warehouse")
    db_env = env_of(services["warehouse"])
    assert conn["conn_type"] == "postgres"
    assert conn["host"] == "warehouse"
    assert conn.get("port", 5432) == 5432
    assert conn["schema"] == db_env["POSTGRES_DB"] == "warehouse"
    assert conn["login"] == db_env["POSTGRES_USER"]
    assert conn["password"] == db_env["POSTGRES_PASSWORD"]


def test_netskope_connection_targets_the_simulator(common_env, services):
    conn = conn_env(common_env, "netskope_demo")
    assert conn["conn_type"] == "netskope"
    assert conn.get("password"), "the API key goes in the password"
    assert conn["password"] == env_of(services["simulators"]).get("SIM_NETSKOPE_V2_TOKEN"), (
        "the demo API key must be the token the simulator accepts"
    )
    base_url = urlsplit(conn["extra"]["base_url"])
    assert (base_url.scheme, base_url.hostname) == ("http", "simulators")
    tokens = command_tokens(services["simulators"])
    assert tokens[tokens.index("--netskope-port") + 1] == str(base_url.port)


def test_aws_connection_targets_moto(common_env, services):
    conn = conn_env(common_env, "aws_demo")
    assert conn["conn_type"] == "aws"
    extra = conn["extra"]
    endpoint = urlsplit(extra["endpoint_url"])
    assert (endpoint.scheme, endpoint.hostname, endpoint.port) == ("http", "moto", 5000)
    tokens = command_tokens(services["moto"])
    assert tokens[tokens.index("-p") + 1] == str(endpoint.port)
    assert extra.get("region_name") == "us-east-1"
    # The Test button calls STS GetCallerIdentity, which only honours a per-service STS endpoint.
    assert extra.get("service_config", {}).get("sts", {}).get("endpoint_url") == extra["endpoint_url"]
    assert conn.get("login") and conn.get("password"), "dummy access key id / secret"


def test_simulators_command(services):
    tokens = command_tokens(services["simulators"])
    assert tokens[:3] == ["python", "-m", "seccollect_dev.simulators"]
    options = {flag: value for flag, value in itertools.pairwise(tokens[3:]) if flag.startswith("--")}
    assert options.get("--netskope-port") == "8801"
    assert options.get("--state-file") == "/tmp/sim.json"
    # The simulators bind 127.0.0.1 by default, which other containers cannot reach.
    assert options.get("--host") == "0.0.0.0"
    # The image's /entrypoint would turn an unknown command into `airflow <command>`.
    assert services["simulators"].get("entrypoint"), "override the Airflow entrypoint"


def test_moto_command(services):
    assert command_tokens(services["moto"]) == ["moto_server", "-H", "0.0.0.0", "-p", "5000"]
    assert services["moto"].get("entrypoint"), "override the Airflow entrypoint"


def test_moto_server_dependencies_are_pinned():
    pins = requirement_pins(REQUIREMENTS.read_text())
    missing = [name for name in ("moto", "flask", "flask-cors") if name not in pins]
    assert not missing, f"moto_server needs {missing} pinned in requirements.txt"


def test_init_creates_the_warehouse_pool(services):
    script = " ".join(command_tokens(services["airflow-init"]))
    commands = [shlex.split(line) for line in script.splitlines() if "pools set" in line]
    assert any(tokens[tokens.index("pools") :] == ["pools", "set", *POOL_COMMAND] for tokens in commands), (
        commands
    )


# --------------------------------------------------------------------------------------------------
# Volumes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("dags", "/opt/airflow/dags"),
        ("logs", "/opt/airflow/logs"),
        ("config", "/opt/airflow/config"),
        ("include", "/opt/airflow/include"),
        ("plugins", "/opt/seccollect/plugins"),
    ],
)
def test_project_folder_is_mounted(common, source, target):
    assert volume_pairs(common).get(source) == target


def test_package_source_is_not_airflows_plugins_folder(common, common_env):
    """Airflow executes every .py under its plugins folder as a top-level module; ./plugins is a package."""
    mounts = volume_pairs(common)
    assert mounts.get("plugins") != "/opt/airflow/plugins"
    assert "AIRFLOW__CORE__PLUGINS_FOLDER" not in common_env
    assert mounts["plugins"] in common_env.get("PYTHONPATH", "").split(":")


@pytest.mark.parametrize("folder", ["dags", "include", "plugins"])
def test_mounted_source_folder_exists(folder):
    assert (ROOT / folder).is_dir()


# --------------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# --------------------------------------------------------------------------------------------------


def test_dockerfile_base_image_matches_the_pinned_airflow(instructions):
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms == [BASE_IMAGE]
    airflow_version = BASE_IMAGE.split(":")[1].split("-")[0]
    assert requirement_pins(REQUIREMENTS.read_text()).get("apache-airflow") == airflow_version


def test_dockerfile_installs_pinned_requirements(instructions):
    copies = copy_destinations(instructions)
    assert "requirements.txt" in copies, "COPY requirements.txt into the image"
    installs = [args for _, args in pip_installs(instructions)]
    assert any(
        "-r" in args and args[args.index("-r") + 1] == copies["requirements.txt"] for args in installs
    ), installs


def test_dockerfile_installs_the_package_without_deps(instructions):
    copies = copy_destinations(instructions)
    assert "pyproject.toml" in copies and "plugins" in copies
    package_dir = str(Path(copies["pyproject.toml"]).parent)
    assert copies["plugins"] == f"{package_dir}/plugins", "plugins/ must sit next to pyproject.toml"
    installs = pip_installs(instructions)
    package_installs = [
        i for i, args in installs if "--no-deps" in args and package_dir in [a.rstrip("/") for a in args]
    ]
    requirement_installs = [i for i, args in installs if "-r" in args]
    assert package_installs, f"no `pip install --no-deps {package_dir}` found in {installs}"
    assert requirement_installs and min(requirement_installs) < min(package_installs), (
        "requirements.txt must be installed before the package is installed with --no-deps"
    )


def test_dockerfile_installs_as_the_airflow_user(instructions):
    first_pip = min(i for i, _ in pip_installs(instructions))
    users = [args for keyword, args in instructions[:first_pip] if keyword == "USER"]
    assert users and users[-1] == "airflow"


@pytest.mark.parametrize(
    ("source", "target"), [("dags", "/opt/airflow/dags"), ("include", "/opt/airflow/include")]
)
def test_dockerfile_copies_project_folders(instructions, source, target):
    assert copy_destinations(instructions).get(source) == target


@pytest.mark.parametrize(
    "pattern", [".venv", ".airflow", ".demo", ".git", "**/__pycache__", ".pytest_cache", ".ruff_cache"]
)
def test_dockerignore_excludes(pattern):
    assert pattern in dockerignore_patterns(DOCKERIGNORE.read_text())


def test_dockerignore_keeps_the_dev_only_package_out_of_the_image():
    """seccollect_dev (simulators, demo) is for development: COPY plugins/ must not take it along."""
    patterns = dockerignore_patterns(DOCKERIGNORE.read_text())
    dev_files = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "plugins" / "seccollect_dev").rglob("*.py")
        if "__pycache__" not in p.parts
    ]
    assert dev_files and all(is_dockerignored(path, patterns) for path in dev_files)


def test_dockerignore_keeps_the_build_inputs(instructions):
    patterns = dockerignore_patterns(DOCKERIGNORE.read_text())
    inputs = list(copy_destinations(instructions)) + [
        str(p.relative_to(ROOT))
        for p in (ROOT / "plugins" / "seccollect").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    ignored = [path for path in inputs if is_dockerignored(path, patterns)]
    assert not ignored, f".dockerignore drops files the Dockerfile needs: {ignored}"


# --------------------------------------------------------------------------------------------------
# Negative controls for the helpers
# --------------------------------------------------------------------------------------------------


def test_helpers_negative_controls():
    parsed = dockerfile_instructions(
        "# c\nFROM x\nRUN pip install \\\n  -r /r.txt && \\\n  pip install --no-deps /src\n"
    )
    assert parsed == [("FROM", "x"), ("RUN", "pip install -r /r.txt && pip install --no-deps /src")]
    assert pip_installs(parsed) == [(1, ["-r", "/r.txt"]), (1, ["--no-deps", "/src"])]
    assert pip_installs([("RUN", "echo pip")]) == []
    assert copy_destinations([("COPY", "--chown=a:0 requirements.txt /tmp/")]) == {
        "requirements.txt": "/tmp/requirements.txt"
    }
    assert copy_destinations([("COPY", "plugins/ /src/plugins/")]) == {"plugins": "/src/plugins"}
    assert is_dockerignored(".venv/bin/python", [".venv"])
    assert is_dockerignored("plugins/a/__pycache__/x.pyc", ["**/__pycache__"])
    assert not is_dockerignored("plugins/seccollect/config/x.py", ["config"])
    assert not is_dockerignored("requirements.txt", ["*.txt", "!requirements.txt"])
    assert depends_on_names({"depends_on": ["a", "b"]}) == ["a", "b"]
    assert depends_on_conditions({"depends_on": {"a": {"condition": "service_healthy"}, "b": None}}) == {
        "a": "service_healthy",
        "b": "service_started",
    }
    assert env_of({"environment": ["A=1", "B"]}) == {"A": "1", "B": None}
    assert volume_pairs({"volumes": ["${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags", "named:/data"]}) == {
        "dags": "/opt/airflow/dags",
        "named": "/data",
    }
    assert requirement_pins("Flask_Cors==6.0.5\nmoto[server]==5.2.5  # x\n") == {
        "flask-cors": "6.0.5",
        "moto": "5.2.5",
    }


# --------------------------------------------------------------------------------------------------
# docker-compose.yaml describes what `make stack` ran: both take their settings from
# seccollect_dev.topology, and what each must set differently is listed there with the reason.
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack_run() -> tuple[dict[str, str], dict[str, dict], object, object]:
    """The environment, connections, options and commands `make stack` gives its components, built as
    make stack builds them (nothing is started)."""
    from seccollect_dev.airflow_stack import AirflowStack, PostgresServer
    from seccollect_dev.simulators import SIMULATORS
    from seccollect_dev.stack import StackOptions, stack_connections, stack_environment

    options = StackOptions(root=Path("/stack-root"))
    pg = PostgresServer("127.0.0.1", 5432, "postgres")
    urls = {name: f"http://127.0.0.1:{18800 + i}" for i, name in enumerate(SIMULATORS)}
    connections = stack_connections(pg, options.warehouse_database, urls)
    broker = "redis://127.0.0.1:6379/0"
    env = stack_environment(options, broker, connections, Path("/stack-root/connectors"))
    airflow = AirflowStack(env, pg.sqlalchemy_url(options.metadata_database), Path("/stack-root/logs"),
                           executor="CeleryExecutor", celery_workers=options.workers, celery_broker_url=broker)
    return airflow.environment(), connections, options, airflow


def test_compose_and_make_stack_share_every_topology_setting(common_env, stack_run):
    from seccollect_dev.topology import SHARED_SETTINGS

    stack_env = stack_run[0]
    differ = {k: (common_env.get(k), stack_env.get(k), v) for k, v in SHARED_SETTINGS.items()
              if not (common_env.get(k) == stack_env.get(k) == v)}
    assert not differ, "(compose, make stack, topology): " + repr(differ)


def test_settings_that_differ_by_host_are_set_by_both(common_env, stack_run):
    from seccollect_dev.topology import HOST_SPECIFIC

    stack_env = stack_run[0]
    assert [k for k in HOST_SPECIFIC if k not in common_env] == []
    assert [k for k in HOST_SPECIFIC if k not in stack_env] == []


def test_no_other_airflow_or_seccollect_setting_differs(common_env, stack_run):
    """Any setting both give must be shared, host-specific, or one of the stack's local-only knobs."""
    from seccollect_dev.topology import HOST_SPECIFIC, SHARED_SETTINGS

    stack_env = stack_run[0]
    for key in set(common_env) & set(stack_env):
        if key in SHARED_SETTINGS or key in HOST_SPECIFIC or key.startswith("AIRFLOW_CONN_"):
            continue
        if key.startswith(("AIRFLOW__", "SECCOLLECT_", "CONNECTORS_DIR")):
            assert str(common_env[key]).lower() == str(stack_env[key]).lower(), key


def test_compose_and_make_stack_define_the_same_connections(common_env, stack_run):
    stack_env, connections = stack_run[0], stack_run[1]
    compose_conns = {k.removeprefix("AIRFLOW_CONN_").lower(): json.loads(v) for k, v in common_env.items()
                     if k.startswith("AIRFLOW_CONN_")}
    stack_conns = {k.removeprefix("AIRFLOW_CONN_").lower(): json.loads(v) for k, v in stack_env.items()
                   if k.startswith("AIRFLOW_CONN_") and k.removeprefix("AIRFLOW_CONN_").lower() in connections}
    assert set(compose_conns) == set(stack_conns) == set(connections)
    for conn_id in connections:
        assert compose_conns[conn_id]["conn_type"] == stack_conns[conn_id]["conn_type"], conn_id
        compose_version = (compose_conns[conn_id].get("extra") or {}).get("api_version", "v2")
        stack_version = (stack_conns[conn_id].get("extra") or {}).get("api_version", "v2")
        if compose_conns[conn_id]["conn_type"] == "netskope":
            assert compose_version == stack_version, conn_id


def test_staging_is_on_s3_for_as_many_workers_as_make_stack_runs(services, common_env, stack_run):
    from seccollect_dev.topology import STAGING_CONN_ID

    options = stack_run[2]
    replicas = (services["airflow-worker"].get("deploy") or {}).get("replicas", 1)
    assert replicas == options.workers > 1
    assert common_env["SECCOLLECT_STAGING_URL"].startswith("s3://")
    staging_conn = json.loads(common_env[f"AIRFLOW_CONN_{STAGING_CONN_ID.upper()}"])
    assert urlsplit(staging_conn["extra"]["endpoint_url"]).hostname == "moto"
    init_script = "\n".join(command_tokens(services["airflow-init"]))
    assert "SECCOLLECT_STAGING_URL" in init_script and "create_bucket" in init_script, "airflow-init creates the bucket"
    assert depends_on_conditions(services["airflow-init"]).get("moto") == "service_healthy"


def test_compose_runs_every_component_make_stack_starts(services, stack_run):
    from seccollect_dev.airflow_stack import COMPONENTS

    airflow = stack_run[3]
    started = {*COMPONENTS, *("celery worker" for _ in range(airflow.celery_workers))}
    assert started <= {v for v in AIRFLOW_SERVICES.values() if v}
    assert {"postgres", "redis", "warehouse", "moto", "simulators"} <= set(services)


def test_limits_are_counted_in_the_brokers_redis(common_env, stack_run):
    from seccollect_dev.topology import LIMITS_URL_ENV

    stack_env = stack_run[0]
    limits, broker = urlsplit(common_env[LIMITS_URL_ENV]), urlsplit(common_env["AIRFLOW__CELERY__BROKER_URL"])
    assert limits.scheme == broker.scheme == "redis" and limits.hostname == broker.hostname == "redis"
    assert stack_env[LIMITS_URL_ENV] == stack_env["AIRFLOW__CELERY__BROKER_URL"]


def test_the_instance_folder_is_where_the_image_puts_the_demo_instances(common, common_env, instructions):
    """The DAG files read CONNECTORS_DIR; compose points it at the folder the Dockerfile fills with every
    registered connector's demo instance files - the ones make stack assembles."""
    from seccollect.registry import demo_instance_files

    folder = common_env["CONNECTORS_DIR"]
    copied: set[Path] = set()
    for keyword, args in instructions:
        if keyword == "COPY":
            *sources, dest = [p for p in shlex.split(args) if not p.startswith("--")]
            if dest.rstrip("/") == folder:
                for source in sources:
                    copied |= {p.resolve() for p in ROOT.glob(source)}
    assert copied, f"the Dockerfile copies nothing into {folder}"
    assert copied == {p.resolve() for p in demo_instance_files()}
    mounts = volume_pairs(common).values()
    assert not any(folder == m or folder.startswith(m + "/") for m in mounts), "a bind mount hides the folder"


def test_the_pinned_celery_runs_the_celery_executor():
    """The executor compose and make stack name imports with the pinned celery (5.7.0 broke it)."""
    from airflow.providers.celery.executors import celery_executor  # noqa: F401


# --------------------------------------------------------------------------------------------------
# Every vendor connection compose defines passes the base-URL rule of the hooks
# (seccollect.http.url.parse_base_url: https, plain http only for loopback or a listed development
# host) under compose's own environment, and only because compose lists its simulators.
# --------------------------------------------------------------------------------------------------

#: conn_type -> where its hook takes the URL it sends credentials to (host, or an extra's base_url).
VENDOR_URL_FIELDS = {
    "connectsecure": ("host", "base_url"),
    "qualys": ("host",),
    "trendmicro_cas": ("host",),
    "netskope": ("base_url",),  # only the override; without it the hook builds https://<tenant>.goskope.com
}
#: conn_types whose URLs the shared rule does not cover (key -> why).
NOT_VENDOR_HTTP = {
    "postgres": "the warehouse: a database connection, no URL",
    "aws": "boto3 takes the endpoint (moto) from the connection's extra; no seccollect hook builds it",
}


def vendor_url(conn: dict) -> str | None:
    """The URL a vendor connection's hook checks and sends credentials to (None: the hook builds it)."""
    extra = conn.get("extra") or {}
    extra = json.loads(extra) if isinstance(extra, str) else extra
    for field in VENDOR_URL_FIELDS[conn["conn_type"]]:
        value = conn.get(field) if field == "host" else extra.get(field)
        if value:
            return value
    return None


def airflow_conns(env: dict[str, str]) -> dict[str, dict]:
    return {k.removeprefix("AIRFLOW_CONN_").lower(): json.loads(v) for k, v in env.items()
            if k.startswith("AIRFLOW_CONN_")}


def vendor_urls(env: dict[str, str]) -> dict[str, str]:
    """conn_id -> URL of every vendor connection in ``env`` that names one."""
    conns = airflow_conns(env)
    return {cid: url for cid, c in conns.items() if c["conn_type"] in VENDOR_URL_FIELDS
            for url in [vendor_url(c)] if url}


def test_every_compose_connection_is_classified_for_the_url_rule(common_env):
    """A connection type added to compose must say whether its hook checks its URL (else it is not tested)."""
    types = {c["conn_type"] for c in airflow_conns(common_env).values()}
    assert types <= set(VENDOR_URL_FIELDS) | set(NOT_VENDOR_HTTP), types
    assert set(VENDOR_URL_FIELDS) <= types, "every vendor API connection type has a demo connection in compose"


def test_every_vendor_connection_of_compose_passes_the_url_rule_under_composes_environment(common_env):
    from seccollect.http.url import parse_base_url

    urls = vendor_urls(common_env)
    assert {"connectsecure_demo", "qualys_demo", "trendmicro_cas_demo", "netskope_demo"} <= set(urls)
    for conn_id, url in urls.items():
        parts = parse_base_url(url, conn_id, environ=common_env)
        assert parts.hostname == "simulators", (conn_id, url)


def test_the_vendor_hooks_own_url_checks_accept_composes_connections(common_env, monkeypatch):
    """The hooks' checks (the shared rule plus each vendor's own: no path, no login portal ...), reading
    the allow-list from the process environment as they do inside the containers."""
    from seccollect.http.url import INSECURE_HTTP_HOSTS_ENV
    from seccollect.vendors.connectsecure.hook import check_base_url as connectsecure_url
    from seccollect.vendors.netskope.hook import NetskopeHook
    from seccollect.vendors.qualys.hook import api_base_url
    from seccollect.vendors.trendmicro.hook import check_base_url as trendmicro_url

    monkeypatch.setenv(INSECURE_HTTP_HOSTS_ENV, common_env[INSECURE_HTTP_HOSTS_ENV])
    urls = vendor_urls(common_env)
    assert connectsecure_url(urls["connectsecure_demo"], "connectsecure_demo") == "http://simulators:8803"
    assert api_base_url(urls["qualys_demo"], "qualys_demo") == "http://simulators:8804"
    assert trendmicro_url(urls["trendmicro_cas_demo"], "trendmicro_cas_demo") == "http://simulators:8806"
    for conn_id in ("netskope_demo", "netskope_demo_v1"):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", common_env[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert NetskopeHook(conn_id)._settings()[0] == "http://simulators:8801"


def test_without_the_allow_list_composes_vendor_connections_are_refused(common_env):
    """Negative control: the development allow-list is what lets them through, nothing else."""
    from seccollect.http.url import INSECURE_HTTP_HOSTS_ENV, parse_base_url

    without = {k: v for k, v in common_env.items() if k != INSECURE_HTTP_HOSTS_ENV}
    urls = vendor_urls(common_env)
    assert urls
    for conn_id, url in urls.items():
        with pytest.raises(ValueError, match="must use https"):
            parse_base_url(url, conn_id, environ=without)


def test_the_allow_list_names_only_compose_demo_backends(common_env, services):
    """Development only: it lists compose's simulators service and nothing a real vendor API could be."""
    from seccollect.http.url import insecure_http_hosts

    hosts = insecure_http_hosts(common_env)
    assert hosts == {"simulators"} and hosts <= set(DEMO_SERVICES) and hosts <= set(services)
    hosts_used = {urlsplit(url).hostname for url in vendor_urls(common_env).values()
                  if urlsplit(url).scheme == "http"}
    assert hosts == hosts_used, "list exactly the hosts compose's connections reach over plain http"


def test_make_stack_needs_no_allow_list(stack_run):
    """make stack runs the simulators on loopback: its connections pass the rule with no exception."""
    from seccollect.http.url import parse_base_url

    stack_env, connections = stack_run[0], stack_run[1]
    urls = {cid: url for cid, url in vendor_urls(stack_env).items() if cid in connections}
    assert {"connectsecure_demo", "qualys_demo", "trendmicro_cas_demo", "netskope_demo"} <= set(urls)
    for conn_id, url in urls.items():
        parse_base_url(url, conn_id, environ={})


def test_compose_only_settings_are_development_settings_of_compose_alone(common_env):
    """Every seccollect setting of compose is shared with make stack, host-specific, or listed as
    compose-only with its reason (the development allow-list is the one such setting)."""
    from seccollect.http.url import INSECURE_HTTP_HOSTS_ENV
    from seccollect_dev.topology import COMPOSE_ONLY, HOST_SPECIFIC, SHARED_SETTINGS

    assert INSECURE_HTTP_HOSTS_ENV in COMPOSE_ONLY
    assert not set(COMPOSE_ONLY) & (set(SHARED_SETTINGS) | set(HOST_SPECIFIC))
    unclassified = [k for k in common_env if k.startswith("SECCOLLECT_")
                    and k not in SHARED_SETTINGS and k not in HOST_SPECIFIC and k not in COMPOSE_ONLY]
    assert unclassified == []
    assert set(COMPOSE_ONLY) <= set(common_env)
