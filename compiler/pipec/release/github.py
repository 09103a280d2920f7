"""GitHub's repository settings that YAML cannot express, read through GitHub's REST API (`pipec github check`).

A job naming an environment that does not exist makes GitHub create it, unprotected, and the job starts at once: an
`approval: manual` that nobody set up deploys unapproved, silently. So before the first deploy the workflows ask
GitHub (`GET /repos/{owner}/{repo}/environments/{name}`, which a token with `actions: read` may call) whether each
environment exists, lets only the release branch deploy, and, where the spec asks for approval, has required
reviewers that include the spec's. Anything weaker stops the run, each problem with the exact fix.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pipec.diagnostics import Diagnostic, PipecError, fail
from pipec.plan import names
from pipec.plan.model import Plan

API = "https://api.github.com"
API_VERSION = "2022-11-28"
TIMEOUT_SECONDS = 30


def check(plan: Plan, only: str | None = None) -> list[str]:
    """The environments checked (one of the plan's, or all and the build's); every problem found is raised at
    once, each a diagnostic with its fix."""
    client = Client(plan.repository)
    wanted = [e for e in plan.environments if only is None or e.name == only]
    found: list[Diagnostic] = []
    checked = []
    for env in wanted:
        found += _environment(client, plan, env.name, approval=env.approval, reviewers=env.reviewers)
        checked.append(env.name)
        if env.rollback_environment != env.name:  # unapproved rollbacks: still the release branch only
            found += _environment(client, plan, env.rollback_environment, approval=False, reviewers=())
            checked.append(env.rollback_environment)
    if only is None:  # the build role trusts this one environment's jobs only
        found += _environment(client, plan, names.BUILD_ENVIRONMENT, approval=False, reviewers=())
        checked.append(names.BUILD_ENVIRONMENT)
    if found:
        raise PipecError(found)
    return checked


def _environment(client: Client, plan: Plan, name: str, *, approval: bool,
                 reviewers: tuple[str, ...]) -> list[Diagnostic]:
    where = f"GitHub environment {name} of {plan.repository}"
    settings = f"Settings -> Environments -> {name}"
    data = client.get(f"environments/{urllib.parse.quote(name, safe='')}")
    if data is None:
        return [_problem(f"{where} does not exist: GitHub would create it at the first deploy, unprotected",
                         f"{settings}: create it as generated/README.md (Repository settings) says")]
    found = []
    policy = data.get("deployment_branch_policy")
    if not policy:
        found.append(_problem(f"any branch may deploy to {where} (and assume its roles)",
                              f"{settings} -> Deployment branches and tags: Selected branches and tags, add "
                              f"{plan.branch}"))
    elif policy.get("custom_branch_policies"):
        patterns = client.branch_policies(name)
        if not any(_matches(pattern, plan.branch) for pattern in patterns):
            found.append(_problem(f"{where} lets only {', '.join(patterns) or 'no branch'} deploy, not the release "
                                  f"branch {plan.branch}: every release would be refused",
                                  f"{settings} -> Deployment branches and tags: add {plan.branch}"))
    if approval:
        rules = [r for r in data.get("protection_rules") or [] if r.get("type") == "required_reviewers"]
        present = {_reviewer(r) for rule in rules for r in rule.get("reviewers") or []} - {""}
        if not present:
            found.append(_problem(f"{where} has no required reviewers, but pipeline.yaml says approval: manual: "
                                  "its deploys would start unapproved",
                                  f"{settings} -> Required reviewers: {', '.join(reviewers) or 'who may approve'}"))
        missing = [r for r in reviewers if r.lower() not in present]
        if present and missing:
            found.append(_problem(f"{where} does not have the required reviewers pipeline.yaml names: "
                                  f"{', '.join(missing)} missing (it has {', '.join(sorted(present))})",
                                  f"{settings} -> Required reviewers: add {', '.join(missing)}"))
    return found


def _reviewer(entry: dict[str, Any]) -> str:
    """A reviewer as pipeline.yaml writes one: @login, or @org/team-slug (lower case: GitHub ignores case)."""
    who = entry.get("reviewer") or {}
    if entry.get("type") == "User" and who.get("login"):
        return f"@{who['login']}".lower()
    if entry.get("type") == "Team" and who.get("slug"):
        org = re.search(r"/orgs/([^/]+)/teams/", str(who.get("html_url", "")))
        return f"@{org.group(1) if org else ''}/{who['slug']}".lower()
    return ""


_GLOB = re.compile(r"\*\*/|\*+|\?|\[[!^]?\]?[^\]]*\]")


def _matches(pattern: str, branch: str) -> bool:
    """A branch policy's name pattern, as GitHub matches it (Ruby's File.fnmatch with FNM_PATHNAME, its docs say;
    wildcards never match `/`): `*` and `?` within one segment, `**/` for any number of whole segments, `[...]` a
    character class; the whole name, case-sensitive."""
    regex, at = "", 0
    for found in _GLOB.finditer(pattern):
        regex += re.escape(pattern[at:found.start()])
        token = found.group(0)
        if token == "**/":
            regex += "(?:[^/]*/)*"
        elif token.startswith("*"):
            regex += "[^/]*"
        elif token == "?":
            regex += "[^/]"
        else:  # a class: [abc], [a-z], [!abc] or [^abc]; like every wildcard, never a /
            negated = token[1:2] in ("!", "^")
            body = (token[2:-1] if negated else token[1:-1]).replace("\\", "\\\\")
            regex += f"[^/{body}]" if negated else f"(?!/)[{body}]"
        at = found.end()
    regex += re.escape(pattern[at:])
    try:
        return re.fullmatch(regex, branch) is not None
    except re.error:  # a pattern GitHub would read otherwise: never claim it admits the branch
        return False


def _problem(message: str, fix: str) -> Diagnostic:
    return Diagnostic("PC705", message, hint=fix)


def this_run() -> str:
    """The URL of the GitHub Actions run (attempt included) this command runs in, or "" outside one."""
    server, repository, run = (os.environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY",
                                                               "GITHUB_RUN_ID"))
    if not (server and repository and run):
        return ""
    attempt = os.environ.get("GITHUB_RUN_ATTEMPT", "1")
    return f"{server}/{repository}/actions/runs/{run}/attempts/{attempt}"


class Client:
    """Requests to one repository's REST API, with the workflow's token."""

    def __init__(self, repository: str, permission: str = "actions: read",
                 purpose: str = "read the repository's environments") -> None:
        self.base = (os.environ.get("GITHUB_API_URL") or API).rstrip("/") + f"/repos/{repository}/"
        self.token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")
        self.permission = permission
        self.purpose = purpose
        if not self.token:
            raise fail("PC704", "no GitHub token: set GH_TOKEN (in a workflow: GH_TOKEN: ${{ github.token }})",
                       hint=f"the job needs `permissions: {permission}` to {purpose}")

    def get(self, path: str, *, listing: bool = False) -> dict[str, Any] | None:
        """The JSON object at the path (a listing's array as {"items": [...]}), or None when GitHub answers 404."""
        return self.send("GET", path, listing=listing)

    def send(self, method: str, path: str, body: dict[str, Any] | None = None, *,
             listing: bool = False) -> dict[str, Any] | None:
        """One request; the JSON object GitHub answers, or None for 404."""
        request = urllib.request.Request(self.base + path, method=method, headers={
            "Accept": "application/vnd.github+json", "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": API_VERSION, "User-Agent": "pipec"},
            data=None if body is None else json.dumps(body).encode("utf-8"))
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
                data = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            hint = (f"the token may not {self.purpose}: give the job `permissions: {self.permission}`"
                    if error.code in (401, 403) else "try again; GitHub's status page says whether it is down")
            raise fail("PC704", f"GitHub answered {error.code} to {method} {self.base + path}", hint=hint) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise fail("PC704", f"GitHub cannot be asked ({self.base + path}): {error}",
                       hint="check the network and GITHUB_API_URL") from None
        if listing and isinstance(data, list):  # GET /issues answers an array
            data = {"items": data}
        if not isinstance(data, dict):
            raise fail("PC704", f"GitHub answered {method} {self.base + path} with something other than an object")
        return data

    def branch_policies(self, environment: str) -> list[str]:
        data = self.get(f"environments/{urllib.parse.quote(environment, safe='')}/deployment-branch-policies"
                        "?per_page=100") or {}
        return [str(p.get("name", "")) for p in data.get("branch_policies") or [] if p.get("type", "branch") ==
                "branch"]
