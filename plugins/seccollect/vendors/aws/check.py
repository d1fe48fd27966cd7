"""The instance test of AWS connectors: does each instance's prefix match its bucket's layout?

The connection's own Test button (the amazon provider's) proves the credentials only; a prefix
written for another layout - the older Control Tower form on an organisation trail bucket, a region
that has no folder - would pass it and then read nothing, window after window. This test lists the
prefix's folders through the instance's connection and refuses such a prefix, naming what the bucket
holds instead::

    python -m seccollect.vendors.aws.check config/connectors/acme-cloudtrail.yaml [more files]
    python -m seccollect.vendors.aws.check acme-aws_cloudtrail-ct     # a dag_id, from CONNECTORS_DIR

Exit status 0 when every instance matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["check_instance", "main"]


def check_instance(instance: object) -> tuple[bool, str]:
    """:meth:`S3LogHook.check_prefix` for an AWS instance, through its own connection and settings."""
    from seccollect.vendors.aws.hook import S3LogHook
    from seccollect.vendors.aws.instance import AwsCloudTrailInstance

    if not isinstance(instance, AwsCloudTrailInstance):
        return False, f"{getattr(instance, 'dag_id', instance)!s} is not an AWS instance"
    hook = S3LogHook(
        instance.conn_id,
        region_name=instance.region,
        proxy=instance.proxy,
        verify=None if instance.verify_ssl else False,
    )
    return hook.check_prefix(instance.bucket, instance.prefix, instance.sub_type)


def main(argv: Sequence[str] | None = None) -> int:
    """Check instance files (paths) or instances by dag_id; print one verdict per instance."""
    from seccollect.config.loader import load_file, load_for_dag_id

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("instances", nargs="+", help="instance files, or dag ids found in CONNECTORS_DIR")
    args = parser.parse_args(argv)
    failed = 0
    for name in args.instances:
        path = Path(name)
        instance = load_file(path) if path.suffix in (".yaml", ".yml") else load_for_dag_id(name)
        if instance is None:
            ok, message = False, f"no instance with dag_id {name!r}"
        else:
            ok, message = check_instance(instance)
        print(f"{'OK     ' if ok else 'REFUSED'} {name}: {message}")
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
