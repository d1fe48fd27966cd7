"""Find, read and validate connector instance files.

Two entry points match Airflow's two kinds of parse:

* :func:`load_all` — the dag-processor's full parse: every file, each failure collected (never raised)
  so one broken file cannot hide the other instances' DAGs.
* :func:`load_for_dag_id` — a worker's parse before a task run (``get_parsing_context().dag_id`` is
  set): only that DAG's file is read, so task start-up does not grow with the number of instances.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seccollect.config.instance import InstanceBase

#: Environment variable that points at the folder of instance files; it wins over the folder the DAG
#: file names (``include/connectors`` beside its own folder).
CONNECTORS_DIR_ENV = "CONNECTORS_DIR"

# Keys that name a credential. Matched on whole words of the key (``api_key``, ``clientSecret``,
# ``aws-secret-access-key``), so harmless keys such as ``token_scope_note`` do not exist to trip it
# but ``netskope_tenant`` (no such word) passes.
_SECRET_WORDS = {"password", "passwd", "secret", "token", "apikey", "credential", "credentials", "privatekey"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("client", "secret"), ("secret", "key")}

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class InstanceFileError:
    """Why one instance file produced no DAG: the file, the field and what is allowed."""

    path: Path
    field: str
    message: str

    def __str__(self) -> str:
        where = f" (field '{self.field}')" if self.field else ""
        return f"{self.path}{where}: {self.message}"


class InstanceFileInvalid(ValueError):
    """Raised by :func:`load_file` for a file that cannot become an instance."""

    def __init__(self, errors: list[InstanceFileError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class ConnectorsDirMissing(ValueError):
    """No folder of instance files is configured, or it cannot be read."""


def connectors_dir(default: Path | None = None) -> Path:
    """The folder of instance files: ``$CONNECTORS_DIR`` if set, else ``default`` (the folder a DAG file
    names relative to itself); :class:`ConnectorsDirMissing` if neither is given."""
    configured = os.environ.get(CONNECTORS_DIR_ENV)
    if configured:
        return Path(configured)
    if default is None:
        raise ConnectorsDirMissing(
            f"no folder of connector instance files: set {CONNECTORS_DIR_ENV} or pass the folder explicitly"
        )
    return Path(default)


def instance_files(directory: Path) -> Iterator[Path]:
    """Every ``*.yaml`` / ``*.yml`` file, sorted so DAG order is stable between parses.

    A folder that does not exist or cannot be read raises :class:`ConnectorsDirMissing`: zero DAGs
    because of a wrong path must look like an error, not like an empty deployment.
    """
    try:
        names = sorted(
            p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith(".")
        )
    except FileNotFoundError:
        raise ConnectorsDirMissing(
            f"the folder of connector instance files {directory} does not exist; create it, or set "
            f"{CONNECTORS_DIR_ENV} to the folder that holds the instance files"
        ) from None
    except OSError as exc:
        raise ConnectorsDirMissing(
            f"the folder of connector instance files {directory} cannot be read: {exc.strerror or exc}"
        ) from None
    return iter(names)


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def _looks_like_secret(key: str) -> bool:
    words = _words(key)
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


def _secret_keys(data: Any, prefix: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            if isinstance(key, str) and _looks_like_secret(key):
                found.append(dotted)
            found.extend(_secret_keys(value, dotted + "."))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found.extend(_secret_keys(item, f"{prefix}{i}."))
    return found


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def parse_instance(data: Any, path: Path) -> InstanceBase:
    """Validate one instance mapping read from ``path``; raise :class:`InstanceFileInvalid`."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise InstanceFileInvalid([InstanceFileError(path, "", "the file must hold a YAML mapping of settings")])
    secrets = _secret_keys(data)
    if secrets:
        raise InstanceFileInvalid(
            [
                InstanceFileError(
                    path,
                    key,
                    "looks like a secret; instance files must not hold credentials. Put it in the Airflow "
                    f"connection named by conn_id ({data.get('conn_id', '<conn_id>')!s}): Admin > Connections, "
                    "an AIRFLOW_CONN_* variable, or a secrets backend",
                )
                for key in secrets
            ]
        )
    from seccollect import registry

    kind = data.get("type")
    try:
        if not isinstance(kind, str):
            raise registry.UnknownConnectorType(kind)
        model = registry.get(kind).instance_model
    except registry.UnknownConnectorType as exc:
        raise InstanceFileInvalid([InstanceFileError(path, "type", str(exc))]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            loc = _format_loc(err["loc"])
            if err["type"] == "extra_forbidden":
                msg = f"unknown setting; allowed settings are {', '.join(sorted(model.model_fields))}"
            elif err["type"] == "missing":
                description = model.model_fields[loc].description
                msg = "required setting is missing" + (f" ({description})" if description else "")
            elif not loc:
                # A model-level rule names its field as the message prefix ("content_types: ...").
                prefix, sep, rest = msg.partition(": ")
                if sep and prefix in model.model_fields:
                    loc, msg = prefix, rest
            errors.append(InstanceFileError(path, loc, msg))
        raise InstanceFileInvalid(errors) from None


def load_file(path: Path) -> InstanceBase:
    """Read and validate one instance file; raise :class:`InstanceFileInvalid` naming file and field."""
    from datetime import UTC, datetime

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
        written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InstanceFileInvalid([InstanceFileError(path, "", f"cannot read the file: {exc}")]) from None
    return parse_instance(data, path).with_file_time(written)


@dataclass
class LoadResult:
    """Valid, enabled instances plus the errors of the files that produced none."""

    instances: list[InstanceBase]
    errors: list[InstanceFileError]


def load_all(directory: Path | None = None) -> LoadResult:
    """Validate every instance file; collect failures (including dag_id clashes and a missing folder)
    instead of raising.

    :param directory: the folder to read; ``None`` means ``$CONNECTORS_DIR``.
    """
    instances: list[InstanceBase] = []
    errors: list[InstanceFileError] = []
    seen: dict[str, Path] = {}
    try:
        directory = Path(directory) if directory is not None else connectors_dir()
        paths = list(instance_files(directory))
    except ConnectorsDirMissing as exc:
        return LoadResult([], [InstanceFileError(Path(directory or "."), "", str(exc))])
    for path in paths:
        try:
            instance = load_file(path)
        except InstanceFileInvalid as exc:
            errors.extend(exc.errors)
            continue
        if not instance.enabled:
            continue
        if instance.dag_id in seen:
            errors.append(
                InstanceFileError(path, "name", f"dag_id {instance.dag_id!r} is already produced by {seen[instance.dag_id]}")
            )
            continue
        seen[instance.dag_id] = path
        instances.append(instance)
    return LoadResult(instances, errors)


def load_for_dag_id(dag_id: str, directory: Path | None = None) -> InstanceBase | None:
    """The instance behind ``dag_id``, reading as few files as possible.

    Instance files are expected to be named after their DAG (``<dag_id>.yaml``); that file is tried
    first, so a task start reads one file whatever the number of instances. A file named otherwise is
    still found by falling back to a full scan.

    :param directory: the folder to read; ``None`` means ``$CONNECTORS_DIR``.
    """
    directory = Path(directory) if directory is not None else connectors_dir()
    for suffix in (".yaml", ".yml"):
        candidate = directory / f"{dag_id}{suffix}"
        if candidate.is_file():
            try:
                instance = load_file(candidate)
            except InstanceFileInvalid:
                break
            if instance.dag_id == dag_id and instance.enabled:
                return instance
    for instance in load_all(directory).instances:
        if instance.dag_id == dag_id:
            return instance
    return None
