"""The rehearsal: the example's generated workflows, run by act on this machine against a moto server (see
tests/rehearsal/rehearse.py). Each scenario asserts what the workflows left behind — the ledger, `pipec status`,
the tags, the stacks' parameters, what the stand-ins received — not only act's exit code.

The scenarios share one world and run in order inside one test (a release is what the next scenario rolls back);
at the end, each workflow broken one way on purpose must fail where it broke.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.rehearsal.rehearse import Rehearsal, Run

pytestmark = pytest.mark.slow

RELEASE_JOBS = {"version", "protection", "build-api-image", "build-worker-image", "build-jobs-zip",
                "build-webhooks-zip", "bundle", "deploy-staging", "e2e-staging", "verify-staging", "plan-production",
                "deploy-production", "e2e-production", "verify-production", "summary"}
IMAGES = {"api-image": "api", "worker-image": "worker"}  # artifact -> the service that runs it


def _versions(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(row["region"], row["service"]): row["version"] for row in rows}


def _calls(run: Run, tool: str, **match: Any) -> list[dict[str, Any]]:
    return [c for c in run.calls if c["tool"] == tool and all(c.get(k) == v for k, v in match.items())]


def _succeeded(run: Run, jobs: set[str]) -> None:
    assert run.returncode == 0, run.log[-8000:]
    assert run.results() == {job: {"success"} for job in jobs}


def _output(run: Run, job: str) -> str:
    """What a job's steps printed, from act's JSON log."""
    lines = []
    for line in run.log.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("jobID") == job and isinstance(item.get("msg"), str):
            lines.append(item["msg"].rstrip("\r\n"))
    return "\n".join(lines)


def _events(r: Rehearsal) -> list[tuple[str, str, str, str]]:
    """What the channel was told since the last look: (event, environment, regions, version), in order; every
    message names the run and the exact rollback command."""
    told = r.told()
    for body in told:
        facts = body["pipec"]
        assert facts["run"].startswith(f"https://github.com/{r.plan.repository}/actions/runs/"), facts
        assert facts["rollback"] == (f"gh workflow run rollback.yml --ref main -f environment={facts['environment']} "
                                     "-f service=all -f version=previous")
        assert facts["version"] in body["text"] and facts["environment"] in body["text"], body
    return [(b["pipec"]["event"], b["pipec"]["environment"], ",".join(b["pipec"]["regions"]), b["pipec"]["version"])
            for b in told]


def _everywhere(r: Rehearsal, env: str) -> set[str]:
    return set(_versions(r.status(env)).values())


def _release(r: Rehearsal, message: str, change: str, version: str) -> Run:
    """A commit to main, its release run, and what every release must have done."""
    (r.app / "services" / "api" / "main.py").write_text(f'print("api: {change}")\n')
    sha = r.commit(message)
    run = r.act("release", "push", {"ref": "refs/heads/main", "after": sha})
    assert f"v{version}" in r.tags()
    # Every checkout keeps no token; no image is built while AWS credentials are in the environment.
    assert {c["persist_credentials"] for c in _calls(run, "checkout")} == {"false"}
    assert {c["sha"] for c in _calls(run, "checkout")} == {sha}
    assert [c["credentials"] for c in _calls(run, "docker", command="build")] == [False, False]
    # The build jobs assume the build role only; each deploy job its environment's deploy role.
    roles = {c["job"]: c["role"] for c in _calls(run, "assume")}
    # Each job's token carries the subject its role trusts (the STS stand-in checks the trust policy): the build
    # jobs' environment pipec_build, each deploy job its environment's.
    subjects = {c["job"]: c["subject"] for c in _calls(run, "assume")}
    assert {subjects[job] for job in subjects if job.startswith(("build-", "bundle", "verify-"))} == {
        f"repo:{r.plan.repository}:environment:pipec_build"}
    assert {subjects[f"deploy-{env.name}"] for env in r.plan.environments} == {
        f"repo:{r.plan.repository}:environment:{env.name}" for env in r.plan.environments}
    # The plan job, before production's approval, holds no environment: it assumes the plan role as the branch.
    if "plan-production" in subjects:
        assert subjects["plan-production"] == f"repo:{r.plan.repository}:ref:refs/heads/main"
        production = r.plan.environment("production")
        assert roles["plan-production"] == f"arn:aws:iam::{production.account}:role/{production.plan_role}"
    # A deploy's session lasts the whole job (the deploy role allows it; STS refuses more than the role allows).
    assert {c["duration"] for c in _calls(run, "assume") if c["job"].startswith("deploy-")} == {
        r.plan.session_seconds}
    assert {roles[job] for job in roles if job.startswith(("build-", "bundle", "verify-"))} == {
        f"arn:aws:iam::{r.plan.build_env.account}:role/{r.plan.build_role}"}
    for env in r.plan.environments:
        if f"deploy-{env.name}" in roles:
            assert roles[f"deploy-{env.name}"] == f"arn:aws:iam::{env.account}:role/{env.deploy_role}"
    return run


def _pushed(run: Run) -> dict[str, str]:
    """Each image artifact and the digest its build job pushed."""
    return {artifact: c["digest"] for c in _calls(run, "docker", command="push")
            for artifact in IMAGES if c["reference"].split("/", 1)[1].startswith(f"stigg/{artifact}:")}


def _runs_digests(r: Rehearsal, env: str, digests: dict[str, str]) -> None:
    """Every region of the environment runs each image by the digest its one build pushed."""
    regions = next(e.regions for e in r.plan.environments if e.name == env)
    for region in regions:
        stacks = r.parameters(env, region)
        for artifact, service in IMAGES.items():
            assert stacks[f"stigg-{env}-{service}"]["ImageUri"].endswith(f"@{digests[artifact]}"), (env, region)


def _release_on_push(r: Rehearsal) -> None:
    run = _release(r, "feat: the pricing API ships with pipec", "first", "0.1.0")
    _succeeded(run, RELEASE_JOBS)
    assert _everywhere(r, "staging") == _everywhere(r, "production") == {"0.1.0"}
    digests = _pushed(run)
    assert set(digests) == set(IMAGES)
    _runs_digests(r, "staging", digests)
    _runs_digests(r, "production", digests)
    # Each region's dashboard, updated by the deploy job that ran there, shows the release on every service's row.
    for env in r.plan.environments:
        for region in env.regions:
            board = r.world.client("cloudwatch", env.account, region).get_dashboard(
                DashboardName=f"stigg-{env.name}-{region}")
            rows = [w["properties"]["markdown"] for w in json.loads(board["DashboardBody"])["widgets"]
                    if w["type"] == "text" and w["properties"]["markdown"].startswith("### ")]
            assert len(rows) == len(r.plan.services) and all("release **0.1.0**" in row for row in rows), rows
    # The e2e checks ran after each deploy, against each region's URL, expecting the version just deployed.
    checked = {(c["env"], c["region"], c["base_url"], c["expected_version"], c["credentials"])
               for c in _calls(run, "npm", command=["run", "test:e2e"])}
    assert checked == {(env.name, region, env.url_for(region), "0.1.0", False) for env in r.plan.environments
                       for region in env.regions}
    history = r.history("production")
    assert {(row["version"], row["action"]) for row in history} == {("0.1.0", "deploy")}
    planned = _output(run, "plan-production")
    assert "## Plan: deploy 0.1.0 to production" in planned
    assert "| us-east-1 | api | new stack, " in planned and "Commits: none listed (nothing runs here yet)" in planned
    # Each stage recorded, with the build role, that the release passed its checks, naming the run.
    s3 = r.world.client("s3", r.plan.build_env.account, r.plan.build_env.home_region)
    for env in r.plan.environments:
        key = f"releases/0.1.0/verified/{env.name}.json"
        record = json.loads(s3.get_object(Bucket=r.plan.release_bucket, Key=key)["Body"].read())
        assert (record["version"], record["environment"], record["regions"], record["checks"]) == (
            "0.1.0", env.name, list(env.regions), "e2e")
        assert record["run"].startswith("https://") and "/actions/runs/" in record["run"]
        assert record["by"].startswith("nektos/act via https://")  # the actor and run, as every ledger entry
    # The channel heard each step: staging deployed, production waiting for its reviewers, production deployed.
    told = r.sink.received[:]
    assert _events(r) == [("deployed", "staging", "us-east-1", "0.1.0"),
                          ("waiting", "production", "us-east-1,eu-west-1", "0.1.0"),
                          ("deployed", "production", "us-east-1,eu-west-1", "0.1.0")]
    assert told[2]["text"].split("\n")[:2] == [
        ":white_check_mark: stigg 0.1.0 is deployed to production (us-east-1, eu-west-1) and passed its checks.",
        "Roll back: `gh workflow run rollback.yml --ref main -f environment=production -f service=all -f "
        "version=previous` (or https://github.com/stiggio/pricing-api/actions/workflows/rollback.yml)"]


def _sanity_on_schedule(r: Rehearsal) -> None:
    before = {env.name: r.history(env.name) for env in r.plan.environments}
    run = r.act("sanity", "schedule", {"schedule": "*/30 * * * *"})
    _succeeded(run, {"sanity"})
    assert len(run.jobs) == 3
    checked = {(c["env"], c["region"], c["expected_version"], c["credentials"]) for c in _calls(run, "pytest")}
    assert checked == {(env.name, region, "0.1.0", True) for env in r.plan.environments for region in env.regions}
    assert {c["role"] for c in _calls(run, "assume")} == {f"arn:aws:iam::{env.account}:role/{env.sanity_role}"
                                                          for env in r.plan.environments}
    # GitHub runs a schedule on the default branch: that is the subject the sanity roles must trust
    assert {c["subject"] for c in _calls(run, "assume")} == {f"repo:{r.plan.repository}:ref:refs/heads/main"}
    assert {env.name: r.history(env.name) for env in r.plan.environments} == before  # it changed nothing
    assert _events(r) == [] and r.github.issues == []  # all passed, as before: nothing to tell
    r.record_sanity(101)


def _sanity_fails_then_recovers(r: Rehearsal) -> None:
    """Production's sanity checks fail: the channel hears it once per region and one issue opens for each; the next
    run passes: the channel hears the recovery and the issues close."""
    run = r.act("sanity", "schedule", {"schedule": "*/30 * * * *"}, env={"REHEARSAL_FAIL_CHECKS": "production"})
    assert run.returncode != 0
    assert {(c["env"], "failed" in c) for c in _calls(run, "pytest")} == {("staging", False), ("production", True)}
    assert sorted(_events(r)) == [("sanity-failed", "production", "eu-west-1", "0.1.0"),
                                  ("sanity-failed", "production", "us-east-1", "0.1.0")]
    assert sorted((i["title"], i["state"]) for i in r.github.issues) == [
        ("stigg: sanity checks failing on production (eu-west-1)", "open"),
        ("stigg: sanity checks failing on production (us-east-1)", "open")]
    r.record_sanity(102, failing="production")
    again = r.act("sanity", "schedule", {"schedule": "*/30 * * * *"})
    _succeeded(again, {"sanity"})
    assert sorted(_events(r)) == [("sanity-recovered", "production", "eu-west-1", "0.1.0"),
                                  ("sanity-recovered", "production", "us-east-1", "0.1.0")]
    assert {(i["state"], i.get("state_reason")) for i in r.github.issues} == {("closed", "completed")}
    assert all(len(r.github.comments[i["number"]]) == 1 for i in r.github.issues)  # "pass again", with the run
    r.record_sanity(103)


def _pull_requests(r: Rehearsal) -> None:
    payload = {"pull_request": {"number": 7, "head": {"ref": "tune"}, "base": {"ref": "main"}}}
    # A hand-edited generated file fails the check.
    r.switch("tune", start="main")
    workflow = r.app / r.plan.workflows_dir / "deploy-staging.yml"
    text = workflow.read_text()
    longer = re.sub(r"timeout-minutes: (\d+)", lambda m: f"timeout-minutes: {int(m.group(1)) * 2}", text, count=1)
    assert longer != text
    workflow.write_text(longer)
    r.commit("chore: a longer deploy timeout, by hand", branch="tune")
    failed = r.act("pull-request", "pull_request", payload)
    assert failed.returncode != 0 and failed.results() == {"check": {"failure"}}
    assert "do not match pipeline.yaml" in failed.log
    # The same change made in pipeline.yaml and rebuilt passes.
    r.switch("tune", start="main")
    spec = r.app / "pipeline.yaml"
    spec.write_text(spec.read_text().replace("staging:    {cpu: 256, memory: 512, min: 1, max: 2}",
                                             "staging:    {cpu: 512, memory: 1024, min: 1, max: 2}", 1))
    r.pipec("build")
    r.commit("chore: more cpu in staging", branch="tune")
    passed = r.act("pull-request", "pull_request", payload)
    _succeeded(passed, {"check"})
    r.switch("main")


def _second_release(r: Rehearsal) -> dict[str, str]:
    since = r.history("production")[0]["commit"]
    run = _release(r, "fix: a faster price lookup", "second", "0.1.1")
    _succeeded(run, RELEASE_JOBS)
    # Before production's approval, the run's summary showed the plan against what runs, and the commits since.
    planned = _output(run, "plan-production")
    assert "## Plan: deploy 0.1.1 to production" in planned
    row = next(line for line in planned.splitlines() if line.startswith("| us-east-1 | api | "))
    assert "(0.1.0 -> 0.1.1)" in row and "`Version` 0.1.0 → 0.1.1" in row and "`ImageUri` " in row, planned
    assert f"Commits since {since} (1):" in planned
    sha = r.head()
    link = f"https://github.com/stiggio/pricing-api/commit/{sha}"
    assert f"- [`{sha[:12]}`]({link}) fix: a faster price lookup" in planned

    assert _everywhere(r, "staging") == _everywhere(r, "production") == {"0.1.1"}
    digests = _pushed(run)
    _runs_digests(r, "production", digests)
    assert _events(r) == [("deployed", "staging", "us-east-1", "0.1.1"),
                          ("waiting", "production", "us-east-1,eu-west-1", "0.1.1"),
                          ("deployed", "production", "us-east-1,eu-west-1", "0.1.1")]
    return digests


def _rerun(r: Rehearsal, digests: dict[str, str]) -> None:
    """"Re-run all jobs" of the last release: the same commit is the same release, with the same artifacts."""
    tags, history = r.tags(), r.history("production")
    run = r.act("release", "push", {"ref": "refs/heads/main"})
    _succeeded(run, RELEASE_JOBS)
    assert r.tags() == tags  # no new version minted
    assert {c["read"]: c["found"] for c in _calls(run, "gh")} == {"refs/tags/v0.1.1": r.head()}
    assert not _calls(run, "docker", command="push") and not _calls(run, "gh", ref="refs/tags/v0.1.2")
    assert _everywhere(r, "staging") == _everywhere(r, "production") == {"0.1.1"}
    _runs_digests(r, "production", digests)
    assert [row for row in r.history("production") if row["version"] != "0.1.1"] == [
        row for row in history if row["version"] != "0.1.1"]
    r.told()  # a re-run tells the channel again, as it deploys again


def _rollbacks(r: Rehearsal, first: dict[str, str]) -> None:
    run = r.act("rollback", "workflow_dispatch",
                {"inputs": {"environment": "production", "service": "all", "version": "previous"}})
    _succeeded(run, {"inputs", "rollback-production"})
    assert _everywhere(r, "production") == {"0.1.0"} and _everywhere(r, "staging") == {"0.1.1"}
    _runs_digests(r, "production", first)
    newest = {(row["region"], row["service"]): row for row in r.history("production")
              if row["action"] == "rollback"}
    assert {row["version"] for row in newest.values()} == {"0.1.0"} and len(newest) == len(r.status("production"))
    # The ledger and the channel say who rolled back, by hand.
    assert {row["reason"] for row in newest.values()} == {"by hand: nektos/act"}
    assert sorted(_events(r)) == [("rolled-back", "production", "eu-west-1", "0.1.0"),
                                  ("rolled-back", "production", "us-east-1", "0.1.0")]

    run = r.act("rollback", "workflow_dispatch",
                {"inputs": {"environment": "staging", "service": "api", "version": "0.1.0"}})
    _succeeded(run, {"inputs", "rollback-staging"})
    assert {service: version for (_, service), version in _versions(r.status("staging")).items()} == {
        "api": "0.1.0", "worker": "0.1.1", "usage-report": "0.1.1", "webhooks": "0.1.1"}
    assert _events(r) == [("rolled-back", "staging", "us-east-1", "0.1.1")]  # the newest version running there

    bad = r.act("rollback", "workflow_dispatch",
                {"inputs": {"environment": "production", "service": "all", "version": "1.0; rm -rf /"}})
    assert bad.returncode != 0 and bad.results() == {"inputs": {"failure"}}


def _failed_e2e_in_staging(r: Rehearsal) -> None:
    """A release fails its end-to-end checks in staging: the channel hears it, staging is rolled back at once to
    what ran there before (the newest older releases that passed its checks), the ledger says it was automatic,
    and production never sees the release."""
    production, staging = r.status("production"), _versions(r.status("staging"))
    (r.app / "services" / "worker" / "main.py").write_text('print("worker: third")\n')
    sha = r.commit("feat: usage-based plans")
    run = r.act("release", "push", {"ref": "refs/heads/main", "after": sha}, env={"REHEARSAL_FAIL_CHECKS": "staging"})
    assert run.returncode != 0
    results = run.results()
    assert results["e2e-staging"] == {"failure"} and results["deploy-staging"] == {"success"}
    assert results["recover-staging"] == {"success"} and "verify-staging" not in results
    assert "deploy-production" not in results or results["deploy-production"] == {"skipped"}
    assert [(c["env"], c["expected_version"]) for c in _calls(run, "npm", command=["run", "test:e2e"])] == [
        ("staging", "0.2.0")]
    assert _versions(r.status("staging")) == staging  # api 0.1.0 (rolled back by hand before), the rest 0.1.1
    automatic = [row for row in r.history("staging") if row["reason"].startswith("automatic")]
    assert {(row["action"], row["reason"]) for row in automatic} == {
        ("rollback", "automatic: the end-to-end checks of 0.2.0 failed")}
    assert {(row["service"], row["version"]) for row in automatic} == {(s, v) for (_, s), v in staging.items()}
    assert _events(r) == [
        ("failed", "staging", "us-east-1", "0.2.0"),  # the checks
        ("rolled-back", "staging", "us-east-1", "0.1.1")]  # what now runs (the newest version running)
    assert r.status("production") == production  # production untouched
    # Nor can anyone deploy it there by hand: staging never verified it.
    refused = r.pipec("deploy", "--env", "production", "--version", "0.2.0", account=r.account("production"),
                      check=False)
    assert refused.returncode == 4 and "release 0.2.0 was not verified in staging" in refused.stderr
    assert r.status("production") == production
    # One version everywhere in staging again (its sanity checks expect the newest one running on every service).
    r.pipec("rollback", "--env", "staging", "--service", "api", "--to", "0.1.1", "--reason", "one version again",
            account=r.account("staging"))
    assert _everywhere(r, "staging") == {"0.1.1"}


def _machine() -> tuple[list[str], str]:
    """What the rehearsal must leave as it found it: HOME (and its caches) and the system Python's packages."""
    home = Path.home()
    seen = sorted(str(p.relative_to(home)) for folder in (home, home / ".cache", home / ".config") if folder.is_dir()
                  for p in folder.iterdir())
    system = subprocess.run([sys._base_executable, "-m", "pip", "list", "--format=freeze"],  # type: ignore[attr-defined]
                            capture_output=True, text=True, check=False,
                            # no version check: pip would write its answer to ~/.cache/pip, the very place looked at
                            env={"PATH": os.environ["PATH"], "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                                 "PIP_NO_CACHE_DIR": "1"}).stdout
    return seen, system


def test_the_pipeline_rehearsed_from_the_first_release_to_rollbacks() -> None:
    before = _machine()
    with Rehearsal() as r:
        root = r.root
        _release_on_push(r)
        first = {artifact: r.parameters("production", "us-east-1")[f"stigg-production-{service}"]["ImageUri"]
                 .rsplit("@", 1)[1] for artifact, service in IMAGES.items()}
        _sanity_on_schedule(r)
        _sanity_fails_then_recovers(r)
        _pull_requests(r)
        second = _second_release(r)
        _rerun(r, second)
        _rollbacks(r, first)
        _failed_e2e_in_staging(r)
        _unprotected(r)
        _broken_workflows(r)
    assert not root.exists()
    assert _machine() == before


def _unprotected(r: Rehearsal) -> None:
    """GitHub environments weaker than pipeline.yaml (against the GitHub API stand-in): the release stops before
    any deploy, and a rollback before it assumes any role."""
    staging, production = r.status("staging"), r.status("production")
    del r.github.environments["production"]
    run = r.act("release", "push", {"ref": "refs/heads/main"})
    results = run.results()
    assert run.returncode != 0 and results["protection"] == {"failure"}
    assert not {"deploy-staging", "deploy-production"} & set(results)
    assert "PC705" in run.log  # (the message's own words: the log may colour the code)
    assert ("GitHub environment production of stiggio/pricing-api does not exist: GitHub would create it at the "
            "first deploy, unprotected") in run.log
    assert _events(r) == []  # nothing was deployed, nothing failed in an environment
    r.protect()
    r.github.environments["production"]["protection_rules"] = []  # no required reviewers
    run = r.act("rollback", "workflow_dispatch",
                {"inputs": {"environment": "production", "service": "all", "version": "previous"}})
    assert run.returncode != 0 and run.results()["rollback-production"] == {"failure"}
    assert "production of stiggio/pricing-api has no required reviewers" in run.log
    assert not _calls(run, "assume")
    assert {b["pipec"]["what"] for b in r.sink.received} == {"the rollback started by nektos/act failed"}
    assert sorted(_events(r)) == [("failed", "production", "eu-west-1", ""), ("failed", "production", "us-east-1", "")]
    r.protect()
    assert (r.status("staging"), r.status("production")) == (staging, production)


def _edited(r: Rehearsal, name: str, old: str, new: str) -> str:
    """A generated workflow with one thing broken on purpose (what act runs; the commit stays as built)."""
    text = (r.app / r.plan.workflows_dir / f"{name}.yml").read_text()
    assert old in text, (name, old)
    return text.replace(old, new)


def _broken_workflows(r: Rehearsal) -> None:
    """Each workflow broken one way fails where it broke, and changes nothing it should not."""
    staging, production = r.status("staging"), r.status("production")
    # release, a missing `needs`: promote-staging no longer needs `version`, so it passes an empty version on
    run = r.act("release", "push", {"ref": "refs/heads/main"},
                text=_edited(r, "release", "    needs:\n      - version\n      - bundle\n",
                             "    needs:\n      - bundle\n"))
    results = run.results()
    assert run.returncode != 0 and results["bundle"] == {"success"} and results["deploy-staging"] == {"failure"}
    assert "e2e-staging" not in results and r.status("staging") == staging
    told = r.sink.received[:]
    assert _events(r) == [("failed", "staging", "us-east-1", "")]
    assert told[0]["text"].startswith(":x: stigg an unknown version failed in staging (us-east-1): the deploy failed "
                                      "(the run names the stack and the reason).\nRoll back: `gh workflow run")
    # release, an output renamed: the bundle job reads digests no build job sets
    run = r.act("release", "push", {"ref": "refs/heads/main"},
                text=_edited(r, "release", "      digest: ${{ steps.publish.outputs.digest }}",
                             "      image-digest: ${{ steps.publish.outputs.digest }}"))
    results = run.results()
    assert run.returncode != 0 and results["bundle"] == {"failure"} and "deploy-staging" not in results
    assert all(results[job] == {"success"} for job in results if job.startswith("build-"))
    # rollback, a wrong role ARN
    run = r.act("rollback", "workflow_dispatch",
                {"inputs": {"environment": "production", "service": "all", "version": "previous"}},
                text=_edited(r, "rollback", "role/stigg-production-deploy", "role/stigg-production-deploy-old"))
    assert run.results()["rollback-production"] == {"failure"}
    assert any("stigg-production-deploy-old does not exist" in c.get("failed", "") for c in run.calls)
    assert r.status("production") == production
    # rollback, in a GitHub environment the deploy role does not trust (no rollback_approval: none here)
    run = r.act("rollback", "workflow_dispatch",
                {"inputs": {"environment": "production", "service": "all", "version": "previous"}},
                text=_edited(r, "rollback", '    environment: "production"\n',
                             '    environment: "production_rollback"\n'))
    assert run.results()["rollback-production"] == {"failure"}
    assert [c["failed"] for c in _calls(run, "assume") if "failed" in c] == [
        "Not authorized to perform sts:AssumeRoleWithWebIdentity: arn:aws:iam::222222222222:role/"
        f"stigg-production-deploy does not trust repo:{r.plan.repository}:environment:production_rollback"] * 2
    assert r.status("production") == production
    # sanity, production's role looked up in staging's account: production's two jobs fail at assume
    run = r.act("sanity", "schedule", {"schedule": "*/30 * * * *"},
                text=_edited(r, "sanity", "arn:aws:iam::222222222222:role/stigg-production-sanity",
                             "arn:aws:iam::111111111111:role/stigg-production-sanity"))
    # (act reports every leg of a matrix as failed once one fails, so the legs are told apart by what ran)
    assert run.returncode != 0 and [job.result for job in run.jobs] == ["failure"] * 3
    assert [(c["env"], "failed" in c) for c in _calls(run, "pytest")] == [("staging", False)]
    assert [c["failed"] for c in _calls(run, "assume") if "failed" in c] == [
        "Could not assume role with OIDC: arn:aws:iam::111111111111:role/stigg-production-sanity does not exist "
        "in account 111111111111"] * 2
    # pull-request, the base branch not fetched: nothing to diff against
    r.switch("tune", start="main")
    r.commit("chore: nothing", branch="tune")
    run = r.act("pull-request", "pull_request", {"pull_request": {"number": 8, "head": {"ref": "tune"},
                                                                  "base": {"ref": "main"}}},
                text=_edited(r, "pull-request", "          fetch-depth: 0\n", ""))
    assert run.results() == {"check": {"failure"}}
    r.switch("main")
    assert r.status("staging") == staging and r.status("production") == production


def test_the_rehearsal_reads_the_workflows_it_is_given() -> None:
    """The stand-ins replace exactly the actions the workflows pin, by the same commit."""
    from tests.rehearsal.rehearse import HERE, STAND_INS

    workflows = Path(__file__).parent.parent / "generated" / "workflows"
    used = {m for p in workflows.glob("*.yml") for m in re.findall(r"uses: ([\w.-]+/[\w.-]+)@[0-9a-f]{40}",
                                                                     p.read_text())}
    assert used == set(STAND_INS)
    assert all((HERE / "actions" / folder / "action.yml").is_file() for folder in STAND_INS.values())
