"""What a release needs from an environment's bootstrap and network stacks, checked before a deploy changes
anything: only an administrator's `pipec bootstrap` changes those stacks, so a release built from a spec that
changed them (a new image's repository, a new region, a new role) waits until the administrator has run it.

Two checks, each true of a newer bootstrap too (an administrator may bootstrap ahead of a merge, and older
releases must still deploy and roll back): every resource the release's bootstrap and network templates make in
that environment and region (their conditions evaluated with the release's parameter values, as CloudFormation
evaluates them) is one the running stack makes, every parameter of theirs is one it has, and every SSM parameter
the release's service stacks read exists. A resource made only elsewhere (a repository of the build registry) asks
nothing of this environment.
"""

from __future__ import annotations

import json
from typing import Any

from pipec.aws.bundle import Bundles
from pipec.aws.session import Aws, errors
from pipec.aws.stacks import describe, parameter_values, running_template
from pipec.diagnostics import fail
from pipec.plan.model import EnvironmentPlan, ServicePlan, Target
from pipec.render import conditions
from pipec.render.parse import template_body

Chosen = list[tuple[ServicePlan, Target, str]]  # each stack a deploy changes, with its version


def check(aws: Aws, bundles: Bundles, env: EnvironmentPlan, chosen: Chosen) -> None:
    missing = _administered(aws, bundles, env, chosen) + _parameters(aws, bundles, chosen)
    if not missing:
        return
    regions = sorted({region for region, _ in missing})
    region_flag = f" --region {regions[0]}" if len(regions) == 1 and len(env.regions) > 1 else ""
    raise fail("PC622", f"the bootstrap of {env.name} lacks what the release needs: "
               f"{'; '.join(f'{region} {what}' for region, what in missing)}; nothing was changed",
               hint=f"an administrator runs `pipec bootstrap --env {env.name}{region_flag}` with this spec (the "
                    "deploy role cannot change the bootstrap or network stacks), then deploy again")


def _administered(aws: Aws, bundles: Bundles, env: EnvironmentPlan, chosen: Chosen) -> list[tuple[str, str]]:
    """The resources and parameters of the release's bootstrap and network templates that the stacks lack."""
    versions = sorted({version for _, _, version in chosen})
    regions = sorted({target.region for _, target, _ in chosen})
    missing = []
    for stack in [*env.bootstrap, *env.network]:
        if stack.target.region not in regions:
            continue
        wanted = [(bundles.find(v, stack.template), bundles.find(v, stack.parameter_file)) for v in versions]
        releases = [(json.loads(template_body(t)), parameter_values(p)) for t, p in wanted if t and p]
        if not releases:  # a release made before this stack existed needs nothing of it
            continue
        running = describe(aws, stack.name, stack.target.region)
        if running is None:
            missing.append((stack.target.region, f"stack {stack.name} (it does not exist)"))
            continue
        have_parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in running.get("Parameters") or []}
        have = made(running_template(aws, stack.name, stack.target.region), have_parameters, stack.target)
        lacking = set()
        for template, values in releases:
            for resource, statements in made(template, values, stack.target).items():
                if resource not in have:
                    lacking.add(f"resource {resource}")
                else:
                    lacking |= {f"statement {sid} in {resource}" for sid in statements - have[resource]}
        lacking |= {f"parameter {p}" for _, values in releases for p in values if p not in have_parameters}
        if lacking:
            missing.append((stack.target.region, f"stack {stack.name} has no {', '.join(sorted(lacking))}"))
    return missing


def made(template: dict[str, Any], values: dict[str, str], target: Target) -> dict[str, set[str]]:
    """The resources a template makes with these parameter values in the target's account and region, each with
    the Sids of the policy statements in it: what a role or a repository may do grows by named statements."""
    stack = conditions.Stack(template, values, target.region, target.account)
    return {name: stack.statements(resource.get("Properties")) for name, resource in stack.resources().items()}


def _parameters(aws: Aws, bundles: Bundles, chosen: Chosen) -> list[tuple[str, str]]:
    """The SSM parameters the service stacks read (network, alert topic, key, log bucket) that do not exist."""
    needed: dict[str, dict[str, list[str]]] = {}  # region -> parameter -> the services that read it
    for service, target, version in chosen:
        template = json.loads(template_body(bundles.file(version, service.template)))
        values = parameter_values(bundles.file(version, service.stack_for(target.env, target.region).parameter_file))
        for key, declared in (template.get("Parameters") or {}).items():
            if str(declared.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
                name = values.get(key, str(declared.get("Default", "")))
                needed.setdefault(target.region, {}).setdefault(name, []).append(service.name)
    missing = []
    for region, parameters in sorted(needed.items()):
        names = sorted(parameters)
        with errors(f"reading what the stacks in {region} need from the bootstrap"):
            client = aws.client("ssm", region)
            for start in range(0, len(names), 10):  # GetParameters takes at most ten names
                found = client.get_parameters(Names=names[start:start + 10])
                missing += [(region, f"parameter {name} (read by {', '.join(dict.fromkeys(parameters[name]))})")
                            for name in sorted(found.get("InvalidParameters", []))]
    return missing
