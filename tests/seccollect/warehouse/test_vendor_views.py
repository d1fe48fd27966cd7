"""Views a vendor registers (``ConnectorSpec.views``) are created with the schema on both backends."""

from __future__ import annotations


def test_registered_views_exist_after_ensure_schema(wh):
    from seccollect import registry

    views = [name for spec in registry.specs() for name, _ in spec.views]
    assert views, "no registered connector declares a view"
    for name in views:
        assert wh.query(f"SELECT count(*) FROM {name}") == [(0,)]
    wh.ensure_schema()  # idempotent: CREATE OR REPLACE
