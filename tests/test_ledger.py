"""The version ledger against a real moto server: what a record holds, in which order history comes back (across
SSM's pages), what `current` is, and how a value pipec did not write is read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipec.aws import ledger
from pipec.aws.session import Aws
from pipec.plan.model import Target
from tests.aws_world import World, aws_in
from tests.test_plan import PLAN

TARGET = Target("staging", "us-east-1", "111111111111")


@pytest.fixture
def aws(world: World, monkeypatch: pytest.MonkeyPatch) -> Aws:
    return aws_in(world, "111111111111", monkeypatch)


def _service(name: str) -> Any:
    return PLAN.service("api")._replace(name=name)


def _entry(version: str, action: str = "deploy") -> ledger.Entry:
    return ledger.Entry(version, "a" * 40, "sha256:" + "b" * 64, f"2026-12-01T10:00:0{version[-1]}.000Z",
                        "alice via run", action)


def test_a_record_is_one_sorted_json_value_of_a_standard_string_parameter(aws: Aws) -> None:
    service = _service("recorded")
    ledger.record(aws, service, TARGET, _entry("1.0.0"))
    found = aws.client("ssm", "us-east-1").get_parameter(Name="/pipec/stigg/staging/recorded")["Parameter"]
    assert found["Type"] == "String"
    assert found["Value"] == json.dumps({"action": "deploy", "at": "2026-12-01T10:00:00.000Z", "by": "alice via run",
                                         "commit": "a" * 40, "digest": "sha256:" + "b" * 64, "version": "1.0.0"},
                                        sort_keys=True)
    described = aws.client("ssm", "us-east-1").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": ["/pipec/stigg/staging/recorded"]}])["Parameters"][0]
    assert described["Description"] == "pipec deployment ledger of recorded in staging"
    assert described["Tier"] == "Standard"


def test_history_is_every_deployment_newest_first_and_current_the_newest(aws: Aws) -> None:
    service = _service("history")
    assert ledger.current(aws, service, TARGET) is None
    assert ledger.history(aws, service, TARGET) == []
    versions = [f"1.{i}.0" for i in range(60)]  # more than one page of SSM's history (50)
    for version in versions:
        ledger.record(aws, service, TARGET, _entry(version))
    history = ledger.history(aws, service, TARGET)
    assert [e.version for e in history] == versions[::-1]
    assert history[0] == ledger.Entry("1.59.0", "a" * 40, "sha256:" + "b" * 64, "2026-12-01T10:00:00.000Z",
                                      "alice via run", "deploy", "staging", "us-east-1", "history")
    assert ledger.current(aws, service, TARGET) == history[0]


def test_a_rollback_is_recorded_as_one(aws: Aws) -> None:
    service = _service("rolled")
    ledger.record(aws, service, TARGET, _entry("1.1.0"))
    ledger.record(aws, service, TARGET, _entry("1.0.0", action="rollback"))
    assert [(e.version, e.action) for e in ledger.history(aws, service, TARGET)] == [("1.0.0", "rollback"),
                                                                                     ("1.1.0", "deploy")]


@pytest.mark.parametrize(("value", "expected"), [
    ("not json", ("not json", "", "", "", "", "unknown")),
    ('["a list"]', ('["a list"]', "", "", "", "", "unknown")),
    ('{"version": "2.0.0"}', ("2.0.0", "", "", "", "", "")),
])
def test_a_value_pipec_did_not_write_is_shown_as_it_is(aws: Aws, value: str,
                                                        expected: tuple[str, ...]) -> None:
    service = _service(f"foreign{abs(hash(value)) % 1000}")
    aws.client("ssm", "us-east-1").put_parameter(Name=service.ledger_for("staging"), Value=value, Type="String")
    found = ledger.current(aws, service, TARGET)
    assert found is not None
    assert (found.version, found.commit, found.digest, found.at, found.by, found.action) == expected
    assert (found.env, found.region, found.service) == ("staging", "us-east-1", service.name)


def test_a_record_lands_in_its_own_region(aws: Aws) -> None:
    service = _service("regional")
    target = Target("production", "eu-west-1", "111111111111")
    ledger.record(aws, service, target, _entry("1.0.0"))
    names = [p["Name"] for p in aws.client("ssm", "eu-west-1").describe_parameters()["Parameters"]]
    assert "/pipec/stigg/production/regional" in names
    assert "/pipec/stigg/production/regional" not in [
        p["Name"] for p in aws.client("ssm", "us-east-1").describe_parameters()["Parameters"]]


def test_the_record_request_is_exact_and_a_refusal_says_what_was_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.stub import Stubber

    from pipec.diagnostics import PipecError

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    aws = Aws()
    service = _service("exact")
    stub = Stubber(aws.client("ssm", "us-east-1"))
    entry = _entry("1.0.0")
    # An explicit Standard tier: an account's default tier may be Advanced or intelligent-tiering.
    stub.add_response("put_parameter", {"Version": 1}, {
        "Name": "/pipec/stigg/staging/exact", "Value": entry.to_json(), "Type": "String", "Overwrite": True,
        "Tier": "Standard", "Description": "pipec deployment ledger of exact in staging"})
    stub.add_client_error("put_parameter", "AccessDeniedException", "not allowed", 400)
    stub.activate()
    ledger.record(aws, service, TARGET, entry)
    with pytest.raises(PipecError) as caught:
        ledger.record(aws, service, TARGET, entry)
    assert [d.message for d in caught.value.diagnostics] == [
        "recording the deployment in /pipec/stigg/staging/exact: access denied: not allowed"]
    stub.assert_no_pending_responses()


_STACK = json.dumps({"Parameters": {"Version": {"Type": "String"}},
                     "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}})


def test_status_reads_the_version_from_the_stack_and_says_when_the_ledger_disagrees(aws: Aws) -> None:
    """A deploy killed between the stack's update and the ledger's write: the stack runs 1.1.0, the ledger still
    says 1.0.0. status shows what runs, the ledger's version beside it, and a note."""
    from pipec.aws import report
    from pipec.load.load import load_bytes
    from pipec.plan.plan import make_plan
    from pipec.validate.validate import validate
    from tests.conftest import EXAMPLE

    plan = make_plan(validate(load_bytes(EXAMPLE.read_text().replace("project: stigg", "project: skew").encode(),
                                         "pipeline.yaml")))
    cloudformation = aws.client("cloudformation", "us-east-1")
    api, worker = plan.service("api"), plan.service("worker")
    for service, version in ((api, "1.0.0"), (worker, "1.0.0")):
        stack = service.stack_for("staging", "us-east-1").name
        cloudformation.create_stack(StackName=stack, TemplateBody=_STACK, Tags=[
            {"Key": "pipec:version", "Value": "1.0.0"}, {"Key": "pipec:commit", "Value": "a" * 40}],
            Parameters=[{"ParameterKey": "Version", "ParameterValue": version}])
        ledger.record(aws, service, TARGET, _entry("1.0.0"))
    cloudformation.update_stack(StackName=api.stack_for("staging", "us-east-1").name, TemplateBody=_STACK,
                                Parameters=[{"ParameterKey": "Version", "ParameterValue": "1.1.0"}])
    notes: list[str] = []
    # (the stacks hold no resources: what they run is tested against deployed stacks in test_aws)
    rows = {r.service: r for r in report.status(aws, plan, "staging", None, notes, artifacts=False)}
    assert (rows["api"].version, rows["api"].ledger, rows["api"].at) == ("1.1.0", "1.0.0", "")
    assert (rows["worker"].version, rows["worker"].ledger, rows["worker"].commit) == ("1.0.0", "", "a" * 12)
    assert (rows["webhooks"].version, rows["webhooks"].stack) == ("-", "NOT DEPLOYED")
    assert notes == ["staging us-east-1 api: the stack runs 1.1.0, but the ledger records 1.0.0 (a deploy or "
                     "rollback stopped before it was recorded); deploy the version you want to set both"]
    assert report.newest_version(list(rows.values())) == "1.1.0"
