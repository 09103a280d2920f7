"""Stage 6, aws: bootstrap, bundle, deploy, status, history and rollback, against a real moto server.

The example's real generated templates are deployed; tests/aws_world.py lists the few resource types moto
cannot carry, which are removed from the published bundle by an explicit allow-list.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pipec.build import compile_spec
from tests.aws_world import UNSUPPORTED, World, build_release, moto_server, strip_unsupported, with_existing_networks
from tests.conftest import REPO, Run, cli

STAGING, PRODUCTION = "111111111111", "222222222222"
COMMITS = {"1.0.0": "1" * 40, "1.1.0": "2" * 40, "1.2.0": "3" * 40}


def _ok(result: Run) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def _status(run: Any, account: str, env: str) -> dict[tuple[str, str], dict[str, str]]:
    rows = json.loads(_ok(run(account, "status", "--env", env, "--format", "json")))
    return {(r["region"], r["service"]): r for r in rows}


def _release(world: World, run: Any, plan: Any, version: str) -> list[str]:
    digests = build_release(world, plan, version)
    args = [f"--artifact={name}={digest}" for name, digest in digests.items()]
    out = _ok(run(STAGING, "bundle", "--version", version, "--commit", COMMITS[version], *args))
    assert f"published release {version}" in out
    return strip_unsupported(world, plan, version)


def _dashboard(world: World, account: str, region: str) -> dict[str, tuple[str, str]]:
    """What an environment's dashboard in a region shows: service -> (release, commit); and its load balancer
    graphs name the real load balancer and target group of each web service."""
    env = {STAGING: "staging", PRODUCTION: "production"}[account]
    body = json.loads(world.client("cloudwatch", account, region).get_dashboard(
        DashboardName=f"stigg-{env}-{region}")["DashboardBody"])
    shown = {}
    for widget in body["widgets"]:
        text = widget["properties"].get("markdown", "")
        found = re.fullmatch(r"### (\S+)\n.*release \*\*(\S+)\*\*, commit `(\S+)`.*", text, re.DOTALL)
        if widget["type"] == "text" and found:
            shown[found.group(1)] = (found.group(2), found.group(3))
    elb = world.client("elbv2", account, region)
    balancers = {b["LoadBalancerArn"].split(":loadbalancer/", 1)[1] for b in elb.describe_load_balancers()
                 ["LoadBalancers"]}
    groups = {g["TargetGroupArn"].rsplit(":", 1)[1] for g in elb.describe_target_groups()["TargetGroups"]}
    named = [dict(zip(m[2:-1:2], m[3:-1:2], strict=True)) for w in body["widgets"] if w["type"] == "metric"
             for m in w["properties"]["metrics"] if m[0] == "AWS/ApplicationELB"]
    assert named and {d["LoadBalancer"] for d in named} <= balancers
    assert {d["TargetGroup"] for d in named if "TargetGroup" in d} <= groups
    return shown


def _release_logs(world: World, run: Any) -> None:
    """`pipec logs` finds one release's log streams: an ECS task's by its release prefix, a function's by the
    function versions published for the release (staging runs 1.1.0 and ran 1.0.0)."""
    logs = world.client("logs", STAGING, "us-east-1")
    versions = world.client("lambda", STAGING, "us-east-1").list_versions_by_function(
        FunctionName="stigg-staging-webhooks")["Versions"]
    number = {v["Description"]: v["Version"] for v in versions if v["Version"] != "$LATEST"}
    streams = {"/pipec/stigg/staging/api": {"1.1.0/api/a1": "1.1.0", "1.0.0/api/a0": "1.0.0",
                                            "1.1.00/api/a2": "other"},
               "/aws/lambda/stigg-staging-webhooks": {f"2026/12/02/[{number['release 1.1.0']}]w1": "1.1.0",
                                                      f"2026/12/02/[{number['release 1.0.0']}]w0": "1.0.0"}}
    for group, named in streams.items():
        for stream, release in named.items():
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
                {"timestamp": int(time.time() * 1000), "message": f"served by {release}"}])
    for service, group in (("api", "/pipec/stigg/staging/api"), ("webhooks", "/aws/lambda/stigg-staging-webhooks")):
        for version in ("1.0.0", None):  # a release named, and the one running (1.1.0)
            asked = ("--version", version) if version else ()
            printed = _ok(run(STAGING, "logs", "--env", "staging", "--service", service, *asked, "--print"))
            header, query = printed.splitlines()
            assert header == f"# us-east-1 {group}, release {version or '1.1.0'}"
            pattern = re.fullmatch(r"fields @timestamp, @logStream, @message \| filter @logStream like /(.+)/ \| "
                                   r"sort @timestamp desc \| limit 200", query)
            assert pattern is not None, query
            matched = {s for s in streams[group] if re.search(pattern.group(1), s)}
            assert matched == {s for s, r in streams[group].items() if r == (version or "1.1.0")}, (query, matched)
        # Run: the query reaches the real log group (moto answers every event of it: it does not filter).
        lines = _ok(run(STAGING, "logs", "--env", "staging", "--service", service, "--since", "5")).splitlines()
        assert lines[0] == f"# us-east-1 {group}, release 1.1.0"
        assert any(line.endswith("served by 1.1.0") for line in lines[1:]), lines
    never = run(STAGING, "logs", "--env", "staging", "--service", "webhooks", "--version", "9.9.9", "--print")
    assert never.exit_code == 4
    assert never.stderr.startswith("pipec: error[PC624]: no version of function stigg-staging-webhooks in "
                                   "us-east-1 was published for release 9.9.9"), never.stderr


@pytest.mark.slow
def test_bootstrap_release_deploy_status_rollback_history(workdir: Path) -> None:
    with moto_server() as url:
        world = World(url)
        spec = workdir / "pipeline.yaml"
        spec.write_text(with_existing_networks(world, spec.read_text(), PRODUCTION))
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        plan = compile_spec(workdir / "pipeline.yaml").plan
        # The service templates deployed are the example's own, byte for byte.
        for service in plan.services:
            assert (workdir / service.template).read_text() == (REPO / service.template).read_text()

        def run(account: str, *args: str) -> Run:
            return cli(*args, cwd=workdir, env=world.env(account))

        out = _ok(run(STAGING, "bootstrap", "--env", "staging"))
        assert "[staging us-east-1 bootstrap] CREATE_COMPLETE" in out
        assert "[staging us-east-1 network] CREATE_COMPLETE" in out
        out = _ok(run(PRODUCTION, "bootstrap", "--env", "production"))
        assert "[production eu-west-1 network] CREATE_COMPLETE" in out
        # Bootstrapping again changes nothing.
        assert "[staging us-east-1 bootstrap] up to date" in _ok(run(STAGING, "bootstrap", "--env", "staging"))

        removed = _release(world, run, plan, "1.0.0")
        assert {line.rsplit("(", 1)[1].rstrip(")") for line in removed} == set(UNSUPPORTED)

        # A bootstrap that lacks what the release's stacks read (as before an administrator bootstrapped a region
        # the spec gained): the deploy stops before any stack changes, naming it and the command.
        ssm = world.client("ssm", STAGING, "us-east-1")
        topic = ssm.get_parameter(Name="/pipec/stigg/staging/alerts/topic-arn")["Parameter"]["Value"]
        ssm.delete_parameter(Name="/pipec/stigg/staging/alerts/topic-arn")
        unready = run(STAGING, "deploy", "--env", "staging", "--version", "1.0.0")
        assert unready.exit_code == 4
        assert unready.stderr.startswith(
            "pipec: error[PC622]: the bootstrap of staging lacks what the release needs: us-east-1 parameter "
            "/pipec/stigg/staging/alerts/topic-arn (read by api, worker, usage-report, webhooks); nothing was changed\n"
            "hint: an administrator runs `pipec bootstrap --env staging` with this spec (the deploy role cannot change "
            "the bootstrap or network stacks), then deploy again\n"), unready.stderr
        assert {r["stack"] for r in _status(run, STAGING, "staging").values()} == {"NOT DEPLOYED"}
        ssm.put_parameter(Name="/pipec/stigg/staging/alerts/topic-arn", Value=topic, Type="String")

        out = _ok(run(STAGING, "deploy", "--env", "staging", "--version", "1.0.0"))
        assert "[staging us-east-1 api] change set:" in out
        # Every role the service stacks made is under the environment's path, bounded by its boundary policy.
        iam = world.client("iam", STAGING, "us-east-1")
        made = iam.list_roles(PathPrefix="/stigg/staging/")["Roles"]
        assert len(made) >= len(plan.services)
        boundary = f"arn:aws:iam::{STAGING}:policy/stigg-staging-service-boundary"
        iam.get_policy(PolicyArn=boundary)
        assert {iam.get_role(RoleName=r["RoleName"])["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"]
                for r in made} == {boundary}
        assert "    + Service (AWS::ECS::Service)" in out
        assert "[staging us-east-1 webhooks] CREATE_COMPLETE" in out
        assert "[staging us-east-1 webhooks] recorded 1.0.0 in /pipec/stigg/staging/webhooks" in out
        staging = _status(run, STAGING, "staging")
        assert {row["version"] for row in staging.values()} == {"1.0.0"}
        assert {row["stack"] for row in staging.values()} == {"CREATE_COMPLETE"}
        created = world.client("cloudformation", STAGING, "us-east-1").describe_stacks(
            StackName="stigg-staging-api")["Stacks"][0]
        assert {t["Key"]: t["Value"] for t in created["Tags"]} == {
            "pipec:project": "stigg", "pipec:environment": "staging", "pipec:service": "api",
            "pipec:version": "1.0.0", "pipec:commit": COMMITS["1.0.0"], "pipec:action": "deploy"}

        _release(world, run, plan, "1.1.0")
        _ok(run(STAGING, "deploy", "--env", "staging", "--version", "1.1.0"))
        # Production takes only what staging verified (its end-to-end checks passed there), and nothing changes
        # until it did.
        unverified = run(PRODUCTION, "deploy", "--env", "production", "--version", "1.1.0")
        assert unverified.exit_code == 4
        assert "error[PC621]: release 1.1.0 was not verified in staging, the environment before production: " \
               "nothing was changed\n" in unverified.stderr
        assert {r["stack"] for r in _status(run, PRODUCTION, "production").values()} == {"NOT DEPLOYED"}
        assert "passed staging's end-to-end checks" in _ok(run(STAGING, "verify", "--env", "staging", "--version",
                                                               "1.1.0"))
        out = _ok(run(PRODUCTION, "deploy", "--env", "production", "--version", "1.1.0"))
        assert out.splitlines()[1].startswith("pipec: 1.1.0 passed staging's end-to-end checks at ")
        assert "[production eu-west-1 usage-report] recorded 1.1.0" in out
        # The zips were copied into each production region's own bucket.
        for region in ("us-east-1", "eu-west-1"):
            s3 = world.client("s3", PRODUCTION, region)
            s3.head_object(Bucket=f"stigg-production-{PRODUCTION}-{region}",
                           Key="releases/1.1.0/artifacts/webhooks-zip.zip")

        # Deploying what is deployed does nothing, and says so.
        again = _ok(run(STAGING, "deploy", "--env", "staging", "--version", "1.1.0", "--service", "api"))
        assert "[staging us-east-1 api] 1.1.0 is already deployed; nothing to do" in again
        _release_logs(world, run)
        # A deploy never goes back (an old release's run approved or re-run late): that is a rollback, by name.
        back = run(STAGING, "deploy", "--env", "staging", "--version", "1.0.0")
        assert back.exit_code == 4
        assert back.stderr.startswith(
            "pipec: error[PC620]: api in staging us-east-1 runs 1.1.0, newer than 1.0.0: a deploy never goes back, "
            "so nothing was changed\nhint: to run 1.0.0 there on purpose: pipec rollback --env staging --region "
            "us-east-1 --service api --to 1.0.0 (the rollback workflow)\n")
        assert {row["version"] for row in _status(run, STAGING, "staging").values()} == {"1.1.0"}

        # Production ran only 1.1.0: 1.0.0 ran in staging, never here, so it is no "previous" of production.
        refused = run(PRODUCTION, "rollback", "--env", "production", "--to", "previous")
        assert refused.exit_code == 4
        assert ("error[PC609]: api has run no version older than 1.1.0 in production us-east-1, so there is no "
                "previous version there\nhint: versions that ran there: 1.1.0;") in refused.stderr
        assert _status(run, PRODUCTION, "production")[("us-east-1", "api")]["version"] == "1.1.0"
        out = _ok(run(PRODUCTION, "rollback", "--env", "production", "--to", "1.0.0"))
        assert "rolling back production (us-east-1, eu-west-1) to 1.0.0" in out
        production = _status(run, PRODUCTION, "production")
        assert {row["version"] for row in production.values()} == {"1.0.0"}
        assert len(production) == 8
        assert {row["version"] for row in _status(run, STAGING, "staging").values()} == {"1.1.0"}
        # Each region's dashboard says what runs there: every service's release and commit, as its stack runs them.
        names = [s.name for s in plan.services]
        for region in ("us-east-1", "eu-west-1"):
            assert _dashboard(world, PRODUCTION, region) == {n: ("1.0.0", COMMITS["1.0.0"]) for n in names}
        assert _dashboard(world, STAGING, "us-east-1") == {n: ("1.1.0", COMMITS["1.1.0"]) for n in names}

        # (moto keeps a stack's first tags on updates; the tags pipec sends are checked in test_aws_failures.)
        cloudformation = world.client("cloudformation", PRODUCTION, "eu-west-1")
        stack = cloudformation.describe_stacks(StackName="stigg-production-api")["Stacks"][0]
        passed = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
        assert passed["Version"] == "1.0.0"
        assert {"ImageUri", "Cpu", "Memory", "MinCount", "MaxCount", "CertificateArn"} <= set(passed)

        history = json.loads(_ok(run(PRODUCTION, "history", "--env", "production", "--format", "json")))
        steps = [(r["action"], r["version"]) for r in history]
        assert steps.count(("rollback", "1.0.0")) == 8
        assert steps.count(("deploy", "1.1.0")) == 8
        assert steps.index(("rollback", "1.0.0")) < steps.index(("deploy", "1.1.0"))  # newest first
        table = _ok(run(STAGING, "history", "--env", "staging", "--service", "api"))
        assert table.splitlines()[0].split() == ["AT", "REGION", "SERVICE", "ACTION", "VERSION", "COMMIT", "BY"]
        assert [line.split()[4] for line in table.splitlines()[1:]] == ["1.1.0", "1.0.0"]

        # The ledger is plain SSM: its history is the deployment history, readable without pipec.
        ssm = world.client("ssm", PRODUCTION, "us-east-1")
        versions = ssm.get_parameter_history(Name="/pipec/stigg/production/api")["Parameters"]
        assert [json.loads(v["Value"])["version"] for v in versions] == ["1.1.0", "1.0.0"]

        # A rollback to a named version of one service in one region.
        out = _ok(run(PRODUCTION, "rollback", "--env", "production", "--service", "api", "--region",
                      "us-east-1", "--to", "1.1.0"))
        assert "[production us-east-1 api] recorded 1.1.0" in out
        assert _status(run, PRODUCTION, "production")[("us-east-1", "api")]["version"] == "1.1.0"
        assert _dashboard(world, PRODUCTION, "us-east-1") == {n: ("1.1.0" if n == "api" else "1.0.0", COMMITS[
            "1.1.0" if n == "api" else "1.0.0"]) for n in names}
        assert _dashboard(world, PRODUCTION, "eu-west-1")["api"] == ("1.0.0", COMMITS["1.0.0"])
        assert _ok(run(PRODUCTION, "status", "--env", "production", "--region", "us-east-1", "--format",
                       "version")) == "1.1.0\n"

        # Break glass: a release staging never verified goes to production only with a reason, which the ledger
        # keeps and history and status show.
        _release(world, run, plan, "1.2.0")
        out = _ok(run(PRODUCTION, "deploy", "--env", "production", "--version", "1.2.0", "--service", "api",
                      "--region", "us-east-1", "--break-glass", "INC-12: staging is down, the fix cannot wait"))
        assert ("pipec: BREAK GLASS: 1.2.0 was not verified in staging; deploying anyway, recorded with the reason: "
                "INC-12: staging is down, the fix cannot wait") in out.splitlines()
        entry = json.loads(ssm.get_parameter(Name="/pipec/stigg/production/api")["Parameter"]["Value"])
        assert (entry["version"], entry["action"], entry["reason"]) == (
            "1.2.0", "deploy", "break glass: INC-12: staging is down, the fix cannot wait")
        table = _ok(run(PRODUCTION, "history", "--env", "production", "--service", "api", "--region", "us-east-1"))
        assert table.splitlines()[0].split()[-1] == "REASON"
        assert table.splitlines()[1].endswith("break glass: INC-12: staging is down, the fix cannot wait")
        assert not table.splitlines()[2].endswith("wait")  # the verified deploys before it have no reason
        now = _status(run, PRODUCTION, "production")
        assert now[("us-east-1", "api")]["reason"] == "break glass: INC-12: staging is down, the fix cannot wait"
        assert now[("eu-west-1", "api")]["reason"] == ""

        # An automatic rollback after failed checks goes back to the newest older release that passed this
        # environment's checks (not merely ran here), and the ledger keeps why.
        api_east = ("--service", "api", "--region", "us-east-1")
        none_yet = run(PRODUCTION, "rollback", "--env", "production", *api_east, "--to", "verified")
        assert none_yet.exit_code == 4
        assert ("error[PC609]: api has run no version verified in production and older than 1.2.0 in production "
                "us-east-1, so there is no verified version there") in none_yet.stderr
        _ok(run(STAGING, "verify", "--env", "production", "--version", "1.0.0"))
        _ok(run(STAGING, "verify", "--env", "production", "--version", "1.1.0"))
        out = _ok(run(PRODUCTION, "rollback", "--env", "production", *api_east, "--to", "verified", "--reason",
                      "automatic: end-to-end checks failed on 1.2.0"))
        assert "[production us-east-1 api] recorded 1.1.0" in out
        entry = json.loads(ssm.get_parameter(Name="/pipec/stigg/production/api")["Parameter"]["Value"])
        assert (entry["version"], entry["action"], entry["reason"]) == (
            "1.1.0", "rollback", "automatic: end-to-end checks failed on 1.2.0")
        blank = run(PRODUCTION, "rollback", "--env", "production", *api_east, "--to", "previous", "--reason", " ")
        assert blank.exit_code == 1 and "error[PC411]: --reason needs a reason" in blank.stderr

        # What runs, read from the resources themselves: each task definition's image digest and each live
        # function's code sha256 are the artifacts the ledger recorded for the release running there.
        for account, env in ((PRODUCTION, "production"), (STAGING, "staging")):
            listed = run(account, "status", "--env", env, "--format", "json")
            assert listed.exit_code == 0 and "SKEW" not in listed.stderr, listed.stderr
            for row in json.loads(listed.stdout):
                parameter = f"/pipec/stigg/{env}/{row['service']}"
                recorded = json.loads(world.client("ssm", account, row["region"]).get_parameter(
                    Name=parameter)["Parameter"]["Value"])
                assert row["artifact"] == recorded["digest"] and row["artifact"].startswith("sha256:"), row
        table = _ok(run(STAGING, "status", "--env", "staging"))
        assert table.splitlines()[0].split()[5] == "ARTIFACT" and len(table.splitlines()[1].split()[5]) == 19
        # Code changed behind pipec's back (a console upload, published and pointed at by the live alias): status
        # says so, naming both identities.
        functions = world.client("lambda", STAGING, "us-east-1")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("handler.py", "print('hotfix from a laptop')\n")
        changed = functions.update_function_code(FunctionName="stigg-staging-webhooks", ZipFile=buffer.getvalue())
        published = functions.publish_version(FunctionName="stigg-staging-webhooks")
        functions.update_alias(FunctionName="stigg-staging-webhooks", Name="live",
                               FunctionVersion=published["Version"])
        running = "sha256:" + base64.b64decode(changed["CodeSha256"]).hex()
        skewed = run(STAGING, "status", "--env", "staging", "--format", "json")
        assert skewed.exit_code == 0
        webhooks = next(r for r in json.loads(skewed.stdout) if r["service"] == "webhooks")
        recorded = json.loads(world.client("ssm", STAGING, "us-east-1").get_parameter(
            Name="/pipec/stigg/staging/webhooks")["Parameter"]["Value"])
        assert webhooks["artifact"] == running != recorded["digest"]
        assert (f"pipec: staging us-east-1 webhooks: SKEW: it runs {running}, but release {webhooks['version']} "
                f"recorded {recorded['digest']} for webhooks-zip: changed outside pipec") in skewed.stderr
        assert skewed.stderr.count("SKEW") == 1  # the other services run what was recorded
        # The checks' role reads versions only: --format version never asks for the resources.
        assert run(STAGING, "status", "--env", "staging", "--format", "version").stderr == ""

        # Credentials of the wrong account are refused before anything changes.
        wrong = run(STAGING, "deploy", "--env", "production", "--version", "1.1.0")
        assert wrong.exit_code == 4
        assert 'error[PC605]: the credentials are for AWS account 111111111111, but environment "production"' \
               in wrong.stderr
        # A release that was never published.
        missing = run(STAGING, "deploy", "--env", "staging", "--version", "9.9.9")
        assert missing.exit_code == 4
        assert "error[PC603]: release 9.9.9 is not in s3://stigg-staging-111111111111-us-east-1/releases/9.9.9/" \
               in missing.stderr
        # A published release never changes.
        digests = {a.name: "sha256:" + "0" * 64 for a in plan.artifacts}
        changed = run(STAGING, "bundle", "--version", "1.0.0", "--commit", "3" * 40,
                      *[f"--artifact={n}={d}" for n, d in digests.items()])
        assert changed.exit_code == 4
        assert "release 1.0.0 was already published with other contents" in changed.stderr


def test_status_without_credentials_says_so(workdir: Path) -> None:
    result = cli("status", "--env", "staging", cwd=workdir, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 4
    assert "error[PC601]: no AWS credentials were found" in result.stderr
    assert "Traceback" not in result.stderr


DIGEST = "sha256:" + "ab" * 32
EVERY_ARTIFACT = [f"--artifact={name}={DIGEST}" for name in ("api-image", "worker-image", "jobs-zip", "webhooks-zip")]


def test_malformed_artifact_flags_are_named(workdir: Path) -> None:
    result = cli("bundle", "--version", "1.0.0", "--commit", "1" * 40, "--artifact", "api-image",
                 "--artifact", f"=={DIGEST}", "--artifact", f"jobs-zip={DIGEST}", "--artifact", f"jobs-zip={DIGEST}",
                 cwd=workdir)
    assert result.exit_code == 1
    assert ('error[PC406]: --artifact "api-image" is not NAME=sha256:HEX; --artifact "==sha256:' in result.stderr
            and '--artifact "jobs-zip" is given twice' in result.stderr), result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["deploy", "--env", "staging", "--version", "../../etc"],
     'PC404]: --version "../../etc" is not a release version'),
    (["deploy", "--env", "staging", "--version", "v1.4.2"], 'PC404]: --version "v1.4.2" is not a release version'),
    (["rollback", "--env", "staging", "--to", "1.4"], 'PC404]: --to "1.4" is not a release version'),
    (["bundle", "--version", "1.0.0/x", "--commit", "1" * 40, *EVERY_ARTIFACT],
     'PC404]: --version "1.0.0/x" is not a release version'),
    (["bundle", "--version", "1.0.0", "--commit", "HEAD~1", *EVERY_ARTIFACT],
     'PC405]: --commit "HEAD~1" is not a git commit id'),
    (["history", "--env", "staging", "--service", "apii"], 'PC403]: unknown service "apii"'),
    # a trailing newline never passes: every check matches the whole value, and the message shows it escaped
    (["rollback", "--env", "staging", "--to", "1.0.0\n"], 'PC404]: --to "1.0.0\\n" is not a release version'),
    (["bundle", "--version", "1.0.0", "--commit", "1" * 40 + "\n", *EVERY_ARTIFACT],
     f'PC405]: --commit "{"1" * 40}\\n" is not a git commit id'),
    (["bundle", "--version", "1.0.0", "--commit", "1" * 40, *EVERY_ARTIFACT[:3], f"--artifact=webhooks-zip={DIGEST}\n"],
     'PC406]: the digest of "webhooks-zip" is not sha256:<64 hex digits>'),
    (["status", "--env", "staging\n"], 'PC401]: unknown environment "staging\\n"'),
    (["history", "--env", "staging", "--service", "api\n"], 'PC403]: unknown service "api\\n"'),
    (["status", "--env", "staging", "--region", "us-east-1\n"],
     'PC402]: environment "staging" does not deploy to us-east-1\\n'),
    (["status", "--env", "staging", "--region", "eu-west-1"],
     'PC402]: environment "staging" does not deploy to eu-west-1'),
    (["bootstrap", "--env", "staging", "--region", "eu-west-1"],
     'PC402]: environment "staging" does not deploy to eu-west-1'),
])
def test_a_wrong_request_is_refused_before_anything_reaches_aws(args: list[str], message: str) -> None:
    """Without credentials (and with no AWS at the endpoint), a wrong request still gets its own error."""
    result = cli(*args, cwd=REPO, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 1, result.stderr
    assert f"error[{message}" in result.stderr


def test_unknown_environment_is_a_request_error(workdir: Path) -> None:
    result = cli("deploy", "--env", "prod", "--version", "1.0.0", cwd=workdir)
    assert result.exit_code == 1
    assert 'error[PC401]: unknown environment "prod"' in result.stderr


@pytest.mark.slow
def test_the_demo_runs_to_the_end() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "demo" / "run.py")], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rolling back production (us-east-1, eu-west-1) to previous" in done.stdout
    assert done.stdout.rstrip().endswith("done: the moto server stops and the temporary folder goes")
