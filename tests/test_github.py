"""`pipec github check` against a GitHub API stand-in on 127.0.0.1: the run stops before any deploy when an
environment is missing, lets any branch deploy, or lacks the required reviewers pipeline.yaml names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli
from tests.github_api import GitHub, environment, github_api, team, user

REPOSITORY = "stiggio/pricing-api"
LEADS = [team("stiggio", "backend-leads")]


def _protected() -> dict[str, dict[str, Any]]:
    """The example's environments as generated/README.md asks for them."""
    return {"staging": environment("staging"), "production": environment("production", reviewers=LEADS),
            "pipec_build": environment("pipec_build")}


def _check(workdir: Path, github: GitHub, *args: str, token: str | None = "t0ken") -> Any:
    with github_api(github) as url:
        env = {"GITHUB_API_URL": url, "GH_TOKEN": token, "GITHUB_TOKEN": None}
        return cli("github", "check", *args, cwd=workdir, env=env)  # type: ignore[arg-type]


def _policies() -> dict[str, list[str]]:
    return {"staging": ["main"], "production": ["main"], "pipec_build": ["main"]}


def test_environments_protected_as_the_spec_says_pass(workdir: Path) -> None:
    github = GitHub(REPOSITORY, _protected(), _policies())
    result = _check(workdir, github)
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, "pipec: GitHub environments staging, production, pipec_build are protected as pipeline.yaml says\n", "")
    paths = {path for path, _ in github.requests}
    assert paths == {f"/repos/{REPOSITORY}/environments/{e}{tail}" for e in ("staging", "production", "pipec_build")
                     for tail in ("", "/deployment-branch-policies")}
    assert {auth for _, auth in github.requests} == {"Bearer t0ken"}


def _errors(result: Any) -> list[str]:
    return [line.removeprefix("pipec: ") for line in result.stderr.splitlines()
            if line.startswith(("pipec: error", "error", "hint"))]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda g: g.environments.pop("production"),
     ["error[PC705]: GitHub environment production of stiggio/pricing-api does not exist: GitHub would create it at "
      "the first deploy, unprotected",
      "hint: Settings -> Environments -> production: create it as generated/README.md (Repository settings) says"]),
    (lambda g: g.environments.update(production=environment("production")),
     ["error[PC705]: GitHub environment production of stiggio/pricing-api has no required reviewers, but "
      "pipeline.yaml says approval: manual: its deploys would start unapproved",
      "hint: Settings -> Environments -> production -> Required reviewers: @stiggio/backend-leads"]),
    (lambda g: g.environments.update(production=environment("production", reviewers=[])),
     ["error[PC705]: GitHub environment production of stiggio/pricing-api has no required reviewers, but "
      "pipeline.yaml says approval: manual: its deploys would start unapproved",
      "hint: Settings -> Environments -> production -> Required reviewers: @stiggio/backend-leads"]),
    (lambda g: g.environments.update(production=environment("production", reviewers=[
        user("mallory"), team("other", "backend-leads")])),
     ["error[PC705]: GitHub environment production of stiggio/pricing-api does not have the required reviewers "
      "pipeline.yaml names: @stiggio/backend-leads missing (it has @mallory, @other/backend-leads)",
      "hint: Settings -> Environments -> production -> Required reviewers: add @stiggio/backend-leads"]),
    (lambda g: g.environments.update(staging=environment("staging", branches=None)),
     ["error[PC705]: any branch may deploy to GitHub environment staging of stiggio/pricing-api (and assume its "
      "roles)", "hint: Settings -> Environments -> staging -> Deployment branches and tags: Selected branches and "
      "tags, add main"]),
    (lambda g: g.branch_policies.update(pipec_build=["release/*", "main-*"]),
     ["error[PC705]: GitHub environment pipec_build of stiggio/pricing-api lets only release/*, main-* deploy, not "
      "the release branch main: every release would be refused",
      "hint: Settings -> Environments -> pipec_build -> Deployment branches and tags: add main"]),
])
def test_weaker_protection_stops_the_run_with_the_fix(workdir: Path, change: Any, expected: list[str]) -> None:
    github = GitHub(REPOSITORY, _protected(), _policies())
    change(github)
    result = _check(workdir, github)
    assert result.exit_code == 4
    assert _errors(result) == expected


def test_every_problem_is_said_at_once(workdir: Path) -> None:
    github = GitHub(REPOSITORY, {"staging": environment("staging", branches=None)}, _policies())
    result = _check(workdir, github)
    assert result.exit_code == 4
    assert [line.split(":")[0] for line in _errors(result) if line.startswith("error")] == ["error[PC705]"] * 3
    assert "production of stiggio/pricing-api does not exist" in result.stderr
    assert "pipec_build of stiggio/pricing-api does not exist" in result.stderr


def test_one_environment_and_branch_patterns(workdir: Path) -> None:
    """--env checks one environment only (the rollback's); a pattern admits the branch as GitHub matches it."""
    github = GitHub(REPOSITORY, {"production": environment("production", reviewers=[*LEADS, user("Ana")])},
                    {"production": ["ma*"]})
    result = _check(workdir, github, "--env", "production")
    assert (result.exit_code, result.stdout) == (
        0, "pipec: GitHub environments production are protected as pipeline.yaml says\n")
    github.branch_policies["production"] = ["*/main"]  # `*` never crosses a `/`
    assert _errors(_check(workdir, github, "--env", "production"))[0].startswith(
        "error[PC705]: GitHub environment production of stiggio/pricing-api lets only */main deploy")
    github.environments["production"] = environment("production", reviewers=LEADS, branches="protected")
    assert _check(workdir, github, "--env", "production").exit_code == 0  # protected branches only: restricted
    unknown = _check(workdir, github, "--env", "prod")
    assert unknown.exit_code == 1 and "error[PC401]: unknown environment" in unknown.stderr


def test_a_token_that_cannot_read_the_environments(workdir: Path) -> None:
    github = GitHub(REPOSITORY, _protected(), _policies(), token="another")
    result = _check(workdir, github)
    assert result.exit_code == 4
    assert _errors(result)[1] == ("hint: the token may not read the repository's environments: give the job "
                                  "`permissions: actions: read`")
    assert _errors(result)[0].startswith("error[PC704]: GitHub answered 401 to GET http://127.0.0.1:")
    missing = _check(workdir, github, token=None)
    assert missing.exit_code == 4
    assert _errors(missing) == [
        "error[PC704]: no GitHub token: set GH_TOKEN (in a workflow: GH_TOKEN: ${{ github.token }})",
        "hint: the job needs `permissions: actions: read` to read environments"]
    assert len(github.requests) == 1  # without a token nothing is asked


def test_github_cannot_be_reached(workdir: Path) -> None:
    result = cli("github", "check", cwd=workdir, env={"GITHUB_API_URL": "http://127.0.0.1:9", "GH_TOKEN": "t"})
    assert result.exit_code == 4
    assert "error[PC704]: GitHub cannot be asked (http://127.0.0.1:9/repos/stiggio/pricing-api/environments/" \
           "staging)" in result.stderr


def test_unapproved_rollbacks_need_their_own_environment_restricted_to_the_release_branch(workdir: Path) -> None:
    """rollback_approval: none runs rollbacks in <env>_rollback, which must exist and let only the release branch
    deploy (it needs no reviewers)."""
    spec = workdir / "pipeline.yaml"
    spec.write_text(spec.read_text().replace('    reviewers: ["@stiggio/backend-leads"]\n',
                                             '    reviewers: ["@stiggio/backend-leads"]\n'
                                             '    rollback_approval: none\n', 1))
    assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
    github = GitHub(REPOSITORY, _protected(), _policies())
    result = _check(workdir, github, "--env", "production")
    assert result.exit_code == 4
    assert _errors(result)[0] == ("error[PC705]: GitHub environment production_rollback of stiggio/pricing-api does "
                                  "not exist: GitHub would create it at the first deploy, unprotected")
    github.environments["production_rollback"] = environment("production_rollback", branches=None)
    assert _errors(_check(workdir, github, "--env", "production"))[0] == (
        "error[PC705]: any branch may deploy to GitHub environment production_rollback of stiggio/pricing-api (and "
        "assume its roles)")
    github.environments["production_rollback"] = environment("production_rollback")
    github.branch_policies["production_rollback"] = ["main"]
    assert _check(workdir, github, "--env", "production").stdout == (
        "pipec: GitHub environments production, production_rollback are protected as pipeline.yaml says\n")
