"""What an AWS command acts on: the environment, regions and services a user names, checked against the plan."""

from __future__ import annotations

import re

from pipec.diagnostics import fail, quote
from pipec.plan.model import EnvironmentPlan, Plan, ServicePlan
from pipec.validate.spec import NAME, RELEASE_VERSION

_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def environment(plan: Plan, name: str) -> EnvironmentPlan:
    known = [e.name for e in plan.environments]
    if name not in known:
        raise fail("PC401", f"unknown environment {quote(name)}", hint=f"environments: {', '.join(known)}")
    return plan.environment(name)


def regions(env: EnvironmentPlan, region: str | None) -> list[str]:
    """The one region asked for, or all of the environment's."""
    if region is not None and region not in env.regions:
        raise fail("PC402", f'environment "{env.name}" does not deploy to {region}',
                   hint=f"its regions: {', '.join(env.regions)}")
    return [region] if region else list(env.regions)


def former_environment(name: str, region: str | None) -> str:
    """An environment the spec no longer has, as `pipec prune` looks for its stacks: a name as the spec's are,
    and the region it ran in (the spec no longer says)."""
    if not re.fullmatch(NAME, name):
        raise fail("PC401", f"unknown environment {quote(name)}", hint="environments are named like staging")
    if region is None:
        raise fail("PC402", f"environment {quote(name)} is not in pipeline.yaml, so pipec does not know its regions",
                   hint=f"name each region it ran in: pipec prune --env {name} --region us-east-1 (with the "
                        "credentials of its account)")
    return name


def region_name(text: str) -> str:
    """A region named on the command line that need not be the spec's (prune may name one the spec dropped)."""
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", text):
        raise fail("PC402", f"{quote(text)} is not an AWS region", hint="regions look like us-east-1")
    return text


def services(plan: Plan, name: str | None) -> list[ServicePlan]:
    """The one service asked for, or all of them."""
    known = [s.name for s in plan.services]
    if name is not None and name not in known:
        raise fail("PC403", f"unknown service {quote(name)}", hint=f"services: {', '.join(known)}")
    return [s for s in plan.services if name in (None, s.name)]


def version(text: str, flag: str = "--version") -> str:
    """A release version as the tags carry it (1.4.2, 2.0.0-rc.1), checked before anything reaches AWS."""
    if not re.fullmatch(RELEASE_VERSION, text):
        raise fail("PC404", f"{flag} {quote(text)} is not a release version",
                   hint="versions look like 1.4.2 (without the tag prefix); `pipec version current` prints the last")
    return text


def commit(text: str) -> str:
    """The commit a release was built from: a git commit id (what the release workflow passes: github.sha)."""
    if not _COMMIT.fullmatch(text):
        raise fail("PC405", f"--commit {quote(text)} is not a git commit id",
                   hint="pass the full commit id, e.g. --commit $(git rev-parse HEAD)")
    return text
