"""Promotion provenance against a real moto server: `pipec verify` writes a release's verification once beside
its bundle, and a deploy refuses a release the environment before did not verify (or records why it went ahead).
The whole path, from staging's deploy to production's, is in test_aws.py; the release workflow's verify job is
run by act in the rehearsal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipec.aws import verified
from pipec.aws.session import Aws
from pipec.diagnostics import PipecError
from pipec.release import github
from tests.aws_world import World, aws_in
from tests.conftest import Run, cli
from tests.test_safety import COMPILED

PLAN = COMPILED.plan
STAGING, PRODUCTION = PLAN.environment("staging"), PLAN.environment("production")
RUN = "https://github.com/stiggio/pricing-api/actions/runs/42/attempts/2"


@pytest.fixture(scope="module", autouse=True)
def _bucket(world: World) -> None:
    """The release bucket with two published releases (their records are all `verify` looks for)."""
    s3 = world.client("s3", STAGING.account, "us-east-1")
    s3.create_bucket(Bucket=PLAN.release_bucket)
    s3.put_bucket_versioning(Bucket=PLAN.release_bucket, VersioningConfiguration={"Status": "Enabled"})
    for version in ("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0", "3.6.0"):
        s3.put_object(Bucket=PLAN.release_bucket, Key=f"releases/{version}/release.json", Body=b"{}")


@pytest.fixture
def aws(world: World, monkeypatch: pytest.MonkeyPatch) -> Aws:
    return aws_in(world, STAGING.account, monkeypatch)


def _error(call: Any) -> tuple[str, str, str]:
    with pytest.raises(PipecError) as caught:
        call()
    [found] = caught.value.diagnostics
    return found.code, found.message, found.hint or ""


def _object(world: World, key: str) -> dict[str, Any]:
    s3 = world.client("s3", STAGING.account, "us-east-1")
    data: dict[str, Any] = json.loads(s3.get_object(Bucket=PLAN.release_bucket, Key=key)["Body"].read())
    return data


def test_verify_writes_the_verification_once_beside_the_bundle(world: World, aws: Aws) -> None:
    said: list[str] = []
    verified.record(aws, PLAN, "staging", "3.0.0", RUN, said.append)
    key = "releases/3.0.0/verified/staging.json"
    assert said == [f"pipec: recorded that 3.0.0 passed staging's end-to-end checks (s3://{PLAN.release_bucket}/{key})"]
    written = _object(world, key)
    assert {k: v for k, v in written.items() if k != "at"} == {
        "version": "3.0.0", "environment": "staging", "regions": ["us-east-1"], "checks": "e2e", "run": RUN,
        "by": aws.actor()}
    s3 = world.client("s3", STAGING.account, "us-east-1")
    raw = s3.get_object(Bucket=PLAN.release_bucket, Key=key)["Body"].read().decode()
    assert raw == json.dumps(written, indent=2, sort_keys=True) + "\n"  # one field a line, for a reader's eyes
    # Read back whole, as a deploy reads it.
    assert verified.find(aws, PLAN, STAGING, "3.0.0") == verified.Verification(
        "3.0.0", "staging", ("us-east-1",), "e2e", RUN, written["at"], aws.actor())
    # A re-run of the verify job changes nothing: the first verification stands (the bucket keeps one version).
    said.clear()
    again = verified.record(aws, PLAN, "staging", "3.0.0", "https://github.com/o/r/actions/runs/43/attempts/1",
                            said.append)
    assert said == [f"pipec: 3.0.0 was already verified in staging at {written['at']}; nothing to do"]
    assert again.run == RUN  # what stands is the first verification
    s3 = world.client("s3", STAGING.account, "us-east-1")
    assert len(s3.list_object_versions(Bucket=PLAN.release_bucket, Prefix=key)["Versions"]) == 1
    assert _object(world, key)["run"] == RUN


def test_a_deploy_needs_the_verification_of_the_environment_before(world: World, aws: Aws) -> None:
    said: list[str] = []
    # The first environment has none before it.
    assert verified.require(aws, PLAN, STAGING, "3.1.0", None, said.append) == ""
    assert said == []
    code, message, hint = _error(lambda: verified.require(aws, PLAN, PRODUCTION, "3.1.0", None, said.append))
    assert (code, message) == ("PC621", "release 3.1.0 was not verified in staging, the environment before "
                                        "production: nothing was changed")
    assert hint == ("deploy it to staging and let its checks pass (the release workflow does, then runs `pipec verify "
                    "--env staging --version 3.1.0`); in an emergency: pipec deploy --env production --version 3.1.0 "
                    "--break-glass \"<why>\", which the ledger keeps")
    # Verified in production is not verified in staging.
    verified.record(aws, PLAN, "production", "3.1.0", RUN, said.append)
    assert _error(lambda: verified.require(aws, PLAN, PRODUCTION, "3.1.0", None, said.append))[0] == "PC621"
    # Break glass: it goes ahead, loudly, and hands back the reason to record.
    said.clear()
    assert verified.require(aws, PLAN, PRODUCTION, "3.1.0", "INC-7: hotfix", said.append) == "INC-7: hotfix"
    assert said == ["pipec: BREAK GLASS: 3.1.0 was not verified in staging; deploying anyway, recorded with the "
                    "reason: INC-7: hotfix"]
    # Once staging verified it, nothing is bypassed, with or without the flag.
    verified.record(aws, PLAN, "staging", "3.1.0", "", said.append)
    said.clear()
    assert verified.require(aws, PLAN, PRODUCTION, "3.1.0", "INC-7: hotfix", said.append) == ""
    at = verified.find(aws, PLAN, STAGING, "3.1.0").at  # type: ignore[union-attr]
    assert said == [f"pipec: 3.1.0 passed staging's end-to-end checks at {at}"]  # recorded outside a run: none named
    verified.record(aws, PLAN, "staging", "3.6.0", RUN, said.append)
    said.clear()
    verified.require(aws, PLAN, PRODUCTION, "3.6.0", None, said.append)
    first = _object(world, "releases/3.6.0/verified/staging.json")["at"]
    assert said == [f"pipec: 3.6.0 passed staging's end-to-end checks at {first} in {RUN}"]


def test_a_verification_that_is_not_this_releases_counts_as_none(world: World, aws: Aws) -> None:
    s3 = world.client("s3", STAGING.account, "us-east-1")
    good = {"version": "3.2.0", "environment": "staging", "regions": ["us-east-1"], "checks": "e2e", "run": "",
            "at": "t", "by": "me"}
    cases = {"3.2.0": b"not json", "3.3.0": json.dumps({**good, "version": "3.0.0"}).encode()}
    for version, body in cases.items():
        s3.put_object(Bucket=PLAN.release_bucket, Key=f"releases/{version}/verified/staging.json", Body=body)
        assert verified.find(aws, PLAN, STAGING, version) is None
        assert _error(lambda v=version: verified.require(aws, PLAN, PRODUCTION, v, None, print))[0] == "PC621"
    s3.put_object(Bucket=PLAN.release_bucket, Key="releases/3.3.0/verified/production.json",
                  Body=json.dumps({**good, "version": "3.3.0"}).encode())  # staging's record under production's name
    assert verified.find(aws, PLAN, PRODUCTION, "3.3.0") is None


def test_only_a_published_release_can_be_verified(aws: Aws) -> None:
    code, message, hint = _error(lambda: verified.record(aws, PLAN, "staging", "9.9.9", RUN, print))
    assert (code, message, hint) == ("PC603", f"release 9.9.9 is not published in s3://{PLAN.release_bucket}",
                                     "only a release `pipec bundle` published can be verified")


def test_without_end_to_end_checks_the_deploy_is_what_verifies(world: World, aws: Aws) -> None:
    said: list[str] = []
    found = verified.record(aws, PLAN._replace(e2e=None), "staging", "3.4.0", "", said.append)
    assert found.checks == "deploy"
    assert said == [f"pipec: recorded that 3.4.0 passed staging's deploy (s3://{PLAN.release_bucket}/releases/3.4.0/"
                    "verified/staging.json)"]
    said.clear()
    verified.require(aws, PLAN, PRODUCTION, "3.4.0", None, said.append)
    assert said == [f"pipec: 3.4.0 passed staging's deploy at {found.at}"]


def test_a_damaged_verification_is_not_overwritten_nor_trusted(world: World, aws: Aws) -> None:
    s3 = world.client("s3", STAGING.account, "us-east-1")
    s3.put_object(Bucket=PLAN.release_bucket, Key="releases/3.5.0/verified/production.json", Body=b"{}")
    said: list[str] = []
    verified.record(aws, PLAN, "production", "3.5.0", RUN, said.append)
    assert said == ["pipec: 3.5.0 was already verified in production; nothing to do"]
    assert _object(world, "releases/3.5.0/verified/production.json") == {}


@pytest.mark.parametrize(("run", "code"), [("1234", "PC412"), ("http://github.com/o/r/actions/runs/1", "PC412"),
                                           ("https://x y", "PC412")])
def test_verify_checks_its_run_url(aws: Aws, run: str, code: str) -> None:
    assert _error(lambda: verified.record(aws, PLAN, "staging", "3.0.0", run, print)) == (
        code, f'--run "{run}" is not the https URL of a run', "pass the run's URL (https://github.com/OWNER/REPO/"
        "actions/runs/ID), or leave --run out inside GitHub Actions")


def test_the_run_is_this_github_actions_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"):
        monkeypatch.delenv(key, raising=False)
    assert github.this_run() == ""
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    assert github.this_run() == ""
    monkeypatch.setenv("GITHUB_RUN_ID", "99")
    assert github.this_run() == "https://github.com/o/r/actions/runs/99/attempts/1"
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "3")
    assert github.this_run() == "https://github.com/o/r/actions/runs/99/attempts/3"


@pytest.mark.parametrize("reason", ["", "   ", "two\nlines", "x" * 201, "tab\there"])
def test_break_glass_needs_a_reason(reason: str) -> None:
    code, _, hint = _error(lambda: verified.reason(reason))
    assert code == "PC411"
    assert "--break-glass" in hint


def test_break_glass_reason_is_kept_as_given_without_surrounding_space() -> None:
    assert verified.reason(None) is None
    assert verified.reason("  INC-9: staging down  ") == "INC-9: staging down"
    assert verified.reason("x" * 200) == "x" * 200


def test_the_cli_refuses_an_empty_reason_before_aws_is_asked(workdir: Any) -> None:
    result: Run = cli("deploy", "--env", "production", "--version", "1.0.0", "--break-glass", " ", cwd=workdir,
                      env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith("pipec: error[PC411]: --break-glass needs a reason")
    assert "Traceback" not in result.stderr
