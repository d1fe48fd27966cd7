"""Fixtures of the end-to-end tests: the AWS ones (moto server, connections, scenario) are shared with
the AWS unit tests, which define them."""

from tests.seccollect.vendors.aws.conftest import aws_conn, moto_url, s3, scenario  # noqa: F401
