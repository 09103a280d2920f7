"""moto's server, with three fixes the tests need, each where moto departs from AWS.

1. Executing a change set updates the stack's parameters.

moto 5.2 applies a change set's parameters to the resources but keeps the stack's `parameters` from its creation,
and a later change set is "no changes" when its parameters equal those: a stack created with 1.1.0, rolled back to
1.0.0, then deployed with 1.1.0 again would stay at 1.0.0 while CloudFormation would update it. Run as
`python tests/moto_server.py -H 127.0.0.1 -p PORT`, the arguments of moto_server.

2. A bucket made by a stack gets the stack's `VersioningConfiguration` (moto 5.2 ignores it), which pipec relies
on to tell that a release was not rewritten.

3. GetAccountAuthorizationDetails lists the inline policies of a role made by a stack (moto 5.2 keeps them as
parsed documents, not JSON text, and fails with an internal error quoting them) and names each managed policy,
as the IAM analysis reads them.

4. A stack's `AWS::S3::BucketPolicy` is put on its bucket (moto 5.2 has no model for it and skips it), so
GetBucketPolicy returns what CloudFormation would have put. moto's own check of bucket policies ignores their
conditions (a Deny "unless the caller is the build role" would deny everyone), so it is left out:
tests/test_iam_reach.py evaluates the policy as IAM does.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib import parse

from moto.cloudformation import models
from moto.core.common_models import CloudFormationModel
from moto.iam import access_control
from moto.iam import models as iam
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


def _s3(account_id: str, region_name: str) -> Any:
    return s3.s3_backends[account_id][s3.get_partition(region_name)]


_create_bucket = s3.FakeBucket.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_bucket_with_versioning(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str,
                                   region_name: str, **kwargs: Any) -> Any:
    bucket = _create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    status = cloudformation_json.get("Properties", {}).get("VersioningConfiguration", {}).get("Status")
    if status is not None:
        _s3(account_id, region_name).put_bucket_versioning(bucket.name, status)
    return bucket


s3.FakeBucket.create_from_cloudformation_json = classmethod(_create_bucket_with_versioning)  # type: ignore


def _role_policy_list(self: Any) -> list[dict[str, str]]:
    return [{"PolicyName": name,
             "PolicyDocument": parse.quote(policy if isinstance(policy, str) else json.dumps(policy))}
            for name, policy in self.policies.items()]


iam.Role.role_policy_list = property(_role_policy_list)  # type: ignore[assignment,method-assign]
iam.Policy.policy_name = property(lambda self: self.name)  # type: ignore[attr-defined]


def _without_no_value(value: Any) -> Any:
    """What CloudFormation does with `AWS::NoValue` (moto 5.2 leaves None in its place): drop the item."""
    if isinstance(value, list):
        return [_without_no_value(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {k: _without_no_value(v) for k, v in value.items() if v is not None}
    return value


class _BucketPolicy(CloudFormationModel):
    __module__ = "moto.s3.models"  # moto's model registry names the service by the module

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    @property
    def physical_resource_id(self) -> str:
        return self.bucket

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str, **kwargs: Any) -> _BucketPolicy:
        properties = cloudformation_json["Properties"]
        backend = _s3(account_id, region_name)
        document = _without_no_value(properties["PolicyDocument"])
        backend.put_bucket_policy(properties["Bucket"], json.dumps(document).encode())
        return cls(properties["Bucket"])

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,
                                        cloudformation_json: Any, account_id: str, region_name: str) -> _BucketPolicy:
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str) -> None:
        backend = _s3(account_id, region_name)
        backend.delete_bucket_policy(cloudformation_json["Properties"]["Bucket"])


s3.FakeBucket.get_permission = lambda self, action, resource: access_control.PermissionResult.NEUTRAL  # type: ignore


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
