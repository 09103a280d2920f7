"""moto's server, with the fixes the tests need, each where moto departs from AWS.

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

5. A stack's `AWS::ECR::ReplicationConfiguration` is put on its registry, and a pushed image is copied, with its
tag and digest, to every destination registry whose filter matches its repository (creating the repository
there), as ECR replication does (moto 5.2 has no model for the resource and replicates nothing). A repository
replication makes takes its settings (tag mutability, KMS key, policy) from the stack-made
`AWS::ECR::RepositoryCreationTemplate` of that registry whose prefix names its namespace and that applies to
REPLICATION, and ECR's defaults without one, as ECR does (moto 5.2 has neither the resource nor the API).

6. With `PIPEC_MOTO_SKIP` set to resource types (comma-separated), stacks skip those resources as moto skips the
types it has no model for: for the rehearsal, which deploys the bundles exactly as published, the types
tests/aws_world.py's UNSUPPORTED names (moto has models for them that cannot resolve what they point at).

7. DescribeStacks gives an SSM-typed parameter's value as the stack was given it (the parameter's name) and what
it resolved to as ResolvedValue, as CloudFormation does (moto 5.2 gives only the resolved value, a list as Python's
repr), so comparing a stack's parameters with a release's compares like with like.

8. An update that changes a resource the stack never made (its condition false) makes it if its condition now
holds and otherwise does nothing, as CloudFormation does (moto 5.2 updates it as if it existed and fails with an
internal error: a bootstrap whose template changes a build registry's repository, in another registry).

9. A stack's `AWS::Lambda::Version` publishes a version again when the stack's update changes it (moto 5.2 keeps
the first) and answers `!GetAtt ….Version`; its `AWS::Lambda::Alias` is made and moved to that version (moto 5.2
has no model for it), so the `live` alias runs what the stack deployed, as CodeDeploy leaves it after a shift.
And a version is published with the resource's Description (moto 5.2 drops it): what tells a release's function
versions apart (`pipec logs`).

10. An update modifies every resource that refers (`Ref`, `!GetAtt`) to a resource the update modifies, after
it, as CloudFormation does when a physical id or attribute changes (moto 5.2 modifies only the resources whose
own text or parameters changed, in no order: a new task definition revision the ECS service never used, a new
function version the alias never pointed at). And an updated `AWS::ECS::Service` runs the newest revision of its
task definition's family, the one the same update registered; an updated task definition keeps the API's
camelCase container definitions (moto 5.2 stores the template's PascalCase, so DescribeTaskDefinition names no
image).

11. `!GetAtt LoadBalancer.LoadBalancerFullName` and `!GetAtt TargetGroup.TargetGroupFullName` answer the names
CloudWatch's load balancer metrics are dimensioned by, `app/<name>/<id>` and `targetgroup/<name>/<id>` (the ARN's
resource after `loadbalancer/` and `:`; moto 5.2 answers nothing, and a stack output of them goes missing).

12. A stack a change set created or updated has the outputs of the template it now runs (moto 5.2 keeps the
outputs of the empty template the change set's stack started with: none). And a resource that names a changed
parameter as `${Name}` inside `Fn::Sub` is modified by the update, like one that `Ref`s it (moto 5.2 sees only
`Ref`: a dashboard whose body substitutes the releases would keep the old ones).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any
from urllib import parse

from moto.awslambda import models as awslambda
from moto.cloudformation import models, parsing
from moto.core.common_models import CloudFormationModel
from moto.ecr import models as ecr
from moto.ecs import models as ecs
from moto.elbv2 import models as elbv2
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
    if change_set is not None:  # the outputs of the template the stack now runs (fix 12)
        stack = self.stacks[change_set.stack_id]
        stack.output_map = _Outputs(stack.resource_map, stack.resource_map._template, stack.stack_id)


_references = parsing.get_references_from_template


def _references_and_substitutions(template: Any) -> list[str]:
    found = list(_references(template))
    text = json.dumps(template)
    for sub in re.findall(r'"Fn::Sub": ("(?:[^"\\]|\\.)*")', text):
        found += [name for name in re.findall(r"\$\{([^}!.]+)\}", json.loads(sub))]
    return found


parsing.get_references_from_template = _references_and_substitutions


class _Outputs(parsing.OutputMap):
    """Outputs whose value moto cannot work out (an attribute it lacks) are left out, not an internal error."""

    def __getitem__(self, key: str) -> Any:
        try:
            return super().__getitem__(key)
        except Exception:  # moto raises what its models raise
            return None


models.CloudFormationBackend.execute_change_set = _execute_and_keep_parameters  # type: ignore[method-assign]


def _parameter_list(self: Any) -> list[dict[str, Any]]:
    template = getattr(self.resource_map, "_template", None)  # what the stack runs (template_dict stays empty when a
    declared = template.get("Parameters", {}) if isinstance(template, dict) else {}  # change set created it)
    given = self.parameters or {}
    found = []
    for key, value in self.resource_map.resolved_parameters.items():
        kind = str(declared.get(key, {}).get("Type", ""))
        if key in self.resource_map.no_echo_parameter_keys:
            found.append({"ParameterKey": key, "ParameterValue": "****"})
        elif kind.startswith("AWS::SSM::Parameter::") and key in given:
            resolved = ",".join(value) if isinstance(value, list) else str(value)
            found.append({"ParameterKey": key, "ParameterValue": given[key], "ResolvedValue": resolved})
        else:
            found.append({"ParameterKey": key, "ParameterValue": value})
    return found


models.Stack.parameter_list = property(_parameter_list)  # type: ignore[method-assign,assignment]


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


class _StackMade:
    """What moto's stack parsing asks of a model, for a resource moto has none for; each model below says what
    CloudFormation does with its resource, through moto's own backend (a mixin: moto finds models among the
    direct subclasses of CloudFormationModel)."""

    TYPE = ""

    def __init__(self, physical_id: str) -> None:
        self.physical_id = physical_id

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,
                                        cloudformation_json: Any, account_id: str, region_name: str) -> Any:
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,  # type: ignore[attr-defined]
                                                   account_id, region_name)


class _BucketPolicy(_StackMade, CloudFormationModel):
    __module__ = "moto.s3.models"  # moto's model registry names the service by the module
    TYPE = "AWS::S3::BucketPolicy"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str, **kwargs: Any) -> _BucketPolicy:
        properties = cloudformation_json["Properties"]
        backend = _s3(account_id, region_name)
        document = _without_no_value(properties["PolicyDocument"])
        backend.put_bucket_policy(properties["Bucket"], json.dumps(document).encode())
        return cls(properties["Bucket"])

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str) -> None:
        backend = _s3(account_id, region_name)
        backend.delete_bucket_policy(cloudformation_json["Properties"]["Bucket"])


s3.FakeBucket.get_permission = lambda self, action, resource: access_control.PermissionResult.NEUTRAL  # type: ignore


def _camel(value: Any) -> Any:
    """CloudFormation's property names (Rules, RegistryId) as the ECR API spells them (rules, registryId)."""
    if isinstance(value, list):
        return [_camel(v) for v in value]
    if isinstance(value, dict):
        return {k[0].lower() + k[1:]: _camel(v) for k, v in value.items()}
    return value


class _ReplicationConfiguration(_StackMade, CloudFormationModel):
    __module__ = "moto.ecr.models"
    TYPE = "AWS::ECR::ReplicationConfiguration"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str, **kwargs: Any) -> _ReplicationConfiguration:
        configuration = _camel(cloudformation_json["Properties"]["ReplicationConfiguration"])
        ecr.ecr_backends[account_id][region_name].put_replication_configuration(configuration)
        return cls(account_id)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str) -> None:
        ecr.ecr_backends[account_id][region_name].put_replication_configuration({"rules": []})


_CREATION_TEMPLATES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # registry -> prefix -> properties


class _RepositoryCreationTemplate(_StackMade, CloudFormationModel):
    __module__ = "moto.ecr.models"
    TYPE = "AWS::ECR::RepositoryCreationTemplate"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str, **kwargs: Any) -> _RepositoryCreationTemplate:
        properties = cloudformation_json["Properties"]
        _CREATION_TEMPLATES.setdefault((account_id, region_name), {})[properties["Prefix"]] = properties
        return cls(properties["Prefix"])

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str) -> None:
        _CREATION_TEMPLATES.get((account_id, region_name), {}).pop(cloudformation_json["Properties"]["Prefix"],
                                                                   None)


def _create_replica(target: Any, repository_name: str) -> None:
    """The repository replication makes in a destination registry, from its creation template if one matches."""
    templates = _CREATION_TEMPLATES.get((target.account_id, target.region_name), {})
    matching = [t for prefix, t in templates.items() if repository_name.startswith(prefix.rstrip("/") + "/")
                and "REPLICATION" in t.get("AppliedFor", [])]
    template = max(matching, key=lambda t: len(t["Prefix"]), default={})
    encryption = template.get("EncryptionConfiguration")
    target.create_repository(repository_name, None, _camel(encryption) if encryption else None, None,
                             template.get("ImageTagMutability"), None, None)
    if template.get("RepositoryPolicy"):
        target.set_repository_policy(None, repository_name, template["RepositoryPolicy"])


_put_image = ecr.ECRBackend.put_image


def _put_image_and_replicate(self: Any, repository_name: str, image_manifest: str, image_tag: str,
                             image_manifest_mediatype: str | None = None, digest: str | None = None) -> Any:
    image = _put_image(self, repository_name, image_manifest, image_tag, image_manifest_mediatype, digest)
    for rule in self.replication_config.get("rules", []):
        filters = rule.get("repositoryFilters") or [{"filter": "", "filterType": "PREFIX_MATCH"}]
        if not any(repository_name.startswith(f["filter"]) for f in filters):
            continue
        for destination in rule["destinations"]:
            target = ecr.ecr_backends[destination["registryId"]][destination["region"]]
            if repository_name not in target.repositories:
                _create_replica(target, repository_name)
            _put_image(target, repository_name, image_manifest, image_tag, image_manifest_mediatype, digest)
    return image


ecr.ECRBackend.put_image = _put_image_and_replicate  # type: ignore[method-assign]

_update_resource = parsing.parse_and_update_resource


def _update_or_make(logical_id: str, resource_json: Any, resources_map: Any, account_id: str,
                    region_name: str) -> Any:
    if logical_id not in resources_map._parsed_resources:  # never made: made now if its condition holds
        return resources_map[logical_id]
    return _update_resource(logical_id, resource_json, resources_map, account_id, region_name)


parsing.parse_and_update_resource = _update_or_make


def _version_attribute(self: Any, attribute_name: str) -> str:
    if attribute_name == "Version":
        return str(self.version)
    raise KeyError(attribute_name)


def _publish_again(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
                   account_id: str, region_name: str) -> Any:
    return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)


def _publish(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
             **kwargs: Any) -> Any:
    properties = cloudformation_json["Properties"]
    backend = awslambda.lambda_backends[account_id][region_name]
    published = backend.publish_version(properties["FunctionName"], properties.get("Description", ""))
    return cls({"Version": published.version})


awslambda.LambdaVersion.has_cfn_attr = classmethod(lambda cls, attr: attr == "Version")  # type: ignore[assignment]
awslambda.LambdaVersion.get_cfn_attribute = _version_attribute  # type: ignore[attr-defined]
awslambda.LambdaVersion.update_from_cloudformation_json = classmethod(_publish_again)  # type: ignore[assignment]
awslambda.LambdaVersion.create_from_cloudformation_json = classmethod(_publish)  # type: ignore[assignment]


_load_balancer_attribute = elbv2.FakeLoadBalancer.get_cfn_attribute


def _full_name(self: Any, attribute_name: str) -> Any:
    if attribute_name == "LoadBalancerFullName":
        return self.arn.split(":loadbalancer/", 1)[1]
    if attribute_name == "TargetGroupFullName":
        return self.arn.rsplit(":", 1)[1]
    return _load_balancer_attribute(self, attribute_name)


elbv2.FakeLoadBalancer.get_cfn_attribute = _full_name  # type: ignore[method-assign]
elbv2.FakeTargetGroup.has_cfn_attr = classmethod(lambda cls, attr: attr == "TargetGroupFullName")  # type: ignore
elbv2.FakeTargetGroup.get_cfn_attribute = _full_name  # type: ignore[attr-defined]


class _Alias(_StackMade, CloudFormationModel):
    __module__ = "moto.awslambda.models"
    TYPE = "AWS::Lambda::Alias"
    function = ""
    name = ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str, **kwargs: Any) -> _Alias:
        properties = cloudformation_json["Properties"]
        backend = awslambda.lambda_backends[account_id][region_name]
        function, version = str(properties["FunctionName"]), str(properties["FunctionVersion"])
        name = properties["Name"]
        try:
            backend.get_alias(name, function)
            backend.update_alias(name, function, version, properties.get("Description", ""), None)  # type: ignore
        except Exception:  # moto's "no such alias" has no one exception type
            backend.create_alias(name, function, version, properties.get("Description", ""), None)  # type: ignore
        made = cls(f"arn:aws:lambda:{region_name}:{account_id}:function:{function}:{name}")
        made.function, made.name = function, name
        return made

    def delete(self, account_id: str, region_name: str) -> None:
        """Deleted with its stack (by the names it was made with: the template's are unresolved by then)."""
        backend = awslambda.lambda_backends[account_id][region_name]
        try:
            backend.delete_alias(self.name, self.function)
        except Exception:  # the function went first: so did its aliases
            return


def _refers_to(value: Any) -> set[str]:
    """The logical ids a resource's text refers to, by Ref or Fn::GetAtt."""
    if isinstance(value, list):
        return set().union(*(_refers_to(v) for v in value))
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, item in value.items():
        if key == "Ref" and isinstance(item, str):
            found.add(item)
        elif key == "Fn::GetAtt":
            found.add(item[0] if isinstance(item, list) else str(item).split(".", 1)[0])
        else:
            found |= _refers_to(item)
    return found


_resource_diff = parsing.ResourceMap.build_resource_diff


def _diff_with_dependents(self: Any, other_template: dict[str, Any],
                          parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    actions = _resource_diff(self, other_template, parameters)
    new = other_template["Resources"]
    refers = {name: _refers_to(body) for name, body in new.items()}
    modified = set(actions["Modify"])
    grown = True
    while grown:
        grown = False
        for name in new:
            if name in self._resource_json_map and name not in modified and refers[name] & modified:
                modified.add(name)
                grown = True
    ordered: list[str] = []  # what a resource refers to first
    while len(ordered) < len(modified):
        ready = [n for n in sorted(modified - set(ordered)) if not (refers[n] & modified) - set(ordered) - {n}]
        ordered += ready or sorted(modified - set(ordered))
    actions["Modify"] = ordered
    return actions


parsing.ResourceMap.build_resource_diff = _diff_with_dependents  # type: ignore[method-assign]

def _update_service_to_newest(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
                              account_id: str, region_name: str) -> Any:
    """The service itself updated (never replaced under its logical id, as moto 5.2 does when its cluster's Ref
    reads as an ARN), onto the newest active revision of its task definition's family."""
    properties = cloudformation_json["Properties"]
    backend = ecs.ecs_backends[account_id][region_name]
    definition = properties["TaskDefinition"]
    family = (definition.family if isinstance(definition, ecs.TaskDefinition)
              else str(definition).rsplit("/", 1)[-1].rsplit(":", 1)[0])
    active = [d for d in backend.task_definitions.get(family, {}).values() if d.status == "ACTIVE"]
    newest = max(active, key=lambda d: d.revision).arn if active else str(definition)
    return backend.update_service({"cluster": original_resource.cluster_name, "service": original_resource.name,
                                   "task_definition": newest, "desired_count": properties.get("DesiredCount")})


ecs.Service.update_from_cloudformation_json = classmethod(_update_service_to_newest)  # type: ignore

_update_definition = ecs.TaskDefinition.update_from_cloudformation_json


def _update_definition_as_the_api(cls: Any, original_resource: Any, new_resource_name: str,
                                  cloudformation_json: Any, account_id: str, region_name: str) -> Any:
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys

    properties = dict(cloudformation_json["Properties"])
    for key in ("ContainerDefinitions", "Volumes"):
        if key in properties:
            properties[key] = remap_nested_keys(properties[key], pascal_to_camelcase)
    return _update_definition.__func__(cls, original_resource, new_resource_name,  # type: ignore[attr-defined]
                                       {**cloudformation_json, "Properties": properties}, account_id, region_name)


ecs.TaskDefinition.update_from_cloudformation_json = classmethod(  # type: ignore[assignment]
    _update_definition_as_the_api)

parsing.NULL_MODELS.extend(t for t in os.environ.get("PIPEC_MOTO_SKIP", "").split(",") if t)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
