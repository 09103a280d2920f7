"""Failures moto cannot produce, replayed with botocore's Stubber as AWS sends them: a deployment that
CloudFormation rolls back, a rollback that fails, throttling, an expired token. Each exits 4, names the failing
resource and reason, and leaves the ledger unchanged (a put_parameter the stubs do not expect would fail).
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from pipec.aws import deploy
from pipec.aws.session import Aws
from pipec.build import compile_spec
from pipec.diagnostics import ExitCode, PipecError
from tests.conftest import EXAMPLE

ACCOUNT = "111111111111"
STACK_ID = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/stigg-staging-api/abc"
DIGEST = "sha256:" + "ab" * 32
NOW = datetime.now(UTC)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    monkeypatch.setenv("PIPEC_POLL_SECONDS", "0")
    yield Aws()


def test_aws_commands_collect_garbage_again() -> None:
    """The console command pauses the garbage collector for short compiles; a deployment may poll for an hour."""
    gc.disable()
    try:
        Aws()
        assert gc.isenabled()
    finally:
        gc.enable()


def _body(data: str) -> dict[str, Any]:
    raw = data.encode()
    return {"Body": StreamingBody(io.BytesIO(raw), len(raw))}


def _event(event_id: str, status: str, logical: str, kind: str, reason: str = "",
           at: datetime | None = None) -> dict[str, Any]:
    event = {"StackId": STACK_ID, "EventId": event_id, "StackName": "stigg-staging-api",
             "LogicalResourceId": logical, "ResourceType": kind, "Timestamp": at or NOW + timedelta(seconds=5),
             "ResourceStatus": status}
    if reason:
        event["ResourceStatusReason"] = reason
    return event


def _stack(status: str, version: str = "1.0.0") -> dict[str, Any]:
    return {"Stacks": [{"StackName": "stigg-staging-api", "StackId": STACK_ID, "CreationTime": NOW,
                        "StackStatus": status, "Parameters": [{"ParameterKey": "Version", "ParameterValue": version}]}]}


def _stubs(aws: Aws) -> dict[str, Stubber]:
    stubs = {name: Stubber(aws.client(name, "us-east-1")) for name in ("sts", "s3", "ssm", "cloudformation", "ecr")}
    stubs["sts"].add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:sts::{ACCOUNT}:"
                                                      "assumed-role/stigg-staging-deploy/ci", "UserId": "x"})
    return stubs


def _prepare_reads(stubs: dict[str, Stubber], status: str, *, deployed: bool = True) -> None:
    """What `pipec deploy --env staging --service api --version 1.1.0` reads before it changes anything."""
    texts = {a.path: a.text for a in compile_spec(EXAMPLE).outputs}
    read = ["generated/cloudformation/services/api.yaml",
            "generated/cloudformation/parameters/staging/us-east-1/api.json"]
    release = {"version": "1.1.0", "commit": "c" * 40, "artifacts": {"api-image": {"digest": DIGEST}},
               "files": {path: hashlib.sha256(texts[path].encode()).hexdigest() for path in read}}
    s3 = stubs["s3"]
    s3.add_response("get_object", _body(json.dumps(release)))
    s3.add_response("get_bucket_versioning", {"Status": "Enabled"})
    s3.add_response("list_object_versions", {"Versions": [{"Key": f"releases/1.1.0/{path}", "VersionId": "1"}
                                                          for path in [*read, "release.json"]]})
    if deployed:
        stubs["ssm"].add_response("get_parameter", {"Parameter": {"Name": "/pipec/stigg/staging/api", "Version": 3,
                                  "Value": json.dumps({"version": "1.0.0", "commit": "b" * 40})}})
    else:
        stubs["ssm"].add_client_error("get_parameter", "ParameterNotFound", "not found", 400)
    # what the stack reads from the bootstrap and network stacks is there
    stubs["ssm"].add_response("get_parameters", {"Parameters": []})
    stubs["cloudformation"].add_response("describe_stacks", _stack(status))
    s3.add_response("get_object", _body(texts["generated/cloudformation/services/api.yaml"]))
    s3.add_response("get_object", _body(texts["generated/cloudformation/parameters/staging/us-east-1/api.json"]))
    stubs["ecr"].add_response("describe_images", {"imageDetails": [{"imageDigest": DIGEST}]})


def _prepare_deploy(stubs: dict[str, Stubber], final_events: list[dict[str, Any]], final_status: str) -> None:
    """Every call of `pipec deploy --env staging --service api --version 1.1.0`, up to the stack's final state."""
    _prepare_reads(stubs, "UPDATE_COMPLETE")
    cloudformation = stubs["cloudformation"]
    cloudformation.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))
    cloudformation.add_response("create_change_set", {"Id": "arn:changeset/1", "StackId": STACK_ID}, {
        "StackName": "stigg-staging-api", "ChangeSetName": ANY, "ChangeSetType": "UPDATE", "TemplateBody": ANY,
        "Capabilities": ["CAPABILITY_IAM"], "Parameters": ANY, "Description": ANY,
        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/stigg-staging-cfn",
        "Tags": [{"Key": "pipec:project", "Value": "stigg"}, {"Key": "pipec:environment", "Value": "staging"},
                 {"Key": "pipec:service", "Value": "api"}, {"Key": "pipec:version", "Value": "1.1.0"},
                 {"Key": "pipec:commit", "Value": "c" * 40}, {"Key": "pipec:action", "Value": "deploy"}]})
    cloudformation.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": [
        {"Type": "Resource", "ResourceChange": {"Action": "Modify", "LogicalResourceId": "TaskDefinition",
                                                "ResourceType": "AWS::ECS::TaskDefinition", "Replacement": "True"}}]})
    old = _event("old-1", "UPDATE_COMPLETE", "stigg-staging-api", "AWS::CloudFormation::Stack",
                 at=NOW - timedelta(days=1))
    cloudformation.add_response("describe_stack_events", {"StackEvents": [old]})
    cloudformation.add_response("execute_change_set", {})
    cloudformation.add_response("describe_stack_events", {"StackEvents": [*final_events, old]})
    cloudformation.add_response("describe_stacks", _stack(final_status))
    cloudformation.add_response("describe_stack_events", {"StackEvents": [*final_events, old]})


def _deploy(aws: Aws) -> tuple[PipecError, list[str]]:
    printed: list[str] = []
    plan = compile_spec(EXAMPLE).plan
    with pytest.raises(PipecError) as caught:
        deploy.deploy(aws, plan, deploy.Request("staging", "1.1.0", service="api"), printed.append)
    return caught.value, printed


def _activate(stubs: dict[str, Stubber]) -> None:
    for stub in stubs.values():
        stub.activate()


def _all_used(stubs: dict[str, Stubber]) -> None:
    for stub in stubs.values():
        stub.assert_no_pending_responses()


def test_a_deployment_that_cloudformation_rolls_back(aws: Aws) -> None:
    stubs = _stubs(aws)
    failed = _event("e2", "UPDATE_FAILED", "Service", "AWS::ECS::Service",
                    "ECS Deployment Circuit Breaker was triggered")
    _prepare_deploy(stubs, [
        _event("e5", "UPDATE_ROLLBACK_COMPLETE", "stigg-staging-api", "AWS::CloudFormation::Stack",
               at=NOW + timedelta(seconds=60)),
        _event("e4", "UPDATE_ROLLBACK_IN_PROGRESS", "stigg-staging-api", "AWS::CloudFormation::Stack",
               "The following resource(s) failed to update: [Service].", at=NOW + timedelta(seconds=30)),
        _event("e3", "UPDATE_FAILED", "TaskDefinition", "AWS::ECS::TaskDefinition", "Resource update cancelled",
               at=NOW + timedelta(seconds=20)),
        failed,
        _event("e1", "UPDATE_IN_PROGRESS", "stigg-staging-api", "AWS::CloudFormation::Stack", "User Initiated",
               at=NOW + timedelta(seconds=1)),
    ], "UPDATE_ROLLBACK_COMPLETE")
    _activate(stubs)
    problem, printed = _deploy(aws)
    _all_used(stubs)
    assert problem.exit_code == ExitCode.AWS
    messages = [d.message for d in problem.diagnostics]
    assert messages == [
        "[staging us-east-1 api] the change failed and the stack is now UPDATE_ROLLBACK_COMPLETE",
        "[staging us-east-1 api] Service (AWS::ECS::Service) UPDATE_FAILED: ECS Deployment Circuit Breaker was "
        "triggered",
    ]
    assert all(d.code == "PC604" for d in problem.diagnostics)
    assert "nothing was recorded in the ledger" in (problem.diagnostics[0].hint or "")
    assert "[staging us-east-1 api] change set: 1 to modify" in printed
    assert "    ~ TaskDefinition (AWS::ECS::TaskDefinition) (replacement)" in printed
    assert any("UPDATE_FAILED" in line and "Circuit Breaker" in line for line in printed)


def test_a_rollback_that_fails_too(aws: Aws) -> None:
    stubs = _stubs(aws)
    _prepare_deploy(stubs, [
        _event("e4", "UPDATE_ROLLBACK_FAILED", "stigg-staging-api", "AWS::CloudFormation::Stack",
               "The following resource(s) failed to update: [Service].", at=NOW + timedelta(seconds=90)),
        _event("e3", "UPDATE_FAILED", "Service", "AWS::ECS::Service",
               "Service was not stable: tasks keep stopping", at=NOW + timedelta(seconds=80)),
        _event("e2", "UPDATE_FAILED", "Service", "AWS::ECS::Service",
               "Resource handler returned message: \"Invalid request provided\"", at=NOW + timedelta(seconds=10)),
    ], "UPDATE_ROLLBACK_FAILED")
    _activate(stubs)
    problem, _ = _deploy(aws)
    _all_used(stubs)
    assert problem.exit_code == ExitCode.AWS
    assert [d.message for d in problem.diagnostics] == [
        "[staging us-east-1 api] the change failed and the stack is now UPDATE_ROLLBACK_FAILED",
        "[staging us-east-1 api] Service (AWS::ECS::Service) UPDATE_FAILED: Resource handler returned message: "
        "\"Invalid request provided\"",
        "[staging us-east-1 api] Service (AWS::ECS::Service) UPDATE_FAILED: Service was not stable: tasks keep "
        "stopping",
    ]


def test_throttling_after_retries(aws: Aws) -> None:
    stubs = _stubs(aws)
    stubs["s3"].add_client_error("get_object", "SlowDown", "Please reduce your request rate.", 503)
    _activate(stubs)
    problem, _ = _deploy(aws)
    assert problem.exit_code == ExitCode.AWS
    [found] = problem.diagnostics
    assert found.code == "PC608"
    assert found.message == "reading release 1.1.0: AWS is throttling the requests (SlowDown), even after retries"


def test_an_expired_token(aws: Aws) -> None:
    sts = Stubber(aws.client("sts", "us-east-1"))
    sts.add_client_error("get_caller_identity", "ExpiredToken", "The security token included in the request is "
                         "expired", 400)
    sts.activate()
    problem, _ = _deploy(aws)
    assert problem.exit_code == ExitCode.AWS
    [found] = problem.diagnostics
    assert (found.code, found.message) == ("PC601", "the AWS credentials are expired or invalid (ExpiredToken)")


def test_a_busy_stack_is_left_alone(aws: Aws) -> None:
    stubs = _stubs(aws)
    _prepare_reads(stubs, "UPDATE_IN_PROGRESS", deployed=False)
    stubs["cloudformation"].add_response("describe_stacks", _stack("UPDATE_IN_PROGRESS"))
    _activate(stubs)
    problem, _ = _deploy(aws)
    _all_used(stubs)
    [found] = problem.diagnostics
    assert (found.code, found.message) == ("PC613", "[staging us-east-1 api] stack stigg-staging-api is busy "
                                                    "(UPDATE_IN_PROGRESS)")


def test_ctrl_c_during_a_deployment_says_what_is_left(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    stubs = _stubs(aws)
    _prepare_reads(stubs, "UPDATE_COMPLETE", deployed=False)
    _activate(stubs)

    def interrupted(*args: object) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(deploy, "apply", interrupted)
    problem, _ = _deploy(aws)
    assert problem.exit_code == ExitCode.INTERRUPTED
    [found] = problem.diagnostics
    assert found.message == ("[staging us-east-1 api] interrupted: CloudFormation goes on with the change; "
                             "nothing was recorded in the ledger")
