"""Retiring a service against a real moto server: the stacks pipec made that the spec no longer names are shown by
`pipec status`, listed by `pipec prune` and deleted by `pipec prune --apply`, exactly those, never a stack pipec did
not make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipec.build import compile_spec
from tests.aws_world import World, build_release, moto_server, strip_unsupported
from tests.conftest import EXAMPLE as REPO_SPEC
from tests.conftest import Calls, Run, cli

STAGING = "111111111111"
QUEUE = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})


def _ok(result: Run) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_prune_deletes_exactly_the_stacks_of_a_removed_service(workdir: Path, api_calls: Calls) -> None:
    calls = api_calls
    with moto_server() as url:
        world = World(url)

        def run(*args: str) -> Run:
            return cli(*args, cwd=workdir, env=world.env(STAGING))

        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        plan = compile_spec(workdir / "pipeline.yaml").plan
        _ok(run("bootstrap", "--env", "staging"))
        digests = build_release(world, plan, "1.0.0")
        _ok(run("bundle", "--version", "1.0.0", "--commit", "1" * 40,
                *[f"--artifact={name}={digest}" for name, digest in digests.items()]))
        strip_unsupported(world, plan, "1.0.0")
        _ok(run("deploy", "--env", "staging", "--version", "1.0.0"))
        assert "nothing to prune" in _ok(run("prune", "--env", "staging"))

        cloudformation = world.client("cloudformation", STAGING, "us-east-1")
        foreign = {  # none of them is pipec's worker stack, whatever it looks like
            "stigg-staging-legacy": [],
            "other-staging-worker": [{"Key": "pipec:project", "Value": "other"},
                                     {"Key": "pipec:environment", "Value": "staging"},
                                     {"Key": "pipec:service", "Value": "worker"}],
            "stigg-staging-reports": [{"Key": "pipec:project", "Value": "stigg"},
                                      {"Key": "pipec:environment", "Value": "staging"},
                                      {"Key": "pipec:service", "Value": "billing"}],
        }
        for name, tags in foreign.items():
            cloudformation.create_stack(StackName=name, TemplateBody=QUEUE, Tags=tags)

        spec = workdir / "pipeline.yaml"
        text = spec.read_text()
        start, end = text.index("  worker:"), text.index("  usage-report:")
        spec.write_text(text[:start] + text[end:])
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0

        status = run("status", "--env", "staging")
        assert status.exit_code == 0
        assert ("pipec: staging us-east-1: stack stigg-staging-worker (service worker, runs 1.0.0) is pipec's, but "
                "pipeline.yaml no longer names it: it keeps running until `pipec prune --env staging --apply` "
                "deletes it\n") in status.stderr
        assert status.stderr.count("no longer names it") == 1

        listed = _ok(run("prune", "--env", "staging")).splitlines()
        assert listed[0].startswith("[staging us-east-1 worker] would delete stigg-staging-worker (runs 1.0.0); keeps "
                                    "LogGroup (AWS::Logs::LogGroup ")
        assert listed[0].endswith("), and the ledger /pipec/stigg/staging/worker")
        log_group = listed[0].split("keeps LogGroup (AWS::Logs::LogGroup ", 1)[1].split(")", 1)[0]
        worker = compile_spec(REPO_SPEC).plan.service("worker")
        assert log_group == worker.log_group.replace("${Environment}", "staging")
        assert listed[1:] == ["pipec: nothing was deleted; `pipec prune --env staging --apply` deletes it "
                              "(administrator credentials)"]
        before = {s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]}
        assert "stigg-staging-worker" in before

        applied = _ok(run("prune", "--env", "staging", "--apply"))
        assert "[staging us-east-1 worker] stigg-staging-worker DELETE_COMPLETE" in applied
        after = {s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]}
        assert before - after == {"stigg-staging-worker"}
        assert set(foreign) | {"stigg-staging-api", "stigg-staging-bootstrap", "stigg-staging-network"} <= after
        # What the template retains stays: the log group, and the ledger with the service's history.
        logs = world.client("logs", STAGING, "us-east-1")
        assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]] == [
            log_group]
        ssm = world.client("ssm", STAGING, "us-east-1")
        assert json.loads(ssm.get_parameter(Name="/pipec/stigg/staging/worker")["Parameter"]["Value"])[
            "version"] == "1.0.0"
        assert "nothing to prune" in _ok(run("prune", "--env", "staging"))
        assert "no longer names" not in run("status", "--env", "staging").stderr

        # The web service's load balancer is protected from deletion: the protection is lifted for its stack only.
        text = spec.read_text()
        start, end = text.index("  api:"), text.index("  usage-report:")
        spec.write_text(text[:start] + text[end:])
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        resources = cloudformation.describe_stack_resources(StackName="stigg-staging-api")["StackResources"]
        balancer = next(r["PhysicalResourceId"] for r in resources
                        if r.get("ResourceType") == "AWS::ElasticLoadBalancingV2::LoadBalancer")
        calls.clear()
        applied = _ok(run("prune", "--env", "staging", "--apply"))
        assert f"[staging us-east-1 api] deletion protection lifted from {balancer}" in applied
        lifted = [p for o, p in calls if o == "ModifyLoadBalancerAttributes"]
        assert lifted == [{"LoadBalancerArn": balancer,
                           "Attributes": [{"Key": "deletion_protection.enabled", "Value": "false"}]}]
        deleted = [p["StackName"] for o, p in calls if o == "DeleteStack"]
        assert len(deleted) == 1 and "/stigg-staging-api/" in deleted[0]
        assert "stigg-staging-api" not in {s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]}

        # Staging renamed qa: every service stack of the former staging is a stray; its bootstrap and network stay.
        spec.write_text(spec.read_text().replace("  staging:", "  qa:").replace("      staging: ", "      qa: "))
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0, "renamed spec"
        unknown = run("prune", "--env", "staging")
        assert unknown.exit_code == 1 and "error[PC402]: environment \"staging\" is not in pipeline.yaml" in \
            unknown.stderr and "pipec prune --env staging --region us-east-1" in unknown.stderr
        listed = _ok(run("prune", "--env", "staging", "--region", "us-east-1")).splitlines()
        assert [line.split("] ", 1)[0] for line in listed if line.startswith("[")] == [
            "[staging us-east-1 usage-report", "[staging us-east-1 webhooks"]
        assert "pipec: stigg-staging-bootstrap stays: a former environment's bootstrap and network are deleted by " \
               "hand, once its service stacks are gone (its buckets, keys and repositories are retained)" in listed
        assert listed[-1] == ("pipec: nothing was deleted; `pipec prune --env staging --region us-east-1 --apply` "
                              "deletes them (administrator credentials)")
        _ok(run("prune", "--env", "staging", "--region", "us-east-1", "--apply"))
        remaining = {s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]}
        assert not {"stigg-staging-usage-report", "stigg-staging-webhooks"} & remaining
        assert set(foreign) | {"stigg-staging-bootstrap", "stigg-staging-network"} <= remaining
        assert "has no stack" in _ok(run("prune", "--env", "nosuch", "--region", "us-east-1"))


def test_prune_refuses_a_name_that_is_not_a_region(workdir: Path) -> None:
    result = cli("prune", "--env", "staging", "--region", "us-east-1; rm -rf /", cwd=workdir,
                 env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 1
    assert 'error[PC402]: "us-east-1; rm -rf /" is not an AWS region' in result.stderr
