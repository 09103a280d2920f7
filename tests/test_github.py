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
        "hint: the job needs `permissions: actions: read` to read the repository's environments"]
    assert len(github.requests) == 1  # without a token nothing is asked


def test_github_cannot_be_reached(workdir: Path) -> None:
    result = cli("github", "check", cwd=workdir, env={"GITHUB_API_URL": "http://127.0.0.1:9", "GH_TOKEN": "t"})
    assert result.exit_code == 4
    assert "error[PC704]: GitHub cannot be asked (http://127.0.0.1:9/repos/stiggio/pricing-api/environments/" \
           "staging)" in result.stderr
    assert _errors(result)[-1] == "hint: check the network and GITHUB_API_URL"


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


def test_what_each_request_says(workdir: Path) -> None:
    """GitHub's REST conventions: its media type, the API version pinned, a User-Agent (GitHub refuses requests
    without one), the token as a bearer; the token may come as GITHUB_TOKEN; the base URL may end in a slash."""
    github = GitHub(REPOSITORY, _protected(), _policies())
    with github_api(github) as url:
        result = cli("github", "check", cwd=workdir,
                     env={"GITHUB_API_URL": url + "/", "GH_TOKEN": None, "GITHUB_TOKEN": "t0ken"})  # type: ignore[dict-item]
    assert result.exit_code == 0, result.stderr
    assert {(h["accept"], h["x-github-api-version"], h["user-agent"], h["authorization"]) for h in github.headers} == {
        ("application/vnd.github+json", "2022-11-28", "pipec", "Bearer t0ken")}
    assert all(path.startswith(f"/repos/{REPOSITORY}/environments/") for path, _ in github.requests)


def test_the_release_branch_is_found_among_many_policies_and_never_by_a_tag(workdir: Path) -> None:
    """GitHub pages the branch policies (30 by default): the 35th must be read; a tag policy lets tags deploy, not
    a branch of the same name."""
    github = GitHub(REPOSITORY, _protected(), _policies())
    github.branch_policies["production"] = [f"hotfix-{i}" for i in range(34)] + ["main"]
    assert _check(workdir, github, "--env", "production").exit_code == 0
    github.branch_policies["production"] = ["tag:main", "tag:v*"]
    assert _errors(_check(workdir, github, "--env", "production"))[0] == (
        "error[PC705]: GitHub environment production of stiggio/pricing-api lets only no branch deploy, not the "
        "release branch main: every release would be refused")


@pytest.mark.parametrize(("pattern", "ok"), [("main", True), ("ma?n", True), ("m*", True), ("*", True),
                                             ("[lm]ain", True), ("m[a-c]in", True), ("[!x]ain", True),
                                             ("mai", False), ("ma?", False), ("main?", False), ("Main", False),
                                             ("[!m]ain", False), ("ma.n", False), ("release/*", False)])
def test_branch_patterns_match_the_whole_name_as_github_does(pattern: str, ok: bool, workdir: Path) -> None:
    github = GitHub(REPOSITORY, {"staging": environment("staging")}, {"staging": [pattern]})
    assert (_check(workdir, github, "--env", "staging").exit_code == 0) is ok


def test_release_branch_patterns_across_segments() -> None:
    """Wildcards never match `/` (GitHub's docs: Ruby's File.fnmatch with FNM_PATHNAME): `*` and `?` stay inside
    one segment, `**/` stands for whole segments, and a class never matches `/` either."""
    from pipec.release.github import _matches

    assert _matches("release/*", "release/stable") and not _matches("release/*", "release/a/b")
    assert _matches("release/*/*", "release/a/b") and _matches("r?lease/*", "release/x")
    assert _matches("**/stable", "release/x/stable") and _matches("**/stable", "stable")
    assert not _matches("release/**", "release/a/b") and _matches("release/**", "release/a")
    assert not _matches("r?lease/*", "rlease/x") and not _matches("*", "release/x")
    assert not _matches("release[!a]x", "release/x") and not _matches("a[/]b", "a/b")


def test_every_reviewer_missing_is_named_and_unknown_entries_are_no_reviewer(workdir: Path) -> None:
    spec = workdir / "pipeline.yaml"
    spec.write_text(spec.read_text().replace('reviewers: ["@stiggio/backend-leads"]',
                                             'reviewers: ["@stiggio/backend-leads", "@ana"]', 1))
    assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
    github = GitHub(REPOSITORY, _protected(), _policies())
    github.environments["production"] = environment("production", reviewers=[user("bo")])
    assert _errors(_check(workdir, github, "--env", "production")) == [
        "error[PC705]: GitHub environment production of stiggio/pricing-api does not have the required reviewers "
        "pipeline.yaml names: @stiggio/backend-leads, @ana missing (it has @bo)",
        "hint: Settings -> Environments -> production -> Required reviewers: add @stiggio/backend-leads, @ana"]
    # a reviewer GitHub describes in a way pipec cannot read (a new kind, a team without its slug) is nobody
    github.environments["production"] = environment("production", reviewers=[
        {"type": "App", "reviewer": {"login": "bot"}}, {"type": "Team", "reviewer": {"name": "Leads"}}])
    assert _errors(_check(workdir, github, "--env", "production")) == [
        "error[PC705]: GitHub environment production of stiggio/pricing-api has no required reviewers, but "
        "pipeline.yaml says approval: manual: its deploys would start unapproved",
        "hint: Settings -> Environments -> production -> Required reviewers: @stiggio/backend-leads, @ana"]


def test_problems_of_an_environment_and_of_its_rollbacks_are_said_together(workdir: Path) -> None:
    spec = workdir / "pipeline.yaml"
    spec.write_text(spec.read_text().replace('    reviewers: ["@stiggio/backend-leads"]\n',
                                             '    reviewers: ["@stiggio/backend-leads"]\n'
                                             '    rollback_approval: none\n', 1))
    assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
    github = GitHub(REPOSITORY, {"production": environment("production")}, _policies())
    errors = [line for line in _errors(_check(workdir, github, "--env", "production")) if line.startswith("error")]
    assert errors == [
        "error[PC705]: GitHub environment production of stiggio/pricing-api has no required reviewers, but "
        "pipeline.yaml says approval: manual: its deploys would start unapproved",
        "error[PC705]: GitHub environment production_rollback of stiggio/pricing-api does not exist: GitHub would "
        "create it at the first deploy, unprotected"]


def test_a_forbidden_token_and_a_broken_answer(workdir: Path) -> None:
    github = GitHub(REPOSITORY, _protected(), _policies(), forbidden=True)
    result = _check(workdir, github)
    assert result.exit_code == 4
    assert _errors(result)[0].startswith("error[PC704]: GitHub answered 403 to GET http://127.0.0.1:")
    assert _errors(result)[1] == ("hint: the token may not read the repository's environments: give the job "
                                  "`permissions: actions: read`")
    broken = GitHub(REPOSITORY, _protected(), _policies(), body=["not", "an", "object"])
    result = _check(workdir, broken)
    assert result.exit_code == 4
    assert _errors(result)[0].startswith("error[PC704]: GitHub answered GET http://127.0.0.1:")
    assert _errors(result)[0].endswith(f"/repos/{REPOSITORY}/environments/staging with something other than an "
                                       "object")
