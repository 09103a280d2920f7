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
from pipec.render.parse import template_body
from pipec.validate.facts import PARTITION

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
    """The resources a template makes with these parameter values in the target's account and region (those
    without a condition and those whose condition holds; one this cannot evaluate counts as holding), each with
    the Sids of the policy statements in it: what a role or a repository may do grows by named statements."""
    refs: dict[str, str] = {key: str(declared.get("Default", "")) for key, declared in
                            (template.get("Parameters") or {}).items() if "Default" in declared}
    refs |= values | {"AWS::Region": target.region, "AWS::AccountId": target.account,
                      "AWS::Partition": PARTITION}
    conditions = template.get("Conditions") or {}
    resources = template.get("Resources") or {}

    def statements(node: Any) -> set[str]:
        """The Sids of the statements in a resource's properties (only the branch of an `Fn::If` that holds, both
        where it cannot be told), also in a policy given as JSON text."""
        if isinstance(node, list):
            return set().union(*map(statements, node))
        if isinstance(node, dict):
            branches = node.get("Fn::If")
            if len(node) == 1 and isinstance(branches, list) and len(branches) == 3:
                holds = _holds(conditions, str(branches[0]), refs)
                return statements(branches[1:] if holds is None else branches[1 if holds else 2])
            found = {str(node["Sid"])} if isinstance(node.get("Sid"), str) and "Effect" in node else set()
            return found.union(*map(statements, node.values()))
        if isinstance(node, str) and node.lstrip().startswith("{"):
            try:
                return statements(json.loads(node))
            except ValueError:
                return set()
        return set()

    return {name: statements(resource.get("Properties")) for name, resource in resources.items()
            if "Condition" not in resource or _holds(conditions, str(resource["Condition"]), refs) is not False}


def _holds(conditions: dict[str, Any], name: str, refs: dict[str, str], depth: int = 0) -> bool | None:
    def value(node: Any) -> Any:
        if isinstance(node, (str, bool)):
            return node
        if not isinstance(node, dict) or len(node) != 1:
            return None
        [(function, argument)] = node.items()
        if function == "Ref":
            return refs.get(argument)
        if function == "Condition":
            return _holds(conditions, argument, refs, depth + 1)
        parts = [value(a) for a in argument] if isinstance(argument, list) else []
        if None in parts:
            return None
        if function == "Fn::Equals" and len(parts) == 2:
            return str(parts[0]) == str(parts[1])
        if function == "Fn::And" and parts:
            return all(parts)
        if function == "Fn::Or" and parts:
            return any(parts)
        if function == "Fn::Not" and len(parts) == 1:
            return not parts[0]
        return None

    if name not in conditions or depth > len(conditions):
        return None
    result = value(conditions[name])
    return result if isinstance(result, bool) else None


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
