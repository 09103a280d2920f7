"""`pipec notify` against an incoming-webhook sink and a GitHub API stand-in on 127.0.0.1: the exact message of every
event (golden payloads), retries, a webhook URL that never appears in any output, and the sanity checks' changes of
outcome with their issue opened, commented on and closed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SPECS, Run, bootstrap_of, cli
from tests.github_api import GitHub, github_api
from tests.local_server import Sink, webhook

REPOSITORY = "stiggio/pricing-api"
RUN = "https://github.com/stiggio/pricing-api/actions/runs/77/attempts/1"
ROLLBACK = ("gh workflow run rollback.yml --ref main -f environment=production -f service=all -f version=previous")
ROLLBACK_LINK = "https://github.com/stiggio/pricing-api/actions/workflows/rollback.yml"
IN_A_RUN = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": REPOSITORY, "GITHUB_RUN_ID": "77",
            "GITHUB_RUN_ATTEMPT": "1"}


def _notify(workdir: Path, sink: Sink, *args: str, url: str | None = None, extra: dict[str, Any] | None = None,
            github: GitHub | None = None) -> tuple[Run, str]:
    with webhook(sink) as base:
        hook = f"{base}/services/T000/B000/s3cr3tpath" if url is None else url
        env: dict[str, Any] = {"PIPEC_WEBHOOK_URL": hook, **IN_A_RUN, **(extra or {})}
        if github is None:
            return cli("notify", *args, cwd=workdir, env=env), hook
        with github_api(github) as api:
            env |= {"GITHUB_API_URL": api, "GH_TOKEN": github.token}
            return cli("notify", *args, cwd=workdir, env=env), hook


def _facts(event: str, env: str, regions: list[str], version: str, what: str = "") -> dict[str, Any]:
    return {"event": event, "project": "stigg", "environment": env, "regions": regions, "version": version,
            "what": what, "rollback": ROLLBACK.replace("production", env), "run": RUN}


GOLDEN = [
    (["waiting", "--env", "production", "--version", "1.4.2"],
     {"text": ":hourglass: stigg 1.4.2 waits for approval to deploy to production (us-east-1, eu-west-1): read the "
              f"plan in the run, then approve or reject it.\nRun: {RUN}",
      "pipec": _facts("waiting", "production", ["us-east-1", "eu-west-1"], "1.4.2")}),
    (["deployed", "--env", "production", "--version", "1.4.2"],
     {"text": ":white_check_mark: stigg 1.4.2 is deployed to production (us-east-1, eu-west-1) and passed its "
              f"checks.\nRoll back: `{ROLLBACK}` (or {ROLLBACK_LINK})\nRun: {RUN}",
      "pipec": _facts("deployed", "production", ["us-east-1", "eu-west-1"], "1.4.2")}),
    (["failed", "--env", "production", "--region", "eu-west-1", "--version", "1.4.2", "--what",
      "the end-to-end checks failed; rolling production back"],
     {"text": ":x: stigg 1.4.2 failed in production (eu-west-1): the end-to-end checks failed; rolling production "
              f"back.\nRoll back: `{ROLLBACK}` (or {ROLLBACK_LINK})\nRun: {RUN}",
      "pipec": _facts("failed", "production", ["eu-west-1"], "1.4.2",
                      "the end-to-end checks failed; rolling production back")}),
    (["rolled-back", "--env", "staging", "--region", "us-east-1", "--version", "1.4.1", "--what",
      "automatic: the end-to-end checks of 1.4.2 failed"],
     {"text": ":rewind: stigg staging (us-east-1) was rolled back to 1.4.1: automatic: the end-to-end checks of "
              f"1.4.2 failed.\nRun: {RUN}",
      "pipec": _facts("rolled-back", "staging", ["us-east-1"], "1.4.1",
                      "automatic: the end-to-end checks of 1.4.2 failed")}),
]


@pytest.mark.parametrize(("args", "expected"), GOLDEN, ids=[g[0][0] for g in GOLDEN])
def test_each_event_sends_its_exact_message(workdir: Path, args: list[str], expected: dict[str, Any]) -> None:
    sink = Sink()
    result, hook = _notify(workdir, sink, *args)
    assert result.exit_code == 0, result.stderr
    assert sink.received == [expected]
    assert sink.headers[0]["content-type"] == "application/json"
    assert hook not in result.stdout + result.stderr and "s3cr3t" not in result.stdout + result.stderr


def test_a_busy_webhook_is_tried_three_times_and_a_refusal_once(workdir: Path) -> None:
    sink = Sink(statuses=[503, 429])
    result, _ = _notify(workdir, sink, "deployed", "--env", "staging", "--version", "1.0.0")
    assert result.exit_code == 0 and len(sink.headers) == 3 and len(sink.received) == 1
    assert result.stdout == "pipec: told the channel: deployed staging (us-east-1) 1.0.0\n"

    down = Sink(statuses=[500, 502, 503, 200])
    result, hook = _notify(workdir, down, "deployed", "--env", "staging", "--version", "1.0.0")
    assert (result.exit_code, len(down.headers), down.received) == (4, 3, [])
    assert result.stderr.startswith("pipec: error[PC706]: the webhook (GitHub secret SLACK_WEBHOOK_URL) answered "
                                    "503; the channel was not told deployed staging\n")
    assert hook not in result.stderr and "s3cr3t" not in result.stderr

    refused = Sink(statuses=[404])
    result, _ = _notify(workdir, refused, "deployed", "--env", "staging", "--version", "1.0.0")
    assert (result.exit_code, len(refused.headers)) == (4, 1)  # a wrong URL is not retried
    assert "answered 404" in result.stderr


@pytest.mark.parametrize(("url", "message"), [
    ("", "the webhook (GitHub secret SLACK_WEBHOOK_URL) is empty here: PIPEC_WEBHOOK_URL is not set"),
    ("http://hooks.example.com/s3cr3t", "the webhook (GitHub secret SLACK_WEBHOOK_URL) is not an https URL"),
    ("file:///etc/s3cr3t", "the webhook (GitHub secret SLACK_WEBHOOK_URL) is not an https URL"),
])
def test_a_webhook_that_is_missing_or_not_https_is_never_used(workdir: Path, url: str, message: str) -> None:
    sink = Sink()
    result, _ = _notify(workdir, sink, "deployed", "--env", "staging", "--version", "1.0.0", url=url)
    assert result.exit_code == 4 and sink.headers == []
    assert result.stderr.startswith(f"pipec: error[PC706]: {message}"), result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["deployed", "--env", "prod"], 'error[PC401]: unknown environment "prod"'),
    (["failed", "--env", "staging", "--region", "eu-west-1"], 'error[PC402]: environment "staging" does not deploy'),
    (["deployed", "--env", "staging", "--version", "1.0\n"], 'error[PC404]: --version "1.0\\n" is not a release'),
    (["sanity", "--env", "production", "--outcome", "failure"], "error[PC402]: a sanity check's outcome is of one "
     "region: pass --region"),
])
def test_a_wrong_request_tells_nobody(workdir: Path, args: list[str], message: str) -> None:
    sink = Sink()
    result, _ = _notify(workdir, sink, *args)
    assert result.exit_code == 1 and sink.headers == []
    assert message in result.stderr, result.stderr


def test_a_spec_without_a_webhook_sends_nothing(workdir: Path) -> None:
    spec = workdir / "pipeline.yaml"
    spec.write_text(spec.read_text().replace("  webhook: SLACK_WEBHOOK_URL", "#"))
    sink = Sink()
    result, _ = _notify(workdir, sink, "deployed", "--env", "staging", "--version", "1.0.0")
    assert (result.exit_code, result.stdout, sink.headers) == (
        0, "pipec: pipeline.yaml names no webhook (alerts.webhook); nothing sent\n", [])


def _sanity_run(run_id: int, conclusion: str, env: str = "production", region: str = "eu-west-1") -> dict[str, Any]:
    return {"id": run_id, "jobs": [{"name": f"Sanity checks on {env} ({region})", "conclusion": conclusion},
                                   {"name": "Sanity checks on staging (us-east-1)", "conclusion": "success"}]}


def _sanity(workdir: Path, sink: Sink, github: GitHub, outcome: str, run_id: int, version: str = "1.4.2") -> Run:
    result, _ = _notify(workdir, sink, "sanity", "--env", "production", "--region", "eu-west-1", "--version", version,
                        "--outcome", outcome, github=github, extra={"GITHUB_RUN_ID": str(run_id)})
    # the run finishes: the next one reads it
    github.runs.insert(0, _sanity_run(run_id, outcome))
    return result


def test_sanity_tells_only_changes_and_keeps_one_issue_until_it_recovers(workdir: Path) -> None:
    sink = Sink()
    github = GitHub(REPOSITORY, runs=[_sanity_run(10, "success")])
    run = RUN.replace("/77/", "/{}/")
    passing = _sanity(workdir, sink, github, "success", 11)
    assert passing.exit_code == 0 and sink.received == [] and github.issues == []
    assert "still passing; nothing to tell" in passing.stdout

    failed = _sanity(workdir, sink, github, "failure", 12)
    assert failed.exit_code == 0, failed.stderr
    title = "stigg: sanity checks failing on production (eu-west-1)"
    assert [(i["number"], i["title"], i["state"]) for i in github.issues] == [(1, title, "open")]
    assert github.issues[0]["body"] == (
        f"The scheduled sanity checks fail on production (eu-west-1), which runs 1.4.2.\n\nRun: {run.format(12)}\n\n"
        f"To roll back: `{ROLLBACK}`\n\npipec closes this issue when the checks pass again.")
    assert sink.received == [{
        "text": ":rotating_light: stigg sanity checks fail on production (eu-west-1), which runs 1.4.2.\n"
                f"Roll back: `{ROLLBACK}` (or {ROLLBACK_LINK})\nRun: {run.format(12)}",
        "pipec": _facts("sanity-failed", "production", ["eu-west-1"], "1.4.2", "sanity checks failed")
        | {"run": run.format(12)}}]
    assert "opened issue #1" in failed.stdout

    # Still failing: one comment on the same issue, nothing more in the channel. A cancelled run changes nothing.
    assert _sanity(workdir, sink, github, "failure", 13).exit_code == 0
    assert len(sink.received) == 1 and len(github.issues) == 1
    assert github.comments[1] == [f"Still failing on production (eu-west-1), which runs 1.4.2: {run.format(13)}"]
    cancelled = _sanity(workdir, sink, github, "cancelled", 14)
    assert "was cancelled; nothing to tell" in cancelled.stdout and len(sink.received) == 1

    recovered = _sanity(workdir, sink, github, "success", 15, version="1.4.3")
    assert recovered.exit_code == 0, recovered.stderr
    assert sink.received[-1] == {
        "text": ":large_green_circle: stigg sanity checks pass again on production (eu-west-1), which runs 1.4.3.\n"
                f"Run: {run.format(15)}",
        "pipec": _facts("sanity-recovered", "production", ["eu-west-1"], "1.4.3", "sanity checks pass again")
        | {"run": run.format(15)}}
    assert (github.issues[0]["state"], github.issues[0]["state_reason"]) == ("closed", "completed")
    assert github.comments[1][-1] == f"The sanity checks pass again on production (eu-west-1), which runs 1.4.3: " \
                                     f"{run.format(15)}"
    assert len(sink.received) == 2


def test_an_issue_someone_else_opened_with_that_title_is_left_alone(workdir: Path) -> None:
    github = GitHub(REPOSITORY, runs=[_sanity_run(10, "failure")])
    github.issues.append({"number": 1, "title": "stigg: sanity checks failing on production (eu-west-1)",
                          "state": "open", "body": "", "user": {"login": "mallory", "type": "User"}})
    sink = Sink()
    assert _sanity(workdir, sink, github, "success", 11).exit_code == 0
    assert github.issues[0]["state"] == "open" and github.comments == {}
    assert sink.received[0]["pipec"]["event"] == "sanity-recovered"  # the previous run failed: it recovered


def test_sanity_without_a_token_or_with_a_forbidden_one_says_what_the_job_needs(workdir: Path) -> None:
    github = GitHub(REPOSITORY, runs=[_sanity_run(10, "success")], forbidden=True)
    result = _sanity(workdir, Sink(), github, "failure", 11)
    assert result.exit_code == 4
    assert "hint: the token may not read the sanity workflow's runs and keep its issues: give the job " \
           "`permissions: actions: read, issues: write`" in result.stderr


def test_alarms_reach_slack_through_a_chatbot_channel_that_can_only_read(built: dict[str, Path]) -> None:
    """alerts.slack: every region's bootstrap subscribes an AWS Chatbot channel to its alert topic. Without a
    guardrail Chatbot applies AdministratorAccess to the channel, so the guardrail and the role allow reads of
    CloudWatch only."""
    boot = bootstrap_of(built["every-option"])
    channel = boot["AlarmChannel"]
    assert "Condition" not in channel  # every region: its own topic
    assert channel["Properties"] | {"IamRoleArn": None} == {
        "ConfigurationName": {"Fn::Sub": "allin-${Environment}-alerts-${AWS::Region}"}, "IamRoleArn": None,
        "SlackWorkspaceId": "T0ALLIN01", "SlackChannelId": "C0ALERTS1", "SnsTopicArns": [{"Ref": "AlertTopic"}],
        "GuardrailPolicies": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/CloudWatchReadOnlyAccess"}],
        "LoggingLevel": "ERROR", "UserRoleRequired": False}
    assert channel["Properties"]["IamRoleArn"] == {"Fn::If": [
        "IsHomeRegion", {"Fn::GetAtt": ["ChatbotRole", "Arn"]},
        {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/allin-${Environment}-chatbot"}]}
    role = boot["ChatbotRole"]
    assert role["Condition"] == "IsHomeRegion"
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "chatbot.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    [policy] = role["Properties"]["Policies"]
    granted = {action for s in policy["PolicyDocument"]["Statement"] for action in
               ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert granted == {"cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData", "cloudwatch:GetMetricWidgetImage"}
    assert {s["Effect"] for s in policy["PolicyDocument"]["Statement"]} == {"Allow"}
    for name in ("example", "one-service"):  # no alerts.slack: no channel, no role
        assert not {"AlarmChannel", "ChatbotRole"} & set(bootstrap_of(built[name]))


@pytest.mark.parametrize(("key", "value"), [
    ("workspace", "not-a-team"), ("channel", "C0ALERTS1\n"), ("channel", "U0PERSON1")])
def test_a_slack_id_that_is_not_one_is_refused_where_it_is_written(tmp_path: Path, key: str, value: str) -> None:
    spec = (SPECS / "every-option.yaml").read_text()
    ids = {"workspace": "T0ALLIN01", "channel": "C0ALERTS1"} | {key: value}
    written = f"{{workspace: {json.dumps(ids['workspace'])}, channel: {json.dumps(ids['channel'])}}}"
    spec = spec.replace("  slack: {workspace: T0ALLIN01, channel: C0ALERTS1}", f"  slack: {written}")
    (tmp_path / "pipeline.yaml").write_text(spec)
    result = cli("validate", "pipeline.yaml", cwd=tmp_path)
    text = next(s for s in spec.splitlines() if s.startswith("  slack:"))
    line, column = spec.splitlines().index(text) + 1, text.index(json.dumps(value)) + 1
    assert result.exit_code == 1
    kind = "workspace (team)" if key == "workspace" else "channel"
    assert f"pipeline.yaml:{line}:{column}: error[PC104]: `alerts.slack.{key}` ({json.dumps(value)}) must be a " \
           f"Slack {kind} id such as " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
