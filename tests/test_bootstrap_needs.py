"""A release whose spec changed the bootstrap against a real moto server: the deploy to an environment an
administrator has not bootstrapped yet stops before anything changes, naming what is missing and the command; what
only another registry needs (a new image's repository, made in the build registry) asks nothing of it; an older
release still deploys on the newer bootstrap."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipec.build import compile_spec
from tests.aws_world import World, build_release, moto_server, strip_unsupported, with_existing_networks
from tests.conftest import Run, cli

STAGING, PRODUCTION = "111111111111", "222222222222"


def _ok(result: Run) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def _release(world: World, workdir: Path, version: str) -> None:
    """Build the spec as it now stands and publish it as a release (what the release workflow's jobs do)."""
    assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
    plan = compile_spec(workdir / "pipeline.yaml").plan
    digests = build_release(world, plan, version)
    _ok(cli("bundle", "--version", version, "--commit", version.replace(".", "") * 10,
            *[f"--artifact={name}={digest}" for name, digest in digests.items()], cwd=workdir,
            env=world.env(STAGING)))
    strip_unsupported(world, plan, version)


def _world(workdir: Path, url: str) -> tuple[World, Callable[..., Run]]:
    """Both environments bootstrapped, 1.0.0 released, deployed and verified in each."""
    world = World(url)
    spec = workdir / "pipeline.yaml"
    spec.write_text(with_existing_networks(world, spec.read_text(), PRODUCTION))

    def run(account: str, *args: str) -> Run:
        return cli(*args, cwd=workdir, env=world.env(account))

    assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
    _ok(run(STAGING, "bootstrap", "--env", "staging"))
    _ok(run(PRODUCTION, "bootstrap", "--env", "production"))
    _release(world, workdir, "1.0.0")
    for env, account in (("staging", STAGING), ("production", PRODUCTION)):
        _ok(run(account, "deploy", "--env", env, "--version", "1.0.0"))
        _ok(run(STAGING, "verify", "--env", env, "--version", "1.0.0"))
    return world, run


def _key(world: World, account: str, region: str) -> str:
    """The ARN of the KMS key an environment's bootstrap made in a region."""
    key = world.client("cloudformation", account, region).describe_stack_resource(
        StackName="stigg-production-bootstrap" if account == PRODUCTION else "stigg-staging-bootstrap",
        LogicalResourceId="Key")["StackResourceDetail"]["PhysicalResourceId"]
    return f"arn:aws:kms:{region}:{account}:key/{key}"


def _replica(world: World, region: str, repository: str) -> tuple[dict[str, Any], dict[str, Any]]:
    ecr = world.client("ecr", PRODUCTION, region)
    [made] = ecr.describe_repositories(repositoryNames=[repository])["repositories"]
    return made, json.loads(ecr.get_repository_policy(repositoryName=repository)["policyText"])


@pytest.mark.slow
def test_a_new_image_needs_only_the_build_registrys_bootstrap(workdir: Path) -> None:
    """The worker moves to an image of its own. Its repository is made by the build registry's bootstrap (the push
    needs it); in production's registries replication makes it at the push, from the bootstrap's repository
    creation template there, so production deploys without a bootstrap, and its bootstrap afterwards does not
    collide with the repository replication made."""
    with moto_server() as url:
        world, run = _world(workdir, url)
        spec = workdir / "pipeline.yaml"
        text = spec.read_text().replace("  jobs-zip:\n", "  billing-image:\n    type: container-image\n"
                                        "    context: services/billing\n  jobs-zip:\n", 1)
        text = text.replace("    kind: ecs-fargate\n    artifact: worker-image\n",
                            "    kind: ecs-fargate\n    artifact: billing-image\n", 1)
        spec.write_text(text)
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        assert "[staging us-east-1 bootstrap] UPDATE_COMPLETE" in _ok(run(STAGING, "bootstrap", "--env", "staging"))
        _release(world, workdir, "1.1.0")
        _ok(run(STAGING, "deploy", "--env", "staging", "--version", "1.1.0"))
        _ok(run(STAGING, "verify", "--env", "staging", "--version", "1.1.0"))

        out = _ok(run(PRODUCTION, "deploy", "--env", "production", "--version", "1.1.0"))
        assert "[production eu-west-1 worker] recorded 1.1.0 in /pipec/stigg/production/worker" in out
        for region in ("us-east-1", "eu-west-1"):
            made, policy = _replica(world, region, "stigg/billing-image")
            assert (made["imageTagMutability"], made["encryptionConfiguration"]) == (
                "IMMUTABLE", {"encryptionType": "KMS", "kmsKey": _key(world, PRODUCTION, region)}), made
            assert policy["Statement"] == [{
                "Sid": "LambdaPulls", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Condition": {"StringLike": {
                    "aws:SourceArn": f"arn:aws:lambda:{region}:{PRODUCTION}:function:stigg-*-*"}}}]
        out = _ok(run(PRODUCTION, "bootstrap", "--env", "production"))
        assert "[production us-east-1 bootstrap]" in out and "[production eu-west-1 bootstrap]" in out
        assert [r["repositoryName"] for r in world.client("ecr", PRODUCTION, "us-east-1").describe_repositories()[
            "repositories"]] == ["stigg/api-image", "stigg/worker-image", "stigg/billing-image"]

        # A newer bootstrap serves older releases: staging, bootstrapped for 1.1.0, still takes 1.0.0's api back
        # (the worker's 1.0.0 predates its artifact: PC617 says so).
        assert "recorded 1.0.0" in _ok(run(STAGING, "rollback", "--env", "staging", "--service", "api", "--to",
                                           "1.0.0"))


@pytest.mark.slow
def test_the_first_image_function_waits_for_the_administrators_bootstrap(workdir: Path) -> None:
    """A new service, a function made from an image: the CloudFormation role of every environment (in its home
    region) must now be able to pull images to make a function from one, a grant only a bootstrap adds. Production's
    deploy stops, naming the missing statement, until its administrator ran it; then the function is made from the
    image that replication put in production's registries, whose policy lets it pull."""
    with moto_server() as url:
        world, run = _world(workdir, url)
        spec = workdir / "pipeline.yaml"
        text = spec.read_text().replace("  jobs-zip:\n", "  render-image:\n    type: container-image\n"
                                        "    context: services/render\n  jobs-zip:\n", 1)
        text = text.replace("\nchecks:\n", "  render:\n    kind: lambda\n    artifact: render-image\n"
                            "    command: [render.handler]\n    timeout: 60\n    scaling:\n"
                            "      staging: {memory: 1024}\n      production: {memory: 1024}\n\nchecks:\n", 1)
        spec.write_text(text)
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        _ok(run(STAGING, "bootstrap", "--env", "staging"))
        _release(world, workdir, "1.1.0")
        _ok(run(STAGING, "deploy", "--env", "staging", "--version", "1.1.0"))
        _ok(run(STAGING, "verify", "--env", "staging", "--version", "1.1.0"))

        before = json.loads(_ok(run(PRODUCTION, "status", "--env", "production", "--format", "json")))
        refused = run(PRODUCTION, "deploy", "--env", "production", "--version", "1.1.0")
        assert refused.exit_code == 4
        assert refused.stderr.startswith(
            "pipec: error[PC622]: the bootstrap of production lacks what the release needs: us-east-1 stack "
            "stigg-production-bootstrap has no statement FunctionImages in CfnExecutionRole; nothing was changed\n"
            "hint: an administrator runs `pipec bootstrap --env production --region us-east-1` with this spec (the "
            "deploy role cannot change the bootstrap or network stacks), then deploy again\n"), refused.stderr
        assert json.loads(_ok(run(PRODUCTION, "status", "--env", "production", "--format", "json"))) == before

        _ok(run(PRODUCTION, "bootstrap", "--env", "production"))
        out = _ok(run(PRODUCTION, "deploy", "--env", "production", "--version", "1.1.0"))
        assert "[production eu-west-1 render] recorded 1.1.0 in /pipec/stigg/production/render" in out
        for region in ("us-east-1", "eu-west-1"):
            function = world.client("lambda", PRODUCTION, region).get_function(FunctionName="stigg-production-render")
            assert function["Code"]["ImageUri"].startswith(
                f"{PRODUCTION}.dkr.ecr.{region}.amazonaws.com/stigg/render-image@sha256:"), function["Code"]
            _, policy = _replica(world, region, "stigg/render-image")
            assert [s["Sid"] for s in policy["Statement"]] == ["LambdaPulls"]


@pytest.mark.slow
def test_a_new_region_waits_for_its_bootstrap_then_deploys(workdir: Path) -> None:
    """Staging gains a region: its release stops before any change until an administrator bootstrapped it, then
    deploys there (a function; images reach a region only once its replication rule exists, before their push)."""
    with moto_server() as url:
        world = World(url)
        spec = workdir / "pipeline.yaml"

        def run(*args: str) -> Run:
            return cli(*args, cwd=workdir, env=world.env(STAGING))

        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        _ok(run("bootstrap", "--env", "staging"))
        _release(world, workdir, "1.0.0")
        _ok(run("deploy", "--env", "staging", "--version", "1.0.0"))

        text = spec.read_text().replace("    regions: [us-east-1]\n    approval: none",
                                        "    regions: [us-east-1, us-west-2]\n    approval: none", 1)
        certificate = next(line for line in text.splitlines(keepends=True)
                           if line.startswith("      us-east-1: arn:aws:acm:us-east-1:111111111111:"))
        text = text.replace(certificate, certificate + certificate.replace("us-east-1", "us-west-2"), 1)
        spec.write_text(text)
        _release(world, workdir, "1.1.0")
        refused = run("deploy", "--env", "staging", "--version", "1.1.0")
        assert refused.exit_code == 4
        message = refused.stderr.split("\n", 1)[0]
        assert message.startswith("pipec: error[PC622]: the bootstrap of staging lacks what the release needs: "
                                  "us-west-2 stack stigg-staging-bootstrap (it does not exist); us-west-2 stack "
                                  "stigg-staging-network (it does not exist); us-west-2 parameter "
                                  "/pipec/stigg/staging/alerts/topic-arn (read by api, worker, usage-report, "
                                  "webhooks); "), message
        assert message.endswith("; nothing was changed")
        assert "an administrator runs `pipec bootstrap --env staging --region us-west-2` with this spec" in \
            refused.stderr
        assert {json.loads(v)["version"] for v in [world.client("ssm", STAGING, "us-east-1").get_parameter(
            Name="/pipec/stigg/staging/api")["Parameter"]["Value"]]} == {"1.0.0"}

        out = _ok(run("bootstrap", "--env", "staging", "--region", "us-west-2"))
        assert "[staging us-west-2 bootstrap] CREATE_COMPLETE" in out and "[staging us-west-2 network] " \
            "CREATE_COMPLETE" in out
        out = _ok(run("deploy", "--env", "staging", "--version", "1.1.0", "--region", "us-west-2", "--service",
                      "webhooks"))
        assert "[staging us-west-2 webhooks] recorded 1.1.0 in /pipec/stigg/staging/webhooks" in out


def test_what_a_template_makes_is_read_as_cloudformation_evaluates_its_conditions() -> None:
    """The conditions and `Fn::If` branches of a template, evaluated with a stack's parameter values and pseudo
    parameters; what cannot be evaluated counts as made (a deploy then asks for a bootstrap rather than skip one)."""
    from pipec.aws.needs import made
    from pipec.plan.model import Target

    template = {
        "Parameters": {"Owner": {"Type": "String"}, "Mode": {"Type": "String", "Default": "b"}},
        "Conditions": {
            "Owns": {"Fn::Equals": [{"Ref": "Owner"}, "true"]},
            "Here": {"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-west-1"]},
            "Both": {"Fn::And": [{"Condition": "Owns"}, {"Condition": "Here"}]},
            "Either": {"Fn::Or": [{"Condition": "Owns"}, {"Condition": "Here"}]},
            "Elsewhere": {"Fn::Not": [{"Condition": "Both"}]},
            "ModeA": {"Fn::Equals": [{"Ref": "Mode"}, "a"]},
            "Build": {"Fn::Equals": [{"Ref": "AWS::AccountId"}, "111111111111"]},
            "Unknown": {"Fn::Equals": [{"Fn::Select": [0, ["x"]]}, "x"]},
            "Loop": {"Condition": "Loop"},
        },
        "Resources": {
            "Always": {"Type": "T", "Properties": {"Policy": {"Statement": [{"Sid": "A", "Effect": "Allow"}]}}},
            "Both": {"Type": "T", "Condition": "Both"},
            "Either": {"Type": "T", "Condition": "Either"},
            "Elsewhere": {"Type": "T", "Condition": "Elsewhere"},
            "ModeA": {"Type": "T", "Condition": "ModeA"},
            "Build": {"Type": "T", "Condition": "Build"},
            "Unknown": {"Type": "T", "Condition": "Unknown"},
            "Loop": {"Type": "T", "Condition": "Loop"},
            "Missing": {"Type": "T", "Condition": "NoSuchCondition"},
            "Branches": {"Type": "T", "Properties": {"Statements": [
                {"Fn::If": ["Owns", {"Sid": "IfOwner", "Effect": "Allow"}, {"Sid": "IfNot", "Effect": "Deny"}]},
                {"Fn::If": ["Unknown", {"Sid": "U1", "Effect": "Allow"}, {"Sid": "U2", "Effect": "Allow"}]},
                {"Sid": "NotAStatement"},
                {"Fn::Sub": '{"Statement": [{"Sid": "InText", "Effect": "Allow"}]}'},
                "{not json"]}},
        },
    }
    here = made(template, {"Owner": "true"}, Target("staging", "eu-west-1", "111111111111"))
    assert sorted(here) == ["Always", "Both", "Branches", "Build", "Either", "Loop", "Missing", "Unknown"]
    assert here["Always"] == {"A"} and here["Branches"] == {"IfOwner", "U1", "U2", "InText"}
    there = made(template, {"Owner": "false", "Mode": "a"}, Target("production", "us-east-1", "222222222222"))
    assert sorted(there) == ["Always", "Branches", "Elsewhere", "Loop", "Missing", "ModeA", "Unknown"]
    assert there["Branches"] == {"IfNot", "U1", "U2", "InText"}


def test_a_condition_one_part_decides_is_decided_without_the_others() -> None:
    """Where the account is not known (the diff reads files, not an account), a false part still decides an
    `Fn::And` and a true one an `Fn::Or`; what is left undecided counts as made."""
    from pipec.render.conditions import Stack

    template = {"Conditions": {
        "Owns": {"Fn::Equals": [{"Ref": "Owner"}, "true"]},
        "Foreign": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AWS::AccountId"}, "111111111111"]}]},
        "Receives": {"Fn::And": [{"Condition": "Owns"}, {"Condition": "Foreign"}]},
        "Either": {"Fn::Or": [{"Condition": "Owns"}, {"Condition": "Foreign"}]}},
        "Resources": {name: {"Type": "T", "Condition": name} for name in ("Receives", "Either")}}
    assert Stack(template, {"Owner": "false"}, "us-east-1").holds("Receives") is False
    assert Stack(template, {"Owner": "true"}, "us-east-1").holds("Receives") is None
    assert Stack(template, {"Owner": "true"}, "us-east-1").holds("Either") is True
    assert Stack(template, {"Owner": "false"}, "us-east-1").holds("Either") is None
    assert sorted(Stack(template, {"Owner": "false"}, "us-east-1").resources()) == ["Either"]
    assert sorted(Stack(template, {"Owner": "false"}, "us-east-1", "111111111111").resources()) == []
    assert sorted(Stack(template, {"Owner": "true"}, "us-east-1", "222222222222").resources()) == [
        "Either", "Receives"]
