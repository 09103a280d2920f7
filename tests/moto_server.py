"""moto's server, with two fixes the tests need, each where moto departs from CloudFormation.

1. Executing a change set updates the stack's parameters.

moto 5.2 applies a change set's parameters to the resources but keeps the stack's `parameters` from its creation,
and a later change set is "no changes" when its parameters equal those: a stack created with 1.1.0, rolled back to
1.0.0, then deployed with 1.1.0 again would stay at 1.0.0 while CloudFormation would update it. Run as
`python tests/moto_server.py -H 127.0.0.1 -p PORT`, the arguments of moto_server.

2. A bucket made by a stack gets the stack's `VersioningConfiguration` (moto 5.2 ignores it), which pipec relies
on to tell that a release was not rewritten.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.cloudformation import models
from moto.s3 import models as s3
from moto.server import main

_execute = models.CloudFormationBackend.execute_change_set


def _execute_and_keep_parameters(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    change_set = self.change_sets.get(change_set_name) or next(
        (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None)
    _execute(self, change_set_name, stack_name)
    if change_set is not None and change_set.change_set_type == "UPDATE":
        self.stacks[change_set.stack_id].parameters = change_set.parameters


models.CloudFormationBackend.execute_change_set = _execute_and_keep_parameters  # type: ignore[method-assign]

_create_bucket = s3.FakeBucket.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_bucket_with_versioning(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str,
                                   region_name: str, **kwargs: Any) -> Any:
    bucket = _create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    status = cloudformation_json.get("Properties", {}).get("VersioningConfiguration", {}).get("Status")
    if status is not None:
        backend = s3.s3_backends[account_id][s3.get_partition(region_name)]
        backend.put_bucket_versioning(bucket.name, status)
    return bucket


s3.FakeBucket.create_from_cloudformation_json = classmethod(_create_bucket_with_versioning)  # type: ignore

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
