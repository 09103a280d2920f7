"""`pipec plan`: what deploying a release would do to what is deployed, worked out by CloudFormation and never
executed.

Per stack: a change set against the stack as it runs (created, read, deleted), the parameters that change (old ->
new), and per resource add / modify / remove, whether CloudFormation replaces it, and what it grants that the
running template did not (IAM statements and security-group rules, compared between the running template and the
release's). A stack that does not exist yet is read from the release's template alone: nothing is asked of
CloudFormation for it, so a plan leaves no stack behind. Then the commits the release brings, from the version each
stack runs to the release's commit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipec.aws import ledger, targets
from pipec.aws.bundle import Bundles
from pipec.aws.session import Aws, errors
from pipec.aws.stacks import (
    Change,
    Out,
    change_set,
    describe,
    parameter_values,
    refuse_unchangeable,
    running_template,
    service_tags,
)
from pipec.plan.model import Plan, ServicePlan, Target
from pipec.render.parse import template_body

_IAM = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy")
_NETWORK = ("AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress")


@dataclass(frozen=True)
class ResourceChange:
    action: str  # Add | Modify | Remove
    resource: str  # the logical id
    type: str
    replacement: str  # True | Conditional | False | "" (CloudFormation did not say)
    properties: tuple[str, ...] = ()  # the properties that change, when CloudFormation says
    grants: tuple[str, ...] = ()  # IAM permissions and network rules the release adds


@dataclass(frozen=True)
class StackPlan:
    env: str
    region: str
    service: str
    stack: str
    running: str  # the version the stack runs, "-" when it does not exist
    version: str
    parameters: tuple[tuple[str, str, str], ...]  # (key, old, new) of each parameter that changes
    changes: tuple[ResourceChange, ...]
    commit: str = ""  # the commit the stack runs, from the ledger
    new: bool = False

    @property
    def broadens(self) -> bool:
        return any(c.grants for c in self.changes)


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str


@dataclass
class Preview:
    env: str
    version: str
    commit: str
    stacks: list[StackPlan]
    commits: list[Commit] = field(default_factory=list)
    since: str = ""  # the commit the commits are counted from
    commits_note: str = ""  # why no commits are listed, when they are not


def preview(aws: Aws, plan: Plan, env_name: str, version: str, service: str | None, region: str | None,
            repo: Path | None, out: Out) -> Preview:
    """The plan of deploying a release to an environment (all its regions and services unless narrowed)."""
    env = targets.environment(plan, env_name)
    targets.version(version)
    regions, services = targets.regions(env, region), targets.services(plan, service)
    aws.require_account(env.account, env.name)
    bundles = Bundles(aws, plan)
    release = bundles.release(version)
    found = Preview(env.name, version, release.commit, [])
    for name in regions:
        target = Target(env.name, name, env.account)
        for chosen in services:
            found.stacks.append(_stack_plan(aws, plan, bundles, chosen, target, version))
            out(f"pipec: planned {env.name} {name} {chosen.name}")
    if repo is not None:
        _commits(found, repo)
    return found


def _stack_plan(aws: Aws, plan: Plan, bundles: Bundles, service: ServicePlan, target: Target,
                version: str) -> StackPlan:
    release = bundles.release(version)
    stack = service.stack_for(target.env, target.region)
    template = bundles.file(version, service.template)
    parameters = parameter_values(bundles.file(version, stack.parameter_file)) | service.release_values(target,
                                                                                                        release)
    existing = describe(aws, stack.name, target.region)
    entry = ledger.current(aws, service, target)
    commit = entry.commit if entry else ""
    new_body = json.loads(template_body(template))
    if existing is None or existing["StackStatus"] == "REVIEW_IN_PROGRESS":
        changes = tuple(ResourceChange("Add", logical, str(body.get("Type", "")), "", (),
                                       tuple(sorted(_grants(body))))
                        for logical, body in sorted(new_body.get("Resources", {}).items()))
        return StackPlan(target.env, target.region, service.name, stack.name, "-", version,
                         tuple((k, "", v) for k, v in parameters.items()), changes, commit, new=True)
    label = f"{target.env} {target.region} {service.name}"
    old = {p["ParameterKey"]: p.get("ParameterValue", "") for p in existing.get("Parameters") or []}
    changed = tuple((k, old.get(k, ""), v) for k, v in parameters.items() if old.get(k) != v)
    running = old.get("Version", "-")
    tags = service_tags(plan.project, target.env, service.name, version, release.commit, "plan")
    # No role passed: CloudFormation works the change set out with the role the stack already has, so the plan
    # role needs no iam:PassRole (and could not hand any role to an execution it cannot start).
    change = Change(stack.name, target.region, template, parameters, tags, None, ("CAPABILITY_IAM",), label)
    refuse_unchangeable(change, existing["StackStatus"])  # what a deploy would refuse, a plan says first
    made = change_set(aws, change, existing["StackStatus"], purpose="plan")
    described: list[dict[str, Any]] = []
    if made is not None:
        change_set_id, description = made
        described = list(description.get("Changes", []))
        with errors(f"deleting the plan's change set of {stack.name}"):
            aws.client("cloudformation", target.region).delete_change_set(ChangeSetName=change_set_id)
    old_body = running_template(aws, stack.name, target.region)
    return StackPlan(target.env, target.region, service.name, stack.name, running, version, changed,
                     _resource_changes(described, old_body, new_body), commit)


def _resource_changes(described: list[dict[str, Any]], old: dict[str, Any],
                      new: dict[str, Any]) -> tuple[ResourceChange, ...]:
    """CloudFormation's resource changes, with what each IAM or network resource grants that it did not."""
    old_resources, new_resources = old.get("Resources", {}), new.get("Resources", {})
    found = []
    for item in described:
        change = item.get("ResourceChange", {})
        logical = str(change.get("LogicalResourceId", ""))
        action = str(change.get("Action", "Modify"))
        before = _grants(old_resources.get(logical, {})) if action != "Add" else set()
        after = _grants(new_resources.get(logical, {})) if action != "Remove" else set()
        properties = sorted({str(d["Target"]["Name"]) for d in change.get("Details", [])
                             if d.get("Target", {}).get("Name")})
        found.append(ResourceChange(action, logical, str(change.get("ResourceType", "")),
                                    str(change.get("Replacement", "")), tuple(properties),
                                    tuple(sorted(after - before))))
    # A policy change CloudFormation did not list (an endpoint that reports too little) is still shown.
    listed = {c.resource for c in found}
    for logical, body in sorted(new_resources.items()):
        if logical in listed or logical not in old_resources:
            continue
        added = _grants(body) - _grants(old_resources[logical])
        if added:
            found.append(ResourceChange("Modify", logical, str(body.get("Type", "")), "", (), tuple(sorted(added))))
    return tuple(sorted(found, key=lambda c: c.resource))


def _grants(resource: dict[str, Any]) -> set[str]:
    """What a resource allows, one line per permission or network rule (intrinsic functions as compact JSON)."""
    kind, properties = resource.get("Type", ""), resource.get("Properties", {}) or {}
    found: set[str] = set()
    if kind in _IAM:
        documents = [properties.get("PolicyDocument")] + [p.get("PolicyDocument") for p in
                                                          properties.get("Policies", []) or [] if isinstance(p, dict)]
        for document in documents:
            found |= _statements(document, "allows")
        found |= _statements(properties.get("AssumeRolePolicyDocument"), "may be assumed by")
        found |= {f"attaches {_text(arn)}" for arn in properties.get("ManagedPolicyArns", []) or []}
    elif kind in _NETWORK:
        rules = [("ingress", r) for r in properties.get("SecurityGroupIngress", []) or []]
        rules += [("egress", r) for r in properties.get("SecurityGroupEgress", []) or []]
        if kind != "AWS::EC2::SecurityGroup":
            rules.append(("ingress" if kind.endswith("Ingress") else "egress", properties))
        for direction, rule in rules:
            if isinstance(rule, dict):
                found.add(_rule(direction, rule))
    return found


def _statements(document: Any, verb: str) -> set[str]:
    if not isinstance(document, dict):
        return set()
    statements = document.get("Statement", [])
    found = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        condition = f" when {_text(statement['Condition'])}" if statement.get("Condition") else ""
        if verb == "allows":
            for action in _listed(statement.get("Action")):
                for resource in _listed(statement.get("Resource")):
                    found.add(f"allows {_text(action)} on {_text(resource)}{condition}")
        else:
            found.add(f"{verb} {_text(statement.get('Principal'))}{condition}")
    return found


def _rule(direction: str, rule: dict[str, Any]) -> str:
    source = next((_text(rule[k]) for k in ("CidrIp", "CidrIpv6", "SourceSecurityGroupId", "SourcePrefixListId",
                                            "DestinationSecurityGroupId", "DestinationPrefixListId")
                   if k in rule), "anywhere")
    ports = f"{_text(rule.get('FromPort', 'all'))}-{_text(rule.get('ToPort', 'all'))}"
    where = "from" if direction == "ingress" else "to"
    return f"{direction} {_text(rule.get('IpProtocol', 'all'))} {ports} {where} {source}"


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _commits(found: Preview, repo: Path) -> None:
    """The commits the release brings: those of its commit that the oldest version running here lacks."""
    import semver

    from pipec.diagnostics import PipecError
    from pipec.release import git

    running = [s for s in found.stacks if s.commit and semver.Version.is_valid(s.running)]
    if not running:
        found.commits_note = "nothing runs here yet"
        return
    oldest = min(running, key=lambda s: semver.Version.parse(s.running))
    if oldest.commit == found.commit:
        found.commits_note = "the release's commit already runs everywhere here"
        return
    try:
        found.commits = [Commit(sha, subject) for sha, subject in git.commits(oldest.commit, found.commit, repo)]
        found.since = oldest.commit
    except PipecError as exc:
        found.commits_note = (f"git cannot list them here: {exc.diagnostics[0].message}; fetch the history "
                              "(fetch-depth: 0)")


def text(found: Preview) -> str:
    lines = [f"Plan: deploy {found.version} ({found.commit[:12]}) to {found.env}"]
    for stack in found.stacks:
        lines += ["", f"{stack.region} {stack.service} ({stack.stack}): {_headline(stack)}"]
        lines += [f"  parameter {key}: {old or '(none)'} -> {new}" for key, old, new in stack.parameters
                  if not stack.new]
        for change in stack.changes:
            mark = {"Add": "+", "Remove": "-", "Modify": "~"}.get(change.action, "?")
            lines.append(f"  {mark} {change.resource} ({change.type}){_replacement(change)}{_properties(change)}")
            lines += [f"      ! {grant}" for grant in change.grants]
    lines += ["", *_commit_lines(found, lambda c: f"  {c.sha[:12]} {c.subject}")]
    return "\n".join(lines) + "\n"


def markdown(found: Preview, repository: str, server: str = "https://github.com") -> str:
    lines = [f"## Plan: deploy {found.version} to {found.env}", ""]
    if any(s.broadens for s in found.stacks):
        lines += ["> [!WARNING]", "> This release grants new IAM permissions or network access (marked below).", ""]
    lines += ["| region | service | change | parameters |", "|---|---|---|---|"]
    for stack in found.stacks:
        changed = ", ".join(f"`{k}` {_md(o) or '-'} → {_md(n)}" for k, o, n in stack.parameters) if not stack.new \
            else "new stack"
        lines.append(f"| {stack.region} | {stack.service} | {_headline(stack)} | {changed} |")
    for stack in found.stacks:
        if not stack.changes:
            continue
        lines += ["", f"<details><summary>{stack.region} {stack.service}: {_headline(stack)}</summary>", ""]
        for change in stack.changes:
            lines.append(f"- `{change.action}` {change.resource} ({change.type}){_replacement(change)}"
                         f"{_properties(change)}")
            lines += [f"  - ⚠️ {_md(grant)}" for grant in change.grants]
        lines += ["", "</details>"]
    lines += ["", "### Commits", ""]
    link = f"{server}/{repository}/commit/"
    lines += _commit_lines(found, lambda c: f"- [`{c.sha[:12]}`]({link}{c.sha}) {_md(c.subject)}")
    return "\n".join(lines) + "\n"


def as_json(found: Preview) -> str:
    data = asdict(found)
    for stack, item in zip(found.stacks, data["stacks"], strict=True):
        item["broadens"] = stack.broadens
    return json.dumps(data, indent=2) + "\n"


def _headline(stack: StackPlan) -> str:
    if stack.new:
        return f"new stack, {len(stack.changes)} resources to add"
    counts: dict[str, int] = {}
    for change in stack.changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    replaced = sum(c.replacement == "True" for c in stack.changes)
    parts = [f"{n} to {a.lower()}" for a, n in sorted(counts.items())]
    parts += [f"{replaced} replaced"] if replaced else []
    parts += ["broadens access"] if stack.broadens else []
    return (", ".join(parts) or "no resource changes") + f" ({stack.running} -> {stack.version})"


def _replacement(change: ResourceChange) -> str:
    return {"True": " REPLACED", "Conditional": " may be replaced"}.get(change.replacement, "")


def _properties(change: ResourceChange) -> str:
    return f": {', '.join(change.properties)}" if change.properties else ""


def _commit_lines(found: Preview, line: Any) -> list[str]:
    if not found.commits:
        return [f"Commits: none listed ({found.commits_note or 'no commits between them'})"]
    head = f"Commits since {found.since[:12]} ({len(found.commits)}):"
    return [head, *[line(c) for c in found.commits]]


def _md(value: str) -> str:
    return value.replace("|", "\\|").replace("<", "&lt;").replace("`", "'")
