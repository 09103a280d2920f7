"""`pipec plan` against a real moto server: what a release would change in what is deployed, never executed, and
the commits it brings. Where moto's change sets say less than CloudFormation's (no replacement, no property
details), the same reading is fed CloudFormation's own answer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipec.aws import preview
from pipec.build import compile_spec
from tests.aws_world import World, build_release, moto_server, strip_unsupported
from tests.conftest import EXAMPLE, Calls, Run, cli

STAGING = "111111111111"


def _ok(result: Run) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=folder,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _commit(folder: Path, message: str) -> str:
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", message)
    return _git(folder, "rev-parse", "HEAD")


def _publish(world: World, run: Any, folder: Path, version: str, commit: str) -> None:
    assert cli("build", "pipeline.yaml", cwd=folder).exit_code == 0
    plan = compile_spec(folder / "pipeline.yaml").plan
    digests = build_release(world, plan, version)
    _ok(run("bundle", "--version", version, "--commit", commit,
            *[f"--artifact={name}={digest}" for name, digest in digests.items()]))
    strip_unsupported(world, plan, version)


@pytest.mark.slow
def test_plan_shows_scaling_iam_and_commits_and_changes_nothing(workdir: Path, api_calls: Calls) -> None:
    calls = api_calls
    with moto_server() as url:
        world = World(url)

        def run(*args: str) -> Run:
            return cli(*args, cwd=workdir, env=world.env(STAGING))

        _git(workdir, "init", "-q", "-b", "main")
        first = _commit(workdir, "feat: the pricing API")
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        _ok(run("bootstrap", "--env", "staging"))
        _publish(world, run, workdir, "1.0.0", first)
        _ok(run("deploy", "--env", "staging", "--version", "1.0.0"))

        spec = workdir / "pipeline.yaml"
        text = spec.read_text()
        text = text.replace("staging:    {cpu: 256, memory: 512, min: 1, max: 2}",
                            "staging:    {cpu: 256, memory: 512, min: 2, max: 4}")
        secrets = '      BATCH_SIZE: "500"\n    secrets:\n      DATABASE_URL: ssm:/stigg/{env}/database-url\n'
        text = text.replace(secrets, secrets + "      QUEUE_TOKEN: ssm:/stigg/{env}/queue-token\n")
        assert "queue-token" in text and "min: 2, max: 4" in text
        spec.write_text(text)
        scaled = _commit(workdir, "feat: api scales to four tasks in staging")
        (workdir / "NOTES.md").write_text("the worker reads a queue token\n")
        second = _commit(workdir, "feat(worker): read the queue's token | with a pipe")
        _publish(world, run, workdir, "1.1.0", second)

        cloudformation = world.client("cloudformation", STAGING, "us-east-1")
        before = {s["StackName"]: s["LastUpdatedTime"] if "LastUpdatedTime" in s else s["CreationTime"]
                  for s in cloudformation.describe_stacks()["Stacks"]}
        calls.clear()
        result = run("plan", "--env", "staging", "--version", "1.1.0", "--format", "json")
        found = json.loads(_ok(result))
        # Change sets made, read and deleted, none executed, none handed a role (the plan role may pass none).
        made = [p for operation, p in calls if operation == "CreateChangeSet"]
        assert len(made) == 4 and all("RoleARN" not in p and p["ChangeSetName"].startswith("pipec-plan-1-1-0-")
                                      for p in made)
        assert len([o for o, _ in calls if o == "DeleteChangeSet"]) == 4
        assert not {o for o, _ in calls} & {"ExecuteChangeSet", "UpdateStack", "CreateStack", "DeleteStack",
                                            "PutParameter", "PutObject"}
        assert "pipec: planned staging us-east-1 api" in result.stderr
        stacks = {s["service"]: s for s in found["stacks"]}
        assert set(stacks) == {"api", "worker", "usage-report", "webhooks"}
        api, worker = stacks["api"], stacks["worker"]
        assert (api["running"], api["version"], api["new"]) == ("1.0.0", "1.1.0", False)
        changed = {key: (old, new) for key, old, new in api["parameters"]}
        assert changed["MinCount"] == ("1", "2") and changed["MaxCount"] == ("2", "4")
        assert changed["Version"] == ("1.0.0", "1.1.0")
        # The worker's task role may now read the new parameter: flagged, where nothing else grants more.
        grants = [g for c in worker["changes"] for g in c["grants"]]
        assert any("ssm" in g and "queue-token" in g for g in grants), worker["changes"]
        assert worker["broadens"] and not stacks["webhooks"]["broadens"]
        assert not any(c["grants"] for c in api["changes"])
        # The commits the release brings to staging, newest first.
        assert found["since"] == first
        assert found["commits"] == [{"sha": second, "subject": "feat(worker): read the queue's token | with a pipe"},
                                    {"sha": scaled, "subject": "feat: api scales to four tasks in staging"}]
        # Nothing was executed, and no change set is left behind.
        after = {s["StackName"]: s["LastUpdatedTime"] if "LastUpdatedTime" in s else s["CreationTime"]
                 for s in cloudformation.describe_stacks()["Stacks"]}
        assert after == before
        for name in ("stigg-staging-api", "stigg-staging-worker"):  # (moto keeps executed change sets listed)
            listed = cloudformation.list_change_sets(StackName=name)["Summaries"]
            assert listed and not [c for c in listed if c["ChangeSetName"].startswith("pipec-plan-")]
        assert {row["version"] for row in json.loads(_ok(run("status", "--env", "staging", "--format",
                                                             "json")))} == {"1.0.0"}

        text_out = _ok(run("plan", "--env", "staging", "--version", "1.1.0", "--service", "api"))
        lines = text_out.splitlines()
        assert lines[0] == f"Plan: deploy 1.1.0 ({second[:12]}) to staging"
        assert "  parameter MinCount: 1 -> 2" in lines
        assert f"Commits since {first[:12]} (2):" in lines
        assert f"  {scaled[:12]} feat: api scales to four tasks in staging" in lines

        markdown = _ok(run("plan", "--env", "staging", "--version", "1.1.0", "--format", "markdown"))
        assert markdown.startswith("## Plan: deploy 1.1.0 to staging\n\n> [!WARNING]\n")
        assert f"- [`{second[:12]}`](https://github.com/stiggio/pricing-api/commit/{second}) feat(worker): read the " \
               "queue's token \\| with a pipe" in markdown
        assert "| us-east-1 | api |" in markdown and "`MinCount` 1 → 2" in markdown

        # `pipec changes` lists the same commits between the two releases' tags.
        _git(workdir, "tag", "v1.0.0", first)
        _git(workdir, "tag", "v1.1.0", second)
        assert _ok(run("changes", "--from", "1.0.0", "--to", "1.1.0")).splitlines() == [
            f"{second[:12]} feat(worker): read the queue's token | with a pipe",
            f"{scaled[:12]} feat: api scales to four tasks in staging"]

        # Production runs nothing yet: every stack is new, read from the release alone, and nothing is created.
        fresh = json.loads(_ok(cli("plan", "--env", "production", "--version", "1.1.0", "--format", "json",
                                   cwd=workdir, env=world.env("222222222222"))))
        assert {s["new"] for s in fresh["stacks"]} == {True}
        assert fresh["commits"] == [] and fresh["commits_note"] == "nothing runs here yet"
        assert world.client("cloudformation", "222222222222", "us-east-1").describe_stacks()["Stacks"] == []


def test_a_replacement_and_an_iam_change_as_cloudformation_reports_them() -> None:
    """CloudFormation's own answer for a change moto reports without details: the load balancer replaced (its
    scheme changed), a role's policy broadened, a rule opened to the world."""
    old = {"Resources": {
        "Balancer": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Scheme": "internal"}},
        "TaskRole": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyName": "p", "PolicyDocument": {
            "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}}]}},
        "Group": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"SecurityGroupIngress": [
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "SourceSecurityGroupId": {"Ref": "Lb"}}]}}}}
    new = json.loads(json.dumps(old))
    new["Resources"]["Balancer"]["Properties"]["Scheme"] = "internet-facing"
    new["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}})
    new["Resources"]["Group"]["Properties"]["SecurityGroupIngress"].append(
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"})
    described = [
        {"Type": "Resource", "ResourceChange": {
            "Action": "Modify", "LogicalResourceId": "Balancer", "ResourceType":
            "AWS::ElasticLoadBalancingV2::LoadBalancer", "Replacement": "True",
            "Details": [{"Target": {"Attribute": "Properties", "Name": "Scheme", "RequiresRecreation": "Always"}}]}},
        {"Type": "Resource", "ResourceChange": {
            "Action": "Modify", "LogicalResourceId": "TaskRole", "ResourceType": "AWS::IAM::Role",
            "Replacement": "False", "Details": [{"Target": {"Attribute": "Properties", "Name": "Policies"}}]}},
    ]
    changes = preview._resource_changes(described, old, new)
    by = {c.resource: c for c in changes}
    assert (by["Balancer"].replacement, by["Balancer"].properties, by["Balancer"].grants) == ("True", ("Scheme",), ())
    assert by["TaskRole"].grants == (
        'allows s3:DeleteObject on * when {"StringEquals":{"aws:RequestedRegion":"us-east-1"}}',
        'allows s3:PutObject on * when {"StringEquals":{"aws:RequestedRegion":"us-east-1"}}')
    # The security group change CloudFormation did not list is still shown, from the templates.
    assert (by["Group"].action, by["Group"].grants) == ("Modify", ("ingress tcp 22-22 from 0.0.0.0/0",))
    stack = preview.StackPlan("production", "us-east-1", "api", "stigg-production-api", "1.4.0", "1.5.0",
                              (("Version", "1.4.0", "1.5.0"),), changes)
    found = preview.Preview("production", "1.5.0", "a" * 40, [stack])
    text = preview.text(found)
    assert "us-east-1 api (stigg-production-api): 3 to modify, 1 replaced, broadens access (1.4.0 -> 1.5.0)" in text
    assert "  ~ Balancer (AWS::ElasticLoadBalancingV2::LoadBalancer) REPLACED: Scheme" in text
    assert "      ! ingress tcp 22-22 from 0.0.0.0/0" in text
    assert text.endswith("Commits: none listed (no commits between them)\n")
    data = json.loads(preview.as_json(found))
    assert data["stacks"][0]["broadens"] is True
    assert data["stacks"][0]["changes"][0]["replacement"] == "True"


def test_what_a_resource_grants() -> None:
    assume = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole",
                                                   "Principal": {"Service": "ecs-tasks.amazonaws.com"}}},
        "ManagedPolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
            {"Effect": "Deny", "Action": "*", "Resource": "*"},
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["Queue", "Arn"]}}]}}]}}
    assert preview._grants(assume) == {
        'may be assumed by {"Service":"ecs-tasks.amazonaws.com"}', "attaches arn:aws:iam::aws:policy/ReadOnlyAccess",
        'allows sqs:SendMessage on {"Fn::GetAtt":["Queue","Arn"]}'}
    assert preview._grants({"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
        "IpProtocol": "-1", "CidrIpv6": "::/0", "GroupId": "sg-1"}}) == {"ingress -1 all-all from ::/0"}
    assert preview._grants({"Type": "AWS::EC2::SecurityGroup", "Properties": {"SecurityGroupEgress": [
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "DestinationSecurityGroupId": "sg-db"}]}}) == {
        "egress tcp 5432-5432 to sg-db"}
    assert preview._grants({"Type": "AWS::SQS::Queue", "Properties": {}}) == set()


def test_the_plan_of_one_stack_as_cloudformation_answers_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole reading of one stack with botocore's Stubber giving CloudFormation's own answers (which moto's
    change sets lack): the load balancer replaced, the execution role's policy broadened; the change set made without a
    role, then deleted, never executed."""
    import hashlib

    from botocore.stub import ANY, Stubber

    from pipec.aws.session import Aws
    from tests.test_aws_failures import ACCOUNT, STACK_ID, _body, _stack

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    monkeypatch.setenv("PIPEC_POLL_SECONDS", "0")
    aws = Aws()
    compiled = compile_spec(EXAMPLE)
    texts = {a.path: a.text for a in compiled.outputs}
    read = ["generated/cloudformation/services/api.yaml",
            "generated/cloudformation/parameters/staging/us-east-1/api.json"]
    digest = "sha256:" + "cd" * 32
    record = {"version": "1.1.0", "commit": "c" * 40, "artifacts": {"api-image": {"digest": digest}},
              "files": {path: hashlib.sha256(texts[path].encode()).hexdigest() for path in read}}
    stubs = {name: Stubber(aws.client(name, "us-east-1")) for name in ("sts", "s3", "ssm", "cloudformation")}
    stubs["sts"].add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:sts::{ACCOUNT}:"
                                                      "assumed-role/stigg-staging-plan/ci", "UserId": "x"})
    s3 = stubs["s3"]
    s3.add_response("get_object", _body(json.dumps(record)))
    s3.add_response("get_bucket_versioning", {"Status": "Enabled"})
    s3.add_response("list_object_versions", {"Versions": [{"Key": f"releases/1.1.0/{p}", "VersionId": "1"}
                                                          for p in [*read, "release.json"]]})
    s3.add_response("get_object", _body(texts[read[0]]))
    s3.add_response("get_object", _body(texts[read[1]]))
    cloudformation = stubs["cloudformation"]
    cloudformation.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))
    stubs["ssm"].add_response("get_parameter", {"Parameter": {"Name": "/pipec/stigg/staging/api", "Version": 3,
                              "Value": json.dumps({"version": "1.0.0", "commit": "b" * 40})}})
    cloudformation.add_response("create_change_set", {"Id": "arn:changeset/plan", "StackId": STACK_ID}, {
        "StackName": "stigg-staging-api", "ChangeSetName": ANY, "ChangeSetType": "UPDATE", "TemplateBody": ANY,
        "Capabilities": ["CAPABILITY_IAM"], "Parameters": ANY, "Description": "pipec plan of 1.1.0", "Tags": ANY})
    cloudformation.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": [
        {"Type": "Resource", "ResourceChange": {
            "Action": "Modify", "LogicalResourceId": "LoadBalancer", "Replacement": "True",
            "ResourceType": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Details": [{"Target": {"Attribute": "Properties", "Name": "Scheme", "RequiresRecreation": "Always"}}]}},
        {"Type": "Resource", "ResourceChange": {
            "Action": "Modify", "LogicalResourceId": "ExecutionRole", "Replacement": "False",
            "ResourceType": "AWS::IAM::Role",
            "Details": [{"Target": {"Attribute": "Properties", "Name": "Policies"}}]}},
    ]}, {"ChangeSetName": "arn:changeset/plan"})
    cloudformation.add_response("delete_change_set", {}, {"ChangeSetName": "arn:changeset/plan"})
    running = json.loads(preview.template_body(texts[read[0]]))
    running["Resources"]["ExecutionRole"]["Properties"]["Policies"] = []  # the release's role grants more
    cloudformation.add_response("get_template", {"TemplateBody": json.dumps(running)},
                                {"StackName": "stigg-staging-api", "TemplateStage": "Original"})
    for stub in stubs.values():
        stub.activate()
    found = preview.preview(aws, compiled.plan, "staging", "1.1.0", "api", "us-east-1", None, lambda _: None)
    for stub in stubs.values():
        stub.assert_no_pending_responses()
    [stack] = found.stacks
    by = {c.resource: c for c in stack.changes}
    assert (by["LoadBalancer"].replacement, by["LoadBalancer"].properties) == ("True", ("Scheme",))
    assert by["ExecutionRole"].grants and all(g.startswith("allows ") for g in by["ExecutionRole"].grants)
    assert any("secretsmanager:GetSecretValue" in g for g in by["ExecutionRole"].grants)
    assert ("Version", "1.0.0", "1.1.0") in stack.parameters
    text = preview.text(found)
    assert "us-east-1 api (stigg-staging-api): 2 to modify, 1 replaced, broadens access (1.0.0 -> 1.1.0)" in text
    assert "  ~ LoadBalancer (AWS::ElasticLoadBalancingV2::LoadBalancer) REPLACED: Scheme" in text
