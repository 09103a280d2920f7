"""The dashboards of an environment in one region, brought up to date after every deploy and rollback there.

Each dashboard stack's parameters say what every service on it runs: its stack's Version parameter and that
release's commit (from the ledger, which records only what ran), and for a web service the full names of its
load balancer and target group (its stack's outputs); a service whose stack does not exist there shows `none`.
The template is the one the deployed release published (a release older than the dashboards leaves the running
one in place, given the new values).

A dashboard that cannot be updated does not undo or fail a deploy that succeeded: pipec says so, and the next
deploy or rollback there tries again.
"""

from __future__ import annotations

import json

from pipec.aws import ledger
from pipec.aws.bundle import Bundles
from pipec.aws.session import Aws
from pipec.aws.stacks import Change, Out, apply, describe, parameter, running_template
from pipec.diagnostics import PipecError
from pipec.plan import dashboard as layout
from pipec.plan.model import EnvironmentPlan, Plan, ServicePlan, Stack, Target
from pipec.render.parse import template_body


def refresh(aws: Aws, plan: Plan, bundles: Bundles, env: EnvironmentPlan, region: str, version: str,
            out: Out) -> None:
    """Update (or create) every dashboard stack of the environment in the region; report, never raise."""
    values = None
    for stack in [s for s in env.dashboards if s.target.region == region]:
        label = f"{env.name} {region} {stack.name.removeprefix(f'{plan.project}-{env.name}-')}"
        try:
            template = _template(aws, bundles, stack, version)
            if template is None:
                out(f"[{label}] release {version} has no dashboard and none runs here; nothing to update")
                continue
            values = values if values is not None else running(aws, plan, Target(env.name, region, env.account))
            declared = set(json.loads(template_body(template)).get("Parameters", {}))
            given = dict(stack.values) | values  # Environment, then what each service runs
            change = Change(stack.name, region, template, {k: v for k, v in given.items() if k in declared},
                            {"pipec:project": plan.project, "pipec:environment": env.name,
                             "pipec:action": "dashboard"}, env.role_arn(env.cfn_role), (), label)
            if not apply(aws, change, out):
                out(f"[{label}] up to date")
        except PipecError as exc:
            out(f"[{label}] warning: the dashboard was not updated: {exc.diagnostics[0].message} (the deploy "
                "stands; the next deploy or rollback here updates it)")


def _template(aws: Aws, bundles: Bundles, stack: Stack, version: str) -> str | None:
    published = bundles.find(version, stack.template)
    if published is not None:
        return published
    if describe(aws, stack.name, stack.target.region) is None:
        return None
    return json.dumps(running_template(aws, stack.name, stack.target.region))


def running(aws: Aws, plan: Plan, target: Target) -> dict[str, str]:
    """The dashboard parameters of every service in one environment and region, from its stack there."""
    values: dict[str, str] = {}
    for service in plan.services:
        values |= _service_values(aws, service, target, dict(service.dashboard_keys))
    return values


def _service_values(aws: Aws, service: ServicePlan, target: Target, held: dict[str, str]) -> dict[str, str]:
    stack = describe(aws, service.stack_for(target.env, target.region).name, target.region)
    if stack is None or stack.get("StackStatus", "").startswith(("CREATE_FAILED", "ROLLBACK", "DELETE", "REVIEW")):
        return dict.fromkeys(held.values(), layout.NONE)
    version = parameter(stack, "Version")
    entry = ledger.current(aws, service, target)  # the commit of what runs: the ledger records only what did
    tags = {t["Key"]: t["Value"] for t in stack.get("Tags") or []}
    commit = entry.commit if entry is not None and entry.version == version else tags.get("pipec:commit")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    found = {"version": version, "commit": commit,
             "load_balancer": outputs.get("LoadBalancerFullName"), "target_group": outputs.get("TargetGroupFullName")}
    return {key: found[what] or layout.NONE for what, key in held.items()}
