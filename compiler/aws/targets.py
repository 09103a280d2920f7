"""What an AWS command acts on: the environment, regions and services a user names, checked against the plan."""

from __future__ import annotations

from pipec.diagnostics import fail
from pipec.plan import EnvironmentPlan, Plan, ServicePlan


def environment(plan: Plan, name: str) -> EnvironmentPlan:
    known = [e.name for e in plan.environments]
    if name not in known:
        raise fail("PC605", f'unknown environment "{name}"', hint=f"environments: {', '.join(known)}")
    return plan.environment(name)


def regions(env: EnvironmentPlan, region: str | None) -> list[str]:
    """The one region asked for, or all of the environment's."""
    if region is not None and region not in env.regions:
        raise fail("PC605", f'environment "{env.name}" does not deploy to {region}',
                   hint=f"its regions: {', '.join(env.regions)}")
    return [region] if region else list(env.regions)


def services(plan: Plan, name: str | None) -> list[ServicePlan]:
    """The one service asked for, or all of them."""
    known = [s.name for s in plan.services]
    if name is not None and name not in known:
        raise fail("PC605", f'unknown service "{name}"', hint=f"services: {', '.join(known)}")
    return [s for s in plan.services if name in (None, s.name)]
