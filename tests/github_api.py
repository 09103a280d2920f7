"""A stand-in for the part of GitHub's REST API that pipec reads, on 127.0.0.1: a repository's environments and
their deployment branch policies, answered as GitHub's documentation shows them (GET only; 404 for what is not
there; 401 without a token)."""

from __future__ import annotations

import contextlib
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

    def answer(self, path: str, authorization: str, query: dict[str, list[str]] | None = None) -> tuple[int, Any]:
        self.requests.append((path, authorization))
        if authorization != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        if self.forbidden:
            return 403, {"message": "Resource not accessible by integration"}
        if self.body is not None:
            return 200, self.body
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

    return serve(Handler)
