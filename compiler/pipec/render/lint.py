"""Render stage: cfn-lint over the rendered templates, alone and with every parameter file (`pipec lint`).

A sample release fills the per-release parameters, exactly as `pipec deploy` would. cfn-lint is imported here
only, so no other command pays for it.
"""

from __future__ import annotations

from typing import Any

from pipec.diagnostics import Diagnostic, Severity
from pipec.plan.model import Plan, Release, Stack
from pipec.render.output import Output

SAMPLE = Release("1.0.0", "0" * 40, {})


def lint(plan: Plan, outputs: list[Output]) -> list[Diagnostic]:
    """Every cfn-lint finding (errors and warnings) on every template, with and without its parameters."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint
    from cfnlint.config import ParameterSet

    texts = {a.path: a.text for a in outputs}
    found: list[Diagnostic] = []
    for template, stacks in _stacks_by_template(plan).items():
        regions = sorted({s.target.region for s in stacks})
        sets = [ParameterSet(source=s.parameter_file, parameters=_values(plan, s)) for s in stacks]
        for parameters in ([], sets):
            matches = cfn_lint(texts[template], config=ManualArgs(regions=regions, parameters=parameters))
            found += [_diagnostic(template, m) for m in matches]
    return sorted(dict.fromkeys(found), key=Diagnostic.sort_key)


def _stacks_by_template(plan: Plan) -> dict[str, list[Stack]]:
    grouped: dict[str, list[Stack]] = {}
    for env in plan.environments:
        for stack in (*env.bootstrap, *env.network):
            grouped.setdefault(stack.template, []).append(stack)
    for service in plan.services:
        grouped[service.template] = list(service.stacks)
    return grouped


# What CloudFormation reads from SSM for each SSM-typed parameter, as a plausible sample: cfn-lint would
# otherwise check the parameter's name (/pipec/...) as if it were the value.
_RESOLVED = {
    "VpcId": "vpc-0123456789abcdef0",
    "PublicSubnets": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "PrivateSubnets": ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
    "AlertTopicArn": "arn:aws:sns:us-east-1:123456789012:alerts",
    "KeyArn": "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    "LogBucket": "logs-123456789012-us-east-1",
}


def _values(plan: Plan, stack: Stack) -> dict[str, Any]:
    values: dict[str, Any] = {k: _RESOLVED.get(k, v) if v.startswith("/pipec/") else v for k, v in stack.values}
    for service in plan.services:
        if service.template == stack.template:
            digests = {service.artifact.name: "sha256:" + "0" * 64}
            release = Release(SAMPLE.version, SAMPLE.commit, digests)
            values |= service.release_values(stack.target, release)
    return values


def _diagnostic(template: str, match: Any) -> Diagnostic:
    rule = match.rule.id
    severity = Severity.ERROR if rule.startswith("E") else Severity.WARNING
    where = match.filename if str(match.filename).endswith(".json") else template
    return Diagnostic(f"cfn-lint {rule}", str(match.message), str(where), int(match.linenumber),
                      int(match.columnnumber), severity=severity)
