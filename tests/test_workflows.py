"""The GitHub Actions target: validators, the release order, environments and roles, injection safety."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipec.render.output import Output
from pipec.render.parse import parse
from tests import validators
from tests.conftest import REPO, bootstrap_of, sub_text, workflows_of
from tests.test_plan import _concrete

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
# Every expression pipec writes reads a context it controls, never text an outsider can set.
SAFE = re.compile(r"^ ?('\$\{\{'|steps\.next\.outputs\.version|steps\.publish\.outputs\.digest|"
                  r"needs\.[a-z0-9-]+\.outputs\.(version|digest)|needs\.[a-z0-9-]+\.result|"
                  r"matrix\.(region|url|environment|role)|"
                  r"github\.token|github\.base_ref|github\.event\.pull_request\.number|always\(\)|success\(\)|"
                  r"failure\(\)|job\.status|secrets\.[A-Za-z_][A-Za-z0-9_]*|"
                  r"always\(\) && needs\.[a-z0-9-]+\.result == 'success' && needs\.[a-z0-9-]+\.result == 'failure'|"
                  r"format\('[a-z :(){}0-9-]+', (github\.actor|inputs\.(version|service))"
                  r"(, (github\.actor|inputs\.(version|service)))?\)|"
                  r"inputs\.(environment|service|version)|inputs\.environment == '[a-z0-9-]+') ?$")


def _load(path: Path) -> dict[str, Any]:
    data = parse(Output(path.as_posix(), path.read_text()))
    assert isinstance(data, dict)
    return data


def _workflow(folder: Path, name: str) -> dict[str, Any]:
    [path] = [p for p in workflows_of(folder) if p.name == f"{name}.yml"]
    return _load(path)


@pytest.mark.slow
def test_the_validators_report_nothing(built: dict[str, Path], tmp_path: Path) -> None:
    workflows = [w for folder in built.values() for w in workflows_of(folder)]
    workflows.append(REPO / ".github" / "workflows" / "ci.yml")
    assert len(workflows) > 20
    failures = [str(v) for v in validators.all_workflow_validators(workflows, tmp_path / "wf") if not v.ok]
    assert failures == []


@pytest.mark.parametrize("name", ["example", "every-option"])
def test_the_release_and_the_stages_it_calls_agree_where_github_reads_them(name: str, built: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    """In a repository's .github/workflows, under their own names, actionlint reads each called stage workflow:
    the inputs passed, the permissions granted, the jobs' outputs. Broken on purpose, it says so."""
    repo = tmp_path / "repo"
    folder = repo / ".github" / "workflows"
    folder.mkdir(parents=True)
    for workflow in workflows_of(built[name]):
        (folder / workflow.name).write_text(workflow.read_text())
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    verdict = validators._run("actionlint", [validators._tool("actionlint"), "-no-color"], cwd=repo)
    assert verdict.ok, verdict.output
    [stage] = sorted(folder.glob("deploy-*.yml"))[:1]
    stage.write_text(stage.read_text().replace("      version:\n", "      release:\n", 1))
    broken = validators._run("actionlint", [validators._tool("actionlint"), "-no-color"], cwd=repo)
    assert not broken.ok and 'input "version" is not defined' in broken.output, broken.output


@pytest.mark.slow
def test_the_composite_action_is_valid_and_clean() -> None:
    action = REPO / "action.yml"
    assert validators._run("zizmor", [validators._tool("zizmor"), "--offline", "--no-progress", str(action)]).ok
    verdict = validators._run("check-jsonschema", [validators._tool("check-jsonschema"), "--builtin-schema",
                                                   "vendor.github-actions", str(action)])
    assert verdict.ok, verdict


def test_every_expression_reads_a_safe_context(built: dict[str, Path]) -> None:
    for folder in built.values():
        for workflow in workflows_of(folder):
            for expression in EXPRESSION.findall(workflow.read_text()):
                assert SAFE.match(expression), (workflow, expression)


def test_hostile_values_are_defused(built: dict[str, Path]) -> None:
    release = _workflow(built["hostile"], "release")
    steps = _workflow(built["hostile"], "deploy-staging")["jobs"]["e2e-staging"]["steps"]
    commands = [s["env"]["COMMAND"] for s in steps if "COMMAND" in s.get("env", {})]
    assert commands == [
        "npm ci && echo ${{ '${{' }} secrets.GITHUB_TOKEN }}",
        "curl -H 'X-Title: ${{ '${{' }} github.event.pull_request.title }}' \"$BASE_URL\"; echo $(cat /etc/passwd)",
    ]
    # The command runs from the environment; the script GitHub sees never changes.
    assert {s["run"] for s in steps if "COMMAND" in s.get("env", {})} == {'bash -eo pipefail -c "$COMMAND"'}
    build = release["jobs"]["build-tool-zip"]["steps"]
    assert any("$(whoami)" in s.get("env", {}).get("COMMAND", "") for s in build)
    sanity = _workflow(built["hostile"], "sanity")
    assert "\n---\non: push" in sanity["jobs"]["sanity"]["steps"][-1]["env"]["COMMAND"]


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _ancestors(jobs: dict[str, Any], name: str) -> set[str]:
    found: set[str] = set()
    stack = _needs(jobs[name])
    while stack:
        job = stack.pop()
        if job not in found:
            found.add(job)
            stack += _needs(jobs[job])
    return found


@pytest.mark.parametrize("name", ["example", "three-environments", "ecs-only"])
def test_the_release_builds_once_and_promotes_in_order(name: str, built: dict[str, Path]) -> None:
    from pipec.build import compile_spec

    plan = compile_spec(built[name] / "pipeline.yaml").plan
    release = _workflow(built[name], "release")
    jobs = release["jobs"]
    assert release["on"] == {"push": {"branches": [plan.branch]}}
    # No lock on the whole run: a release waiting for approval must not hold back the environments before it.
    assert "concurrency" not in release
    assert jobs["version"]["concurrency"] == {"group": f"{plan.project}-release", "cancel-in-progress": False}
    builds = [j for j in jobs if j.startswith("build-")]
    assert sorted(builds) == sorted(f"build-{a.name}" for a in plan.artifacts)  # one job per artifact
    stages = [j for j in jobs if j.startswith("promote-")]
    assert stages == [f"promote-{e.name}" for e in plan.environments]
    for job_id, job in jobs.items():
        assert job["name"] and "permissions" in job
        assert ("uses" in job) is (job_id in stages)  # a job calling a workflow takes no timeout (GitHub refuses it)
        assert "uses" in job or job["timeout-minutes"] > 0
    for stage in stages:
        assert set(builds) | {"bundle", "version"} <= _ancestors(jobs, stage)
        assert not any(b in _ancestors(jobs, b) for b in builds)
    for previous, env in zip(plan.environments, plan.environments[1:], strict=False):
        assert f"promote-{previous.name}" in _needs(jobs[f"promote-{env.name}"])
    # Fail closed before the first deploy: GitHub would create a missing environment unprotected.
    protection = jobs["protection"]
    assert protection["permissions"] == {"contents": "read", "actions": "read"}
    assert protection["steps"][-1] == {"name": "Stop unless the environments are protected as pipeline.yaml says",
                                       "env": {"GH_TOKEN": "${{ github.token }}"}, "run": "pipec github check"}
    assert "protection" in _needs(jobs[stages[0]])
    summary = jobs["summary"]
    assert (summary["if"], _needs(summary), summary["permissions"]) == ("${{ always() }}", ["version", *stages], {})
    for env in plan.environments:
        stage = jobs[f"promote-{env.name}"]
        # The caller holds the environment's group for the whole called workflow: approval, deploy and checks.
        assert stage["uses"] == f"./.github/workflows/deploy-{env.name}.yml"
        assert stage["concurrency"] == {"group": f"{plan.project}-deploy-{env.name}", "cancel-in-progress": False}
        assert stage["permissions"] == {"contents": "read", "id-token": "write"}
        assert stage["with"] == {"version": "${{ needs.version.outputs.version }}"}
        called = _workflow(built[name], f"deploy-{env.name}")
        # The alert channel's secret reaches the stage by name, never every secret (`secrets: inherit`).
        secrets = {"alert_webhook": {"description": "The alert channel's webhook URL (pipeline.yaml alerts.webhook)",
                                     "required": False}} if plan.webhook else None
        assert stage.get("secrets") == ({"alert_webhook": f"${{{{ secrets.{plan.webhook} }}}}"} if plan.webhook
                                        else None)
        assert called["on"] == {"workflow_call": {"inputs": {"version": {
            "description": "The release to deploy", "type": "string", "required": True}},
            **({"secrets": secrets} if secrets else {})}}
        assert called["env"] == release["env"] and called["defaults"] == release["defaults"]
        assert called["permissions"] == {}
        job = called["jobs"][f"deploy-{env.name}"]
        assert "concurrency" not in called and "concurrency" not in job  # the caller's group is the only lock
        # GitHub's Deployments view shows each region's URL, and the job's name the version.
        assert job["environment"] == ({"name": env.name, "url": "${{ matrix.url }}"} if env.urls
                                      else {"name": env.name})
        assert job["strategy"]["matrix"]["include"] == [
            {"region": region, **({"url": url} if url else {})} for region, url in env.deployments]
        assert job["name"] == f"Deploy ${{{{ inputs.version }}}} to {env.name} (${{{{ matrix.region }}}})"
        [assume] = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
        assert assume["with"]["role-to-assume"] == f"arn:aws:iam::{env.account}:role/{plan.project}-{env.name}-deploy"
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        assert job["env"]["VERSION"] == "${{ inputs.version }}"
        assert any(s.get("run", "").startswith(f"pipec deploy --env {env.name}") for s in job["steps"])
        recovers = plan.e2e is not None and env.rolls_back_failures
        assert set(called["jobs"]) == {f"deploy-{env.name}", f"verify-{env.name}",
                                       *([f"e2e-{env.name}"] if plan.e2e else []),
                                       *([f"recover-{env.name}"] if recovers else []),
                                       *([f"plan-{env.name}"] if env.approval else [])}
        told = [s for j in called["jobs"].values() for s in j["steps"] if s.get("run", "").startswith("pipec notify")]
        assert bool(told) == bool(plan.webhook)
        for step in told:  # the secret only in the steps that tell, and a failure to tell fails nothing
            assert step["continue-on-error"] is True and step["env"]["PIPEC_WEBHOOK_URL"] == (
                "${{ secrets.alert_webhook }}")
        assert not any("secrets." in json.dumps(j.get("env", {})) for j in called["jobs"].values())
        if env.approval:
            # Before the approval, without an environment (so without approval): the plan, in the run's summary.
            planned = called["jobs"][f"plan-{env.name}"]
            assert "environment" not in planned and _needs(job) == [f"plan-{env.name}"]
            assert planned["permissions"] == {"contents": "read", "id-token": "write"}
            assert planned["steps"][0]["with"]["fetch-depth"] == 0  # the commits it brings
            [assume] = [s for s in planned["steps"] if "configure-aws-credentials" in s.get("uses", "")]
            assert assume["with"]["role-to-assume"] == f"arn:aws:iam::{env.account}:role/{env.plan_role}"
            shown = [s["run"] for s in planned["steps"] if s.get("run", "").startswith("pipec ")]
            assert shown == [f'pipec plan --env {env.name} --version "$VERSION" --format markdown | tee -a '
                             '"$GITHUB_STEP_SUMMARY"',
                             *([f'pipec notify waiting --env {env.name} --version "$VERSION"'] if plan.webhook else [])]
        else:
            assert "needs" not in job
        # The stage ends by recording that the release passed: after the checks, or after the deploy without them.
        verify = called["jobs"][f"verify-{env.name}"]
        assert _needs(verify) == [f"e2e-{env.name}" if plan.e2e else f"deploy-{env.name}"]
        assert (verify["environment"], verify["permissions"]) == ("pipec_build", {"contents": "read",
                                                                                  "id-token": "write"})
        assert [s["run"] for s in verify["steps"] if s.get("run", "").startswith("pipec ")] == [
            f'pipec verify --env {env.name} --version "$VERSION"',
            *([f'pipec notify deployed --env {env.name} --version "$VERSION"'] if plan.webhook else [])]
        assert verify["env"] == {"VERSION": "${{ inputs.version }}"}
        if plan.e2e:
            e2e = called["jobs"][f"e2e-{env.name}"]
            assert _needs(e2e) == [f"deploy-{env.name}"]
            assert "environment" not in e2e and e2e["permissions"] == {"contents": "read"}
            assert e2e["env"]["EXPECTED_VERSION"] == "${{ inputs.version }}"


def test_a_rollback_never_waits_for_a_release_waiting_for_approval(built: dict[str, Path]) -> None:
    rollback = _workflow(built["example"], "rollback")
    release = _workflow(built["example"], "release")
    inputs = rollback["on"]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["options"] == ["staging", "production"]
    assert inputs["service"]["options"] == ["all", "api", "worker", "usage-report", "webhooks"]
    check = rollback["jobs"]["inputs"]["steps"][0]["run"]
    assert "versions='^(previous|(0|[1-9][0-9]*)" in check
    stage_groups = {job["concurrency"]["group"] for job in release["jobs"].values() if "concurrency" in job}
    for env in ("staging", "production"):
        job = rollback["jobs"][f"rollback-{env}"]
        assert job["needs"] == "inputs"
        assert job["environment"] == env
        assert job["concurrency"] == {"group": f"stigg-{env}-${{{{ matrix.region }}}}", "cancel-in-progress": False}
        assert job["concurrency"]["group"] not in stage_groups
        assert "${{" not in job["steps"][-1]["run"]
        # the environment's protection is read before any role is assumed
        names = [step["name"] for step in job["steps"]]
        assert names.index("Stop unless the environments are protected as pipeline.yaml says") < names.index(
            "Assume the deploy role")
        assert job["steps"][names.index("Stop unless the environments are protected as pipeline.yaml says")][
            "run"] == f"pipec github check --env {env}"
        assert job["permissions"] == {"contents": "read", "actions": "read", "id-token": "write"}
    assert rollback["concurrency"]["group"] not in stage_groups


def test_sanity_never_waits_for_an_approval(built: dict[str, Path]) -> None:
    sanity = _workflow(built["example"], "sanity")
    job = sanity["jobs"]["sanity"]
    assert "environment" not in job
    assert sanity["on"]["schedule"] == [{"cron": "*/30 * * * *"}]
    roles = {entry["role"] for entry in job["strategy"]["matrix"]["include"]}
    assert roles == {"arn:aws:iam::111111111111:role/stigg-staging-sanity",
                     "arn:aws:iam::222222222222:role/stigg-production-sanity"}
    regions = [(e["environment"], e["region"]) for e in job["strategy"]["matrix"]["include"]]
    assert regions == [("staging", "us-east-1"), ("production", "us-east-1"), ("production", "eu-west-1")]


def test_pull_request_workflow_checks_and_summarizes(built: dict[str, Path]) -> None:
    workflow = _workflow(built["example"], "pull-request")
    runs = [s.get("run", "") for s in workflow["jobs"]["check"]["steps"]]
    assert "pipec check" in runs
    assert 'pipec diff --against "origin/${BASE_REF}" --format markdown >> "$GITHUB_STEP_SUMMARY"' in runs
    assert workflow["jobs"]["check"]["permissions"] == {"contents": "read"}


def test_every_action_is_pinned_with_its_version(built: dict[str, Path]) -> None:
    for folder in built.values():
        for workflow in workflows_of(folder):
            for line in workflow.read_text().splitlines():
                if re.match(r'\s+uses: "\./', line):  # a workflow of the same commit: nothing to pin
                    assert re.fullmatch(r'    uses: "\./\.github/workflows/deploy-[a-z0-9-]+\.yml" # zizmor: .*', line)
                elif "uses:" in line:
                    assert re.search(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line



def test_every_checkout_step_drops_the_token(built: dict[str, Path]) -> None:
    """Each checkout step on its own says persist-credentials: false (one saying it must not cover another)."""
    checkouts = 0
    for folder in built.values():
        for workflow in workflows_of(folder):
            data = parse(Output(workflow.as_posix(), workflow.read_text()))
            for job in data["jobs"].values():
                for step in job.get("steps", []):
                    if str(step.get("uses", "")).startswith("actions/checkout@"):
                        checkouts += 1
                        assert step.get("with", {}).get("persist-credentials") is False, (workflow, job["name"])
    assert checkouts > 20


@pytest.mark.parametrize(("environment", "service", "version", "ok"), [
    ("production", "all", "previous", True),
    ("production", "all", "previous@refs/heads/feature", False),  # dispatched from a branch that may not deploy
    ("production", "all", "previous@refs/heads/main-2", False),
    ("staging", "webhooks", "1.4.2", True),
    ("production", "api", "2.0.0-rc.1", True),
    ("production\nstaging", "all", "previous", False),
    ("production", "api\n", "previous", False),
    ("production", "all", "1.0.0\n$(touch /tmp/x)", False),
    ("production", "all", "v1.0.0", False),
    ("prod", "all", "previous", False),
    ("production", "all|api", "previous", False),
    ("production", "all", "", False),
])
def test_the_rollback_input_check_runs_and_matches_whole_values(built: dict[str, Path], environment: str,
                                                                 service: str, version: str, ok: bool) -> None:
    """The input job's script, run by bash as GitHub runs it (bash -e), with the inputs in its environment."""
    check = _workflow(built["example"], "rollback")["jobs"]["inputs"]["steps"][0]["run"]
    version, _, ref = version.partition("@")
    done = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-c", check], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "TARGET_ENV": environment, "SERVICE": service,
                               "VERSION": version, "GITHUB_REF": ref or "refs/heads/main"}, check=False)
    assert (done.returncode == 0) is ok, done.stdout
    assert ("::error::" in done.stdout) is not ok
    if ref:
        assert done.stdout == "::error::run the rollback from main: gh workflow run rollback.yml --ref main\n"


@pytest.mark.parametrize("name", ["example", "saas-three-accounts", "ecs-fleet", "every-option"])
def test_only_the_release_workflows_build_and_bundle_jobs_can_assume_the_build_role(
        name: str, built: dict[str, Path]) -> None:
    """The build role trusts the subject of one GitHub environment, pipec_build, which only the jobs that push
    artifacts, publish the bundle and record a verification name: the scheduled sanity job (whose subject is the
    branch) cannot."""
    from pipec.build import compile_spec

    folder = built[name]
    plan = compile_spec(folder / "pipeline.yaml").plan
    build_arn = plan.build_env.role_arn(plan.build_role)
    boot = bootstrap_of(folder)
    trust = boot["BuildRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    [subject] = [s["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] for s in trust]
    assert subject == f"repo:{plan.repository}:environment:pipec_build"
    sanity = boot["SanityRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert sanity["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] != subject
    assuming = set()
    for path in workflows_of(folder):
        for job_id, job in _load(path)["jobs"].items():
            roles = [s["with"]["role-to-assume"] for s in job.get("steps", []) if "role-to-assume" in s.get("with", {})]
            if build_arn in roles:
                assuming.add((path.name, job_id))
            assert (job.get("environment") == "pipec_build") == (build_arn in roles), (path.name, job_id)
    # and the stage workflows' verify jobs, which record in the release bucket that a release passed.
    assert {(workflow, job) for workflow, job in assuming if workflow != "release.yml"} == {
        (f"deploy-{e.name}.yml", f"verify-{e.name}") for e in plan.environments}
    assert {job for workflow, job in assuming if workflow == "release.yml"} == {a.job for a in plan.artifacts} | {
        "bundle"}


@pytest.mark.parametrize("name", ["example", "saas-three-accounts", "ecs-fleet", "every-option", "lambda-only"])
def test_the_plan_role_plans_and_never_deploys(name: str, built: dict[str, Path]) -> None:
    """Where reviewers approve, a plan role shows them the change first: it creates, reads and deletes change
    sets, and can neither execute one nor pass a role to CloudFormation; only the plan jobs assume it."""
    from pipec.build import compile_spec

    folder = built[name]
    plan = compile_spec(folder / "pipeline.yaml").plan
    boot = bootstrap_of(folder)
    approved = [e for e in plan.environments if e.approval]
    if not approved:
        assert "PlanRole" not in boot
        assert all("PlansReleases" not in dict(s.values) for e in plan.environments for s in e.bootstrap)
        return
    role = boot["PlanRole"]
    assert role["Condition"] == "HasPlanRole"
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        f"repo:{plan.repository}:ref:refs/heads/{plan.branch}")
    actions = {a for p in role["Properties"]["Policies"] for st in p["PolicyDocument"]["Statement"]
               for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert actions == {"cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet",
                       "cloudformation:DeleteChangeSet", "cloudformation:DescribeStacks", "cloudformation:GetTemplate",
                       "ssm:GetParameter", "ssm:GetParameters", "s3:GetObject", "s3:ListBucket",
                       "s3:ListBucketVersions", "s3:GetBucketVersioning", "kms:Decrypt"}
    for env in plan.environments:
        for stack in env.bootstrap:
            assert dict(stack.values)["PlansReleases"] == ("true" if env.approval else "false")
    arns = {e.role_arn(e.plan_role) for e in approved}
    assuming = {(path.name, job_id) for path in workflows_of(folder) for job_id, job in _load(path)["jobs"].items()
                for step in job.get("steps", []) if step.get("with", {}).get("role-to-assume") in arns}
    assert assuming == {(f"deploy-{e.name}.yml", f"plan-{e.name}") for e in approved}


def _subs(value: Any, env: str, account: str, parameters: dict[str, str] | None = None) -> str:
    """A bootstrap value as CloudFormation resolves it in an environment's account (the template's !Sub), with the
    environment's other bootstrap parameters."""
    text = _concrete(sub_text(value), env, account)
    for key, real in (parameters or {}).items():
        text = text.replace("${" + key + "}", real)
    assert "${" not in text, text
    return text


def _trusted_subjects(folder: Path) -> dict[str, set[str]]:
    """Every role the bootstrap makes, by ARN in each environment's account, and the OIDC subjects it trusts (from
    the spec's environments and the template, not from pipec's plan)."""
    import yaml

    spec = yaml.safe_load((folder / "pipeline.yaml").read_text())
    boot = bootstrap_of(folder)
    trusted: dict[str, set[str]] = {}
    for env, settings in spec["environments"].items():
        account = str(settings["account"])
        home = settings["regions"][0]
        [parameter_file] = folder.rglob(f"cloudformation/parameters/{env}/{home}/bootstrap.json")
        parameters = {p["ParameterKey"]: p["ParameterValue"] for p in json.loads(parameter_file.read_text())}
        for resource in boot.values():
            if resource["Type"] != "AWS::IAM::Role" or "RoleName" not in resource["Properties"]:
                continue
            name = _subs(resource["Properties"]["RoleName"], env, account)
            subjects = set()
            for statement in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
                equals = statement.get("Condition", {}).get("StringEquals", {})
                if "token.actions.githubusercontent.com:sub" in equals:
                    assert equals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
                    subject = equals["token.actions.githubusercontent.com:sub"]
                    subjects |= {_subs(s, env, account, parameters)
                                 for s in (subject if isinstance(subject, list) else [subject])}
            trusted.setdefault(f"arn:aws:iam::{account}:role/{name}", set()).update(subjects)
    return trusted


def _runs(job: dict[str, Any]) -> list[dict[str, str]]:
    """The matrix entries a job runs as (one empty entry without a matrix)."""
    return job.get("strategy", {}).get("matrix", {}).get("include", [{}])


def _with_matrix(value: str, entry: dict[str, str]) -> str:
    for key, real in entry.items():
        value = value.replace("${{ matrix." + key + " }}", str(real))
    return value


def _subjects_of_job(workflow: dict[str, Any], job: dict[str, Any], entry: dict[str, str], repository: str,
                     branch: str, default_branch: str) -> set[str]:
    """The `sub` claims GitHub puts in the job's OIDC token: its environment's, else the event's, as GitHub's OIDC
    documentation lists them: a push to the release branch, a dispatch from it, or a schedule, which GitHub runs
    on the default branch."""
    environment = job.get("environment")
    if isinstance(environment, dict):
        environment = environment["name"]
    if environment is not None:
        return {f"repo:{repository}:environment:{_with_matrix(environment, entry)}"}
    events = workflow.get("on", workflow.get(True))
    return {f"repo:{repository}:pull_request" if event.startswith("pull_request")
            else f"repo:{repository}:ref:refs/heads/{default_branch if event == 'schedule' else branch}"
            for event in events}


@pytest.mark.parametrize("name", ["example", "saas-three-accounts", "ecs-fleet", "every-option", "three-environments"])
def test_every_job_that_assumes_a_role_carries_a_subject_the_role_trusts(name: str, built: dict[str, Path]) -> None:
    """A job assumes a role with the token GitHub gives it; the role trusts one `sub`. A job whose subject the
    role does not trust fails at "assume role" on a real runner, which no validator sees."""
    import yaml

    folder = built[name]
    spec = yaml.safe_load((folder / "pipeline.yaml").read_text())
    trusted = _trusted_subjects(folder)
    assumed = 0
    for path in workflows_of(folder):
        workflow = _load(path)
        for job_id, job in workflow["jobs"].items():
            for entry in _runs(job):
                for step in job.get("steps", []):
                    role = step.get("with", {}).get("role-to-assume")
                    if role is None:
                        continue
                    role = _with_matrix(role, entry)
                    assert role in trusted, (path.name, job_id, role)
                    branch = spec.get("release", {}).get("branch", "main")
                    subjects = _subjects_of_job(workflow, job, entry, spec["repository"], branch,
                                                spec.get("github", {}).get("default_branch", branch))
                    assert subjects <= trusted[role], (path.name, job_id, role, subjects, trusted[role])
                    assumed += 1
    assert assumed >= 2 * len(spec["environments"])


_NEEDS_OUTPUT = re.compile(r"needs\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)")
_STEP_OUTPUT = re.compile(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)")


@pytest.mark.parametrize("name", ["example", "ecs-fleet", "every-option", "three-environments"])
def test_every_output_a_job_reads_is_one_its_needs_set(name: str, built: dict[str, Path]) -> None:
    """`needs.X.outputs.Y` is empty, not an error, when X is not among the job's direct needs or X has no output
    Y; a step output that no step of the job sets is empty too. Either way a deploy would run with an empty version
    or digest."""
    import json

    folder = built[name]
    read = 0
    for path in workflows_of(folder):
        jobs = _load(path)["jobs"]
        for job_id, job in jobs.items():
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            text = json.dumps(job)
            for producer, output in _NEEDS_OUTPUT.findall(text):
                assert producer in needs, (path.name, job_id, producer)
                assert output in jobs[producer].get("outputs", {}), (path.name, job_id, producer, output)
                read += 1
            step_ids = {step.get("id") for step in job.get("steps", [])}
            for step, _ in _STEP_OUTPUT.findall(text):
                assert step in step_ids, (path.name, job_id, step)
    assert read >= 3, folder


def test_no_step_hides_a_failed_command_inside_an_echo(built: dict[str, Path]) -> None:
    """`echo "x=$(cmd)"` succeeds when cmd fails (bash -e does not look inside); the rehearsal found a sanity
    job that went on with an empty EXPECTED_VERSION so. An assignment, `x="$(cmd)"`, stops the step."""
    for folder in built.values():
        for path in workflows_of(folder):
            for job in _load(path)["jobs"].values():
                for step in job.get("steps", []):
                    for line in step.get("run", "").splitlines():
                        assert not re.match(r"\s*(echo|printf)\b.*\$\(", line), (path.name, line)


@pytest.mark.parametrize(("name", "env", "policy", "environment"), [
    ("example", "production", "reviewers", "production"),
    ("every-option", "production", "none", "production_rollback"),
])
def test_who_lets_a_rollback_start_is_the_specs_choice(name: str, env: str, policy: str, environment: str,
                                                       built: dict[str, Path]) -> None:
    """rollback_approval: reviewers (the default) waits for the deploy's reviewers, and the runbook says that the
    one who started it cannot approve it; none runs in <env>_rollback, which the deploy role trusts as well."""
    rollback = _workflow(built[name], "rollback")
    assert rollback["jobs"][f"rollback-{env}"]["environment"] == environment
    [runbook] = built[name].rglob(f"runbooks/{env}.md")
    text = runbook.read_text()
    assert f"`rollback_approval: {policy}`" in text
    if policy == "reviewers":
        assert "the person who\n  starts a rollback cannot approve it" in text
    else:
        assert f"rollbacks start at once,\n  unapproved, in the GitHub environment `{environment}`" in text
    boot = bootstrap_of(built[name])
    sub = boot["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"][
        "token.actions.githubusercontent.com:sub"]
    assert isinstance(sub, list) is (policy == "none")


def _deploy_budget(spec: dict[str, Any]) -> int:
    """Minutes one region's deploy may take, from the spec alone: 10 to set up, then the services one after
    another (an ECS service 30; a function 10 plus its traffic shifting, one wait for a canary, one per step for a
    linear rollout; canary 10 % for 5 minutes when the spec says nothing)."""
    total = 10
    for service in spec["services"].values():
        if service["kind"] == "ecs-fargate":
            total += 30
            continue
        rollout = {"strategy": "canary", "percent": 10, "minutes": 5, **service.get("rollout", {})}
        shift = {"canary": rollout["minutes"], "all-at-once": 0,
                 "linear": -(-100 // rollout["percent"]) * rollout["minutes"]}[rollout["strategy"]]
        total += 10 + shift
    hosted = isinstance(spec.get("github", {}).get("runner", "ubuntu-24.04"), str)
    return min(total, 360 if hosted else 720)  # a GitHub-hosted job stops at 6 hours; a role session at 12


@pytest.mark.parametrize("name", ["example", "ecs-fleet", "every-option", "lambda-only", "three-environments"])
def test_deploy_jobs_and_their_sessions_last_as_long_as_the_plan_needs(name: str, built: dict[str, Path]) -> None:
    """A job GitHub stops, or credentials that expire, halfway through a deploy leave a stack updating and nothing
    in the ledger: each deploy and rollback job gets the time its services may take, and its role session (asked
    for by the job, allowed by the role) lasts at least as long, within IAM's 1 to 12 hours."""
    import yaml

    folder = built[name]
    spec = yaml.safe_load((folder / "pipeline.yaml").read_text())
    minutes = _deploy_budget(spec)
    seconds = min(43200, max(3600, minutes * 60))
    boot = bootstrap_of(folder)
    assert boot["DeployRole"]["Properties"]["MaxSessionDuration"] == seconds
    jobs = []
    for path in workflows_of(folder):
        for job_id, job in _load(path)["jobs"].items():
            assumes = [s for s in job.get("steps", []) if "role-to-assume" in s.get("with", {})]
            if any("-deploy" in s["with"]["role-to-assume"] for s in assumes):
                jobs.append(job_id)
                assert job["timeout-minutes"] == minutes, (path.name, job_id)
                assert [s["with"]["role-duration-seconds"] for s in assumes] == [seconds]
                if isinstance(spec.get("github", {}).get("runner", "ubuntu-24.04"), str):
                    assert minutes <= 360  # what GitHub gives a job on its own runners
    recovers = [f"recover-{e}" for e, body in spec["environments"].items()
                if "e2e" in spec.get("checks", {}) and body.get("on_failed_checks", "rollback") == "rollback"]
    assert sorted(jobs) == sorted([f"deploy-{e}" for e in spec["environments"]] +
                                  [f"rollback-{e}" for e in spec["environments"]] + recovers)


@pytest.mark.parametrize("name", ["example", "every-option", "lambda-only", "saas-three-accounts"])
def test_arm64_artifacts_are_built_on_arm64_runners(name: str, built: dict[str, Path]) -> None:
    """`docker build --platform linux/arm64` on an x64 runner without QEMU fails at the first RUN step (exec format
    error): an arm64 image is built on the spec's arm64 runner, natively, and so is a zip whose functions are all
    arm64; everything else runs where every other job does."""
    import yaml

    spec = yaml.safe_load((built[name] / "pipeline.yaml").read_text())
    runner = spec.get("github", {}).get("runner", "ubuntu-24.04")
    arm = spec.get("github", {}).get("arm_runner", "ubuntu-24.04-arm")
    jobs = _workflow(built[name], "release")["jobs"]
    for artifact, settings in spec["artifacts"].items():
        users = [s for s in spec["services"].values() if s["artifact"] == artifact]
        if settings["type"] == "container-image":
            for_arm = settings.get("platform") == "linux/arm64"
            [step] = [s for s in jobs[f"build-{artifact}"]["steps"] if s.get("run", "").startswith("docker build")]
            assert step["env"]["PLATFORM"] == settings.get("platform", "linux/amd64")
        else:
            for_arm = all(s.get("architecture") == "arm64" for s in users) and bool(users)
        assert jobs[f"build-{artifact}"]["runs-on"] == (arm if for_arm else runner), artifact
    others = {job["runs-on"] if isinstance(job.get("runs-on"), str) else tuple(job["runs-on"])
              for job_id, job in jobs.items() if "runs-on" in job and not job_id.startswith("build-")}
    assert others == {runner if isinstance(runner, str) else tuple(runner)}
