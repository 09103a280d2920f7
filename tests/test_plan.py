"""The Plan itself, independent of the templates: names, parameters per environment and region, roles, the
artifacts each stack uses, and the patterns IAM grants on, which must cover exactly the names they are for."""

from __future__ import annotations

import fnmatch
import re

import pytest

from pipec.diagnostics import PipecError
from pipec.load.load import load_bytes
from pipec.plan import names
from pipec.plan.model import Plan, Release, Target
from pipec.plan.plan import make_plan
from pipec.validate.validate import validate
from tests.conftest import EXAMPLE


def _plan(text: str | None = None) -> Plan:
    return make_plan(validate(load_bytes((text or EXAMPLE.read_text()).encode(), "pipeline.yaml")))


PLAN = _plan()


def test_names_of_stacks_roles_buckets_and_ledgers() -> None:
    production = PLAN.environment("production")
    api = PLAN.service("api")
    assert [(s.target.env, s.target.region, s.name) for s in api.stacks] == [
        ("staging", "us-east-1", "stigg-staging-api"),
        ("production", "us-east-1", "stigg-production-api"),
        ("production", "eu-west-1", "stigg-production-api"),
    ]
    assert (production.deploy_role, production.cfn_role, production.sanity_role) == (
        "stigg-production-deploy", "stigg-production-cfn", "stigg-production-sanity")
    assert production.role_arn(production.deploy_role) == "arn:aws:iam::222222222222:role/stigg-production-deploy"
    assert production.deploy_subject == "repo:stiggio/pricing-api:environment:production"
    assert PLAN.release_bucket == "stigg-staging-111111111111-us-east-1"
    assert api.ledger_for("production") == "/pipec/stigg/production/api"
    assert [s.name for s in production.bootstrap] == ["stigg-production-bootstrap"] * 2
    assert PLAN.build_role == "stigg-build"


def test_templates_get_names_with_the_environment_left_to_cloudformation() -> None:
    api, webhooks = PLAN.service("api"), PLAN.service("webhooks")
    assert (api.sub_name, api.log_group, api.scaling_policy) == (
        "stigg-${Environment}-api", "/pipec/stigg/${Environment}/api", "stigg-${Environment}-api-cpu")
    assert (webhooks.log_group, webhooks.queue) == ("/aws/lambda/stigg-${Environment}-webhooks",
                                                    "stigg-${Environment}-webhooks-dlq")
    assert [a.name for a in webhooks.alarms] == ["stigg-${Environment}-webhooks-error-rate",
                                                 "stigg-${Environment}-webhooks-p99-duration",
                                                 "stigg-${Environment}-webhooks-throttles"]
    assert webhooks.alarm_in(webhooks.alarms[0], "staging") == "stigg-staging-webhooks-error-rate"


def test_parameters_per_environment_and_region_hold_scaling_and_config_only() -> None:
    api = PLAN.service("api")
    staging = dict(api.stack_for("staging", "us-east-1").values)
    production = dict(api.stack_for("production", "eu-west-1").values)
    assert {k: staging[k] for k in ("Cpu", "Memory", "MinCount", "MaxCount", "EnvLogLevel")} == {
        "Cpu": "256", "Memory": "512", "MinCount": "1", "MaxCount": "2", "EnvLogLevel": "debug"}
    assert {k: production[k] for k in ("Cpu", "Memory", "MinCount", "MaxCount", "EnvLogLevel")} == {
        "Cpu": "1024", "Memory": "2048", "MinCount": "3", "MaxCount": "12", "EnvLogLevel": "info"}
    assert production["CertificateArn"].startswith("arn:aws:acm:eu-west-1:222222222222:certificate/")
    assert production["VpcId"] == "/pipec/stigg/production/network/vpc-id"
    # Every stack of a service has the same keys: the declared parameters, less the per-release ones.
    declared = [p.key for p in api.parameters if not p.per_release]
    assert all([k for k, _ in s.values] == declared for s in api.stacks)
    assert {p.key for p in api.parameters if p.per_release} == {"Version", "ImageUri"}


def test_each_stack_uses_its_artifact_by_digest_or_by_sha256() -> None:
    release = Release("1.4.2", "a" * 40, {"api-image": "sha256:" + "1" * 64, "webhooks-zip": "sha256:" + "ff" * 32})
    api, webhooks = PLAN.service("api"), PLAN.service("webhooks")
    assert (api.artifact.name, webhooks.artifact.name) == ("api-image", "webhooks-zip")
    assert api.release_values(Target("production", "eu-west-1", "222222222222"), release) == {
        "Version": "1.4.2",
        "ImageUri": "222222222222.dkr.ecr.eu-west-1.amazonaws.com/stigg/api-image@sha256:" + "1" * 64}
    assert webhooks.release_values(Target("production", "eu-west-1", "222222222222"), release) == {
        "Version": "1.4.2", "CodeBucket": "stigg-production-222222222222-eu-west-1",
        "CodeKey": "releases/1.4.2/artifacts/webhooks-zip.zip",
        "CodeSha256": "//////////////////////////////////////////8="}


def test_alarms_say_what_they_watch() -> None:
    def watched(service: str) -> list[tuple[str, str]]:
        found = []
        for alarm in PLAN.service(service).alarms:
            metric = alarm.watches
            found.append((alarm.key, metric.part.dimensions if hasattr(metric, "part") else metric.dimensions))
        return found

    assert watched("api") == [("5xx-rate", "target-group"), ("p99-latency", "target-group"),
                              ("unhealthy-targets", "target-group"), ("cpu", "ecs-service"),
                              ("memory", "ecs-service")]
    assert watched("worker") == [("cpu", "ecs-service"), ("memory", "ecs-service")]
    assert [a.rollback for a in PLAN.service("worker").alarms] == [True, True]
    assert watched("webhooks") == [("error-rate", "lambda-alias"), ("p99-duration", "lambda-alias"),
                                   ("throttles", "lambda-alias")]


def test_the_release_workflow_jobs_follow_promotion_order() -> None:
    staging, production = PLAN.environments
    assert (staging.needs, staging.stage_job, staging.deploy_job, staging.e2e_job) == (
        "bundle", "promote-staging", "deploy-staging", "e2e-staging")
    assert (staging.stage_workflow, staging.stage_group) == ("deploy-staging.yml", "stigg-deploy-staging")
    assert production.needs == "promote-staging"
    assert [a.job for a in PLAN.artifacts] == ["build-api-image", "build-worker-image", "build-jobs-zip",
                                               "build-webhooks-zip"]


def _concrete(pattern: str, env: str, account: str) -> str:
    """An IAM pattern of the bootstrap template as it is in one environment and account, any region."""
    return (pattern.replace(names.ENV, env).replace(names.ACCOUNT, account).replace(names.PARTITION, "aws")
            .replace(names.REGION, "*"))


@pytest.mark.parametrize("env_name", ["staging", "production"])
def test_the_cfn_role_may_touch_every_resource_the_service_stacks_name(env_name: str) -> None:
    n, env = PLAN.account_names, PLAN.environment(env_name)
    patterns = [_concrete(p, env.name, env.account) for p in (n.functions, n.queues, n.alarms, n.lambda_logs,
                                                               n.pipec_logs, n.event_rules, n.ecs, n.codedeploy)]
    made = []
    for service in PLAN.services:
        resource = service.resource_in(env.name)
        made += [f"arn:aws:logs:us-east-1:{env.account}:log-group:{names.instance(service.log_group, env.name)}"]
        made += [f"arn:aws:cloudwatch:us-east-1:{env.account}:alarm:{service.alarm_in(a, env.name)}"
                 for a in service.alarms]
        if service.kind == "lambda":
            made += [f"arn:aws:lambda:us-east-1:{env.account}:function:{resource}",
                     f"arn:aws:sqs:us-east-1:{env.account}:{names.instance(service.queue, env.name)}",
                     f"arn:aws:codedeploy:us-east-1:{env.account}:application:{resource}"]
        else:
            made += [f"arn:aws:ecs:us-east-1:{env.account}:cluster/{resource}"]
    assert [m for m in made if not any(fnmatch.fnmatchcase(m, p) for p in patterns)] == []


def test_the_deploy_role_may_pass_only_its_own_cfn_role_and_touch_only_its_stacks() -> None:
    n = PLAN.account_names
    production = PLAN.environment("production")
    assert _concrete(n.cfn_role_arn, "production", production.account) == production.role_arn(production.cfn_role)
    stacks = _concrete(n.stacks, "production", production.account)
    assert fnmatch.fnmatchcase(f"arn:aws:cloudformation:eu-west-1:222222222222:stack/"
                               f"{PLAN.service('api').stack_for('production', 'eu-west-1').name}/id", stacks)
    assert not fnmatch.fnmatchcase("arn:aws:cloudformation:us-east-1:222222222222:stack/stigg-staging-api/id",
                                   stacks)


def test_shared_infrastructure_parameters_are_named_once() -> None:
    n = PLAN.account_names
    api = dict(PLAN.service("api").stack_for("staging", "us-east-1").values)
    for key, name in n.shared.items():
        assert re.fullmatch(r"/pipec/stigg/\$\{Environment\}/[a-z/-]+", name), name
        # The web service's stacks read every one of them, by that very name.
        assert names.instance(name, "staging") in api.values(), key


def test_names_longer_than_aws_allows_are_refused_at_their_key() -> None:
    long_env = "production-eu-customers-primary"
    text = EXAMPLE.read_text().replace("  production:\n", f"  {long_env}:\n").replace(
        "    production:", f"    {long_env}:").replace("project: stigg", "project: acme-shop-platform")
    with pytest.raises(PipecError) as caught:
        _plan(text)
    found = [(d.code, d.message.split('"')[0], d.line) for d in caught.value.diagnostics]
    assert ("PC211", "the bucket name ", text.split("\n").index(f"  {long_env}:") + 1) in found
    assert all(code == "PC211" for code, _, _ in found)
    assert caught.value.exit_code == 1


def test_a_scaling_value_given_for_some_environments_only_is_empty_in_the_others() -> None:
    text = EXAMPLE.read_text().replace("staging:    {memory: 512, reserved_concurrency: 5}",
                                       "staging:    {memory: 512}")
    webhooks = _plan(text).service("webhooks")
    reserved = next(p for p in webhooks.parameters if p.key == "ReservedConcurrency")
    assert (reserved.type, reserved.pattern) == ("String", r"^([1-9][0-9]{0,3}|10000)?$")
    assert [(s.target.env, dict(s.values)["ReservedConcurrency"]) for s in webhooks.stacks] == [
        ("staging", ""), ("production", "100"), ("production", "100")]
    everywhere = next(p for p in PLAN.service("webhooks").parameters if p.key == "ReservedConcurrency")
    assert (everywhere.type, everywhere.min_value, everywhere.max_value) == ("Number", 1, 10000)
    assert "ReservedConcurrency" not in {p.key for p in PLAN.service("worker").parameters}


def test_lambda_may_pull_the_images_of_the_project_s_functions_here_and_no_one_else_s() -> None:
    pattern = _concrete(PLAN.account_names.functions_here, "staging", "111111111111").replace("*:111", "us-east-1:111")
    assert pattern == "arn:aws:lambda:us-east-1:111111111111:function:stigg-*-*"
    for service in PLAN.services:
        for env in PLAN.environments:
            function = f"arn:aws:lambda:us-east-1:111111111111:function:{service.resource_in(env.name)}"
            assert fnmatch.fnmatchcase(function, pattern)
    assert not fnmatch.fnmatchcase("arn:aws:lambda:us-east-1:111111111111:function:other-staging-api", pattern)
    assert not fnmatch.fnmatchcase("arn:aws:lambda:us-east-1:111111111111:function:stigg", pattern)


def test_a_network_only_where_a_service_runs_in_a_vpc_and_managed_vpcs_never_overlap() -> None:
    from tests.conftest import SPECS

    lambdas_only = _plan((SPECS / "saas-three-accounts.yaml").read_text())
    assert [e.network for e in lambdas_only.environments] == [(), (), ()]  # no VPC, no NAT gateway to pay for
    assert all(not s.vpc and "VpcId" not in {p.key for p in s.parameters} for s in lambdas_only.services)
    fleet = _plan((SPECS / "ecs-fleet.yaml").read_text())
    ranges = [dict(s.values)["VpcCidr"] for e in fleet.environments for s in e.network]
    assert ranges == ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]
    # the example: a function that asks for the VPC gets it; one that does not, runs outside
    assert (PLAN.service("usage-report").vpc, PLAN.service("webhooks").vpc, PLAN.service("api").vpc) == (
        True, False, True)
    assert {"VpcId", "PrivateSubnets"} <= {p.key for p in PLAN.service("usage-report").parameters}
    assert not {"VpcId", "PrivateSubnets"} & {p.key for p in PLAN.service("webhooks").parameters}
    assert dict(PLAN.environment("staging").network[0].values)["VpcCidr"] == "10.10.0.0/16"  # given in the spec
