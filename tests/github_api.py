"""A stand-in for the part of GitHub's REST API that pipec uses, on 127.0.0.1: a repository's environments and
their deployment branch policies, the sanity workflow's runs and their jobs, and issues (listed, opened, commented
on, closed), answered as GitHub's documentation shows them (404 for what is not there; 401 without a token)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.local_server import Quiet, serve


def user(login: str) -> dict[str, Any]:
    return {"type": "User", "reviewer": {"login": login, "id": 1, "type": "User"}}


def team(org: str, slug: str) -> dict[str, Any]:
    return {"type": "Team", "reviewer": {"slug": slug, "name": slug.replace("-", " ").title(), "id": 2,
                                         "html_url": f"https://github.com/orgs/{org}/teams/{slug}"}}


def environment(name: str, *, reviewers: list[dict[str, Any]] | None = None, branches: str | None = "custom",
                prevent_self_review: bool = True) -> dict[str, Any]:
    """An environment as GET /repos/{owner}/{repo}/environments/{name} returns it. branches: "custom" (selected
    branches), "protected" (protected branches only) or None (any branch may deploy)."""
    rules: list[dict[str, Any]] = [{"id": 3, "type": "branch_policy"}] if branches else []
    if reviewers is not None:
        rules.append({"id": 4, "type": "required_reviewers", "prevent_self_review": prevent_self_review,
                      "reviewers": reviewers})
    policy = None if branches is None else {"protected_branches": branches == "protected",
                                             "custom_branch_policies": branches == "custom"}
    return {"id": 5, "name": name, "url": f"https://api.github.com/repos/o/r/environments/{name}",
            "protection_rules": rules, "deployment_branch_policy": policy, "can_admins_bypass": True}


@dataclass
class GitHub:
    repository: str
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    branch_policies: dict[str, list[str]] = field(default_factory=dict)
    token: str = "t0ken"
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, authorization)
    headers: list[dict[str, str]] = field(default_factory=list)  # each request's headers, names in lower case
    forbidden: bool = False  # a token without the permission: 403
    body: Any = None  # answer every request with this instead (a broken proxy, say)
    runs: list[dict[str, Any]] = field(default_factory=list)  # newest first: {"id", "jobs": [{"name", "conclusion"}]}
    issues: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, list[str]] = field(default_factory=dict)

    def run_listing(self, workflow: str, query: dict[str, list[str]]) -> dict[str, Any]:
        wanted = query.get("status", [""])[0]
        runs = [r for r in self.runs if r.get("workflow", "sanity.yml") == workflow
                and (not wanted or r.get("status", "completed") == wanted)]
        per_page = min(100, int(query.get("per_page", ["30"])[0]))
        return {"total_count": len(runs), "workflow_runs": [
            {"id": r["id"], "status": r.get("status", "completed"), "conclusion": r.get("conclusion")}
            for r in runs[:per_page]]}

    def change(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST /issues, POST /issues/{n}/comments, PATCH /issues/{n}."""
        rest = path.removeprefix(f"/repos/{self.repository}/")
        if method == "POST" and rest == "issues":
            issue = {"number": len(self.issues) + 1, "title": body["title"], "body": body.get("body", ""),
                     "state": "open", "user": {"login": "github-actions[bot]", "type": "Bot"}}
            self.issues.append(issue)
            return 201, issue
        parts = rest.split("/")
        if parts[0] != "issues" or len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) > len(self.issues):
            return 404, {"message": "Not Found"}
        issue = self.issues[int(parts[1]) - 1]
        if method == "POST" and parts[2:] == ["comments"]:
            self.comments.setdefault(issue["number"], []).append(body["body"])
            return 201, {"id": 9, "body": body["body"]}
        if method == "PATCH" and len(parts) == 2:
            issue.update({k: v for k, v in body.items() if k in ("state", "state_reason", "title", "body")})
            return 200, issue
        return 404, {"message": "Not Found"}

    def answer(self, path: str, authorization: str, query: dict[str, list[str]] | None = None) -> tuple[int, Any]:
        self.requests.append((path, authorization))
        if authorization != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        if self.forbidden:
            return 403, {"message": "Resource not accessible by integration"}
        if self.body is not None:
            return 200, self.body
        repo = f"/repos/{self.repository}/"
        if path.startswith(repo + "actions/workflows/") and path.endswith("/runs"):
            return 200, self.run_listing(path[len(repo + "actions/workflows/"):-len("/runs")], query or {})
        if path.startswith(repo + "actions/runs/") and path.endswith("/jobs"):
            run_id = path[len(repo + "actions/runs/"):-len("/jobs")]
            found = [r for r in self.runs if str(r["id"]) == run_id]
            if not found:
                return 404, {"message": "Not Found"}
            jobs = [{"name": j["name"], "conclusion": j["conclusion"], "status": "completed"}
                    for j in found[0]["jobs"]]
            return 200, {"total_count": len(jobs), "jobs": jobs}
        if path == repo + "issues":
            state = (query or {}).get("state", ["open"])[0]
            return 200, [i for i in self.issues if state == "all" or i["state"] == state]
        prefix = f"/repos/{self.repository}/environments/"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}
        name, _, rest = unquote(path[len(prefix):]).partition("/")
        if name not in self.environments:
            return 404, {"message": "Not Found"}
        if rest == "":
            return 200, self.environments[name]
        if rest == "deployment-branch-policies":  # paginated as GitHub does: per_page (default 30, at most 100)
            policies = [{"id": i, "name": p.removeprefix("tag:"), "type": "tag" if p.startswith("tag:") else "branch"}
                        for i, p in enumerate(self.branch_policies.get(name, []))]
            per_page = min(100, int((query or {}).get("per_page", ["30"])[0]))
            page = int((query or {}).get("page", ["1"])[0])
            return 200, {"total_count": len(policies),
                         "branch_policies": policies[(page - 1) * per_page:page * per_page]}
        return 404, {"message": "Not Found"}


def github_api(github: GitHub) -> contextlib.AbstractContextManager[str]:
    """Serve the stand-in; its base URL (GITHUB_API_URL) for the length of a with block."""

    class Handler(Quiet):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            github.headers.append({key.lower(): value for key, value in self.headers.items()})
            url = urlsplit(self.path)
            self.send_json(*github.answer(url.path, self.headers.get("Authorization", ""), parse_qs(url.query)))

        def do_POST(self) -> None:  # noqa: N802
            self._change("POST")

        def do_PATCH(self) -> None:  # noqa: N802
            self._change("PATCH")

        def _change(self, method: str) -> None:
            github.headers.append({key.lower(): value for key, value in self.headers.items()})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            path = urlsplit(self.path).path
            github.requests.append((f"{method} {path}", self.headers.get("Authorization", "")))
            if self.headers.get("Authorization", "") != f"Bearer {github.token}":
                self.send_json(401, {"message": "Bad credentials"})
            elif github.forbidden:
                self.send_json(403, {"message": "Resource not accessible by integration"})
            else:
                self.send_json(*github.change(method, path, body))

    return serve(Handler)
