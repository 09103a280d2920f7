"""Render stage: pipec's own checks of the rendered output, for what no validator catches (PC3xx).

Each guard reads the parsed templates and the plan and returns Diagnostics; any finding means a bug in pipec's
templates, so the build fails with an internal error instead of shipping a pipeline that cannot roll back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pipec.diagnostics import Diagnostic, PipecError
from pipec.plan.model import OIDC_HOST, Plan
from pipec.validate.facts import FARGATE_SIZES

Parsed = dict[str, Any]
Guard = Callable[[Plan, Parsed], Iterator[Diagnostic]]
def reads(plan: Plan) -> set[str]:
    """The files whose data the guards inspect (the rest need only parse)."""
    return {plan.bootstrap_template, *(s.template for s in plan.services)}


def check(plan: Plan, parsed: Parsed) -> None:
    """Run every guard; raise an internal PipecError listing what they found."""
    found = [d for g in GUARDS for d in g(plan, parsed)]
    if found:
        raise PipecError(found)


def _resources(template: Any, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in (template or {}).get("Resources", {}).items():
        if isinstance(resource, dict) and resource.get("Type") == kind:
            yield name, resource


def _props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties") or {}


def _problem(code: str, path: str, message: str) -> Diagnostic:
    return Diagnostic(code, message, path, hint="this is a bug in pipec's templates; please report it")


def lambda_versions(plan: Plan, parsed: Parsed) -> Iterator[Diagnostic]:
    """PC301: every Lambda alias points at a Version resource that changes with the Version parameter."""
    for service in plan.services:
        template = parsed[service.template]
        versions = dict(_resources(template, "AWS::Lambda::Version"))
        for name, alias in _resources(template, "AWS::Lambda::Alias"):
            target = _props(alias).get("FunctionVersion")
            ref = target.get("Fn::GetAtt") if isinstance(target, dict) else None
            version = versions.get(ref[0]) if isinstance(ref, list) and ref[1:] == ["Version"] else None
            description = _props(version).get("Description") if version else None
            per_release = isinstance(description, dict) and "${Version}" in str(description.get("Fn::Sub"))
            if version is None or not per_release or version.get("DeletionPolicy") != "Retain":
                yield _problem("PC301", service.template, f"alias {name} must point at an AWS::Lambda::Version "
                               "whose description carries ${Version} and that is retained")
            if "CodeDeployLambdaAliasUpdate" not in (alias.get("UpdatePolicy") or {}):
                yield _problem("PC301", service.template, f"alias {name} is not shifted by CodeDeploy")


def codedeploy_groups(plan: Plan, parsed: Parsed) -> Iterator[Diagnostic]:
    """PC302: CodeDeploy groups are BLUE_GREEN with traffic control and roll back on alarms."""
    for service in plan.services:
        if service.kind != "lambda":
            continue
        groups = list(_resources(parsed[service.template], "AWS::CodeDeploy::DeploymentGroup"))
        if not groups:
            yield _problem("PC302", service.template, "a Lambda service has no CodeDeploy deployment group")
        for name, group in groups:
            props = _props(group)
            style = props.get("DeploymentStyle") or {}
            rollback = props.get("AutoRollbackConfiguration") or {}
            alarms = props.get("AlarmConfiguration") or {}
            if (style.get("DeploymentType") != "BLUE_GREEN" or style.get("DeploymentOption") !=
                    "WITH_TRAFFIC_CONTROL" or not rollback.get("Enabled")
                    or "DEPLOYMENT_STOP_ON_ALARM" not in rollback.get("Events", [])
                    or not alarms.get("Enabled") or not alarms.get("Alarms")):
                yield _problem("PC302", service.template, f"deployment group {name} must be BLUE_GREEN with "
                               "traffic control and roll back when an alarm fires")


def ecs_deployments(plan: Plan, parsed: Parsed) -> Iterator[Diagnostic]:
    """PC303: ECS services use the ECS controller with circuit breaker and alarm rollback."""
    for service in plan.services:
        for name, resource in _resources(parsed[service.template], "AWS::ECS::Service"):
            props = _props(resource)
            config = props.get("DeploymentConfiguration") or {}
            breaker = config.get("DeploymentCircuitBreaker") or {}
            alarms = config.get("Alarms") or {}
            if (props.get("DeploymentController") or {}).get("Type") != "ECS":
                yield _problem("PC303", service.template, f"ECS service {name} must use the ECS deployment "
                               "controller, or its circuit breaker and alarms are ignored")
            if not (breaker.get("Enable") and breaker.get("Rollback") and alarms.get("Enable")
                    and alarms.get("Rollback") and alarms.get("AlarmNames")):
                yield _problem("PC303", service.template, f"ECS service {name} must roll back on its circuit "
                               "breaker and on its alarms")


def fargate_pairs(plan: Plan, parsed: Parsed) -> Iterator[Diagnostic]:
    """PC304: the cpu and memory in every ECS parameter file form a valid Fargate pair."""
    for service in plan.services:
        for stack in service.stacks:
            values = dict(stack.values)
            if "Cpu" in values and int(values["Memory"]) not in FARGATE_SIZES.get(int(values["Cpu"]), ()):
                yield _problem("PC304", stack.parameter_file, f"cpu {values['Cpu']} with memory "
                               f"{values['Memory']} is not a valid Fargate size")


def oidc_trust(plan: Plan, parsed: Parsed) -> Iterator[Diagnostic]:
    """PC305: every role trusted through GitHub OIDC pins the audience and an exact subject."""
    path = plan.bootstrap_template
    for name, role in _resources(parsed[path], "AWS::IAM::Role"):
        for statement in _props(role).get("AssumeRolePolicyDocument", {}).get("Statement", []):
            if "Federated" not in (statement.get("Principal") or {}):
                continue
            conditions = statement.get("Condition") or {}
            equals = conditions.get("StringEquals") or {}
            subject = equals.get(f"{OIDC_HOST}:sub")
            subjects = [_text(s) for s in (subject if isinstance(subject, list) else [subject])]
            if (equals.get(f"{OIDC_HOST}:aud") != "sts.amazonaws.com" or not subjects or set(conditions) - {
                    "StringEquals"} or not all(s is not None and "*" not in s and "?" not in s
                                               and s.startswith(f"repo:{plan.repository}:") for s in subjects)):
                yield _problem("PC305", path, f"role {name} must trust GitHub only with aud=sts.amazonaws.com "
                               "and exact subs")


def _text(value: Any) -> str | None:
    """A template string as written: plain, or the text of an Fn::Sub."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        value = value["Fn::Sub"]
    return value if isinstance(value, str) else None


def parity(plan: Plan, parsed: Parsed) -> Iterator[Diagnostic]:
    """PC306: service templates branch only on whether an optional scaling value is set, and all parameter files
    of a service share their keys."""
    for service in plan.services:
        template = parsed[service.template] or {}
        declared = {p.key for p in service.parameters if not p.per_release}
        tests = {name: _tested(body) for name, body in (template.get("Conditions") or {}).items()}
        for name, tested in tests.items():
            if tested not in declared:
                yield _problem("PC306", service.template, f"condition {name} must only test whether a parameter "
                               "is empty: environments may differ only in parameter values")
        for node in _walk(template.get("Resources", {})):
            if "Condition" in node and isinstance(node.get("Type"), str):
                yield _problem("PC306", service.template, "a service template must not create resources "
                               "conditionally: environments may differ only in parameter values")
            branch = node.get("Fn::If")
            if branch is not None and not (isinstance(branch, list) and len(branch) == 3
                                           and branch[0] in tests and branch[1] == {"Ref": tests[branch[0]]}
                                           and branch[2] == {"Ref": "AWS::NoValue"}):
                yield _problem("PC306", service.template, "a service template may only use Fn::If to leave "
                               "out an unset value: environments may differ only in parameter values")
        keys = {tuple(k for k, _ in stack.values) for stack in service.stacks}
        if len(keys) != 1 or set(next(iter(keys))) != declared:
            yield _problem("PC306", service.template, f"the parameter files of {service.name} differ in keys")


def _tested(condition: Any) -> str | None:
    """The parameter a condition `!Not [!Equals [!Ref P, ""]]` tests, or None for any other condition."""
    match condition:
        case {"Fn::Not": [{"Fn::Equals": [{"Ref": str(key)}, ""]}]}:
            return key
    return None


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# Every guard, in the order they run (a table, not a decorator: mutation testing skips decorated functions).
GUARDS: list[Guard] = [lambda_versions, codedeploy_groups, ecs_deployments, fargate_pairs, oidc_trust, parity]
