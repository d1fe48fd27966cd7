"""Fixtures of the end-to-end tests: the AWS ones (moto server, connections, scenario) are shared with
the AWS unit tests, which define them (moto_url and s3 live in tests/conftest.py)."""

from tests.seccollect.vendors.aws.conftest import aws_conn, scenario  # noqa: F401
from tests.seccollect.vendors.connectsecure.conftest import cs_dataset, cs_sim, no_waits  # noqa: F401
from tests.seccollect.vendors.qualys.conftest import fast_backoff, qualys_dataset, qualys_sim  # noqa: F401
from tests.seccollect.vendors.trendmicro.conftest import budget_file, cas_dataset, cas_now, cas_sim  # noqa: F401
