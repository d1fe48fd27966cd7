"""The toy connector's instance files: a name, a tenant, a connection, and how many sightings a minute."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from seccollect.config.instance import InstanceBase
from seccollect.registry import ContentType


class ToyInstance(InstanceBase):
    connector_type: ClassVar[str] = "toy"
    vendor: ClassVar[str] = "toy"
    category: ClassVar[str] = "testing"
    content_type_specs: ClassVar[tuple[ContentType, ...]] = (
        ContentType("sighting", "toy_sighting", ("syslog", "assets"), "windowed", "Sighting"),
    )
    default_content_types: ClassVar[tuple[str, ...]] = ("sighting",)

    type: Literal["toy"]
    per_minute: int = Field(default=2, ge=1, le=60, description="Sightings the toy API reports per minute.")
