"""One stack change through a change set: create it, show what it changes, execute it, follow the events.

A change that CloudFormation rolls back (or cannot roll back) ends in a PipecError that names the failing
resources and reasons, with exit code 4.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipec.aws.session import Aws, code_of, errors, message_of
from pipec.diagnostics import Diagnostic, PipecError, fail
from pipec.render.parse import template_body

Out = Callable[[str], None]
STABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
          "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "IMPORT_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_FAILED"}
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


@dataclass(frozen=True)
class Change:
    """What to apply to one stack."""

    stack: str
    region: str
    template: str
    parameters: dict[str, str]
    tags: dict[str, str]
    role_arn: str | None
    capabilities: tuple[str, ...]
    label: str  # e.g. "production us-east-1 api"


def service_tags(project: str, env: str, service: str, version: str, commit: str, action: str) -> dict[str, str]:
    """The tags pipec puts on a service stack with each change set: what `pipec prune` knows its stacks by."""
    return {"pipec:project": project, "pipec:environment": env, "pipec:service": service, "pipec:version": version,
            "pipec:commit": commit, "pipec:action": action}


def poll_seconds() -> float:
    return float(os.environ.get("PIPEC_POLL_SECONDS", "5"))


def describe(aws: Aws, stack: str, region: str) -> dict[str, Any] | None:
    """The stack, or None when it does not exist."""
    from botocore.exceptions import ClientError

    with errors(f"reading stack {stack}"):
        try:
            return dict(aws.client("cloudformation", region).describe_stacks(StackName=stack)["Stacks"][0])
        except ClientError as exc:
            if code_of(exc) == "ValidationError" and "does not exist" in message_of(exc):
                return None
            raise


def running_template(aws: Aws, stack: str, region: str) -> dict[str, Any]:
    """The template a stack runs, parsed."""
    with errors(f"reading the template {stack} runs"):
        body = aws.client("cloudformation", region).get_template(StackName=stack, TemplateStage="Original")
    text = body.get("TemplateBody", {})
    if isinstance(text, str):  # boto3 hands over a JSON template parsed, a YAML one as text
        text = json.loads(template_body(text))
    return dict(text) if isinstance(text, dict) else {}


def parameter(stack: dict[str, Any], key: str) -> str | None:
    """The value a stack (as describe returns it) has for a parameter."""
    values: list[dict[str, str]] = stack.get("Parameters") or []
    return next((p["ParameterValue"] for p in values if p.get("ParameterKey") == key), None)


def apply(aws: Aws, change: Change, out: Out) -> bool:
    """Apply a change; False when there was nothing to change. Raises PipecError when it fails."""
    client = aws.client("cloudformation", change.region)
    existing = describe(aws, change.stack, change.region)
    status = existing["StackStatus"] if existing else None
    refuse_unchangeable(change, status)
    made = change_set(aws, change, status)
    if made is None:
        return False
    change_set_id, described = made
    _show_changes(change.label, described.get("Changes", []), out)
    before = _event_ids(client, change.stack)
    with errors(f"executing the change set of {change.stack}"):
        client.execute_change_set(ChangeSetName=change_set_id)
    final = _follow(client, change, set(before), out)
    if final not in STABLE:
        raise _failure(client, change, final, before)
    out(f"[{change.label}] {final}")
    return True


def change_set(aws: Aws, change: Change, status: str | None,
               purpose: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """Create a change set for a stack (in `status`, None when it does not exist) and wait until CloudFormation
    has worked it out: its id and its description with every change, or None when it changes nothing (and is
    gone). Nothing is executed."""
    client = aws.client("cloudformation", change.region)
    kind = "UPDATE" if status and status != "REVIEW_IN_PROGRESS" else "CREATE"
    version = change.tags.get("pipec:version", "")
    purpose = purpose or change.tags.get("pipec:action", "deploy")
    name = f"pipec-{purpose}-{re.sub(r'[^A-Za-z0-9]', '-', version or 'change')}-{int(time.time())}"
    arguments: dict[str, Any] = {
        "StackName": change.stack, "ChangeSetName": name, "ChangeSetType": kind,
        "TemplateBody": template_body(change.template), "Capabilities": list(change.capabilities),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in change.parameters.items()],
        "Tags": [{"Key": k, "Value": v} for k, v in change.tags.items()],
        "Description": f"pipec {purpose} of {version}",
    }
    if change.role_arn:
        arguments["RoleARN"] = change.role_arn
    from botocore.exceptions import ClientError

    with errors(f"creating a change set for {change.stack}"):
        try:
            created = client.create_change_set(**arguments)
        except ClientError as exc:
            if code_of(exc) == "ValidationError" and any(t in message_of(exc) for t in _NO_CHANGES):
                return None  # some endpoints refuse an empty change set outright
            raise
        described = _wait_for_change_set(client, created["Id"])
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        if any(text in reason for text in _NO_CHANGES):
            with errors():
                client.delete_change_set(ChangeSetName=created["Id"])
            return None
        raise fail("PC612", f"[{change.label}] CloudFormation refused the change: {reason}")
    return str(created["Id"]), described


def refuse_unchangeable(change: Change, status: str | None) -> None:
    """Stop before a change set on a stack that is busy (PC613) or whose creation failed (PC614)."""
    if status is None:
        return
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise fail("PC613", f"[{change.label}] stack {change.stack} is busy ({status})",
                   hint="wait for the running change to finish (`pipec status`), then try again")
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"):
        raise fail("PC614", f"[{change.label}] stack {change.stack} is in {status} and cannot be updated",
                   hint=f"its first creation failed; delete it (aws cloudformation delete-stack --stack-name "
                        f"{change.stack} --region {change.region}) and deploy again")


def _wait_for_change_set(client: Any, change_set: str) -> dict[str, Any]:
    while True:
        described: dict[str, Any] = client.describe_change_set(ChangeSetName=change_set)
        changes = list(described.get("Changes", []))
        token = described.get("NextToken")
        while token and described["Status"] == "CREATE_COMPLETE":
            page = client.describe_change_set(ChangeSetName=change_set, NextToken=token)
            changes += page.get("Changes", [])
            token = page.get("NextToken")
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return {**described, "Changes": changes}
        time.sleep(poll_seconds())


def _show_changes(label: str, changes: list[dict[str, Any]], out: Out) -> None:
    counts: dict[str, int] = {}
    lines = []
    for item in changes:
        change = item.get("ResourceChange", {})
        action = change.get("Action", "Modify")
        counts[action] = counts.get(action, 0) + 1
        mark = {"Add": "+", "Remove": "-", "Modify": "~"}.get(action, "?")
        replacement = " (replacement)" if change.get("Replacement") == "True" else ""
        lines.append(f"    {mark} {change.get('LogicalResourceId')} ({change.get('ResourceType')}){replacement}")
    summary = ", ".join(f"{n} to {a.lower()}" for a, n in sorted(counts.items())) or "no resource changes"
    out(f"[{label}] change set: {summary}")
    for line in lines:
        out(line)


def _event_ids(client: Any, stack: str) -> set[str]:
    from botocore.exceptions import ClientError

    with errors(f"reading the events of {stack}"):
        try:
            return {e["EventId"] for e in _events(client, stack)}
        except ClientError as exc:
            if code_of(exc) == "ValidationError":  # a stack being created has no events yet
                return set()
            raise


def _events(client: Any, stack: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in client.get_paginator("describe_stack_events").paginate(StackName=stack):
        found += page["StackEvents"]
    return found


def _follow(client: Any, change: Change, seen: set[str], out: Out) -> str:
    """Print new stack events until the stack settles; return its final status."""
    while True:
        with errors(f"following stack {change.stack}"):
            events = [e for e in _events(client, change.stack) if e["EventId"] not in seen]
            status = client.describe_stacks(StackName=change.stack)["Stacks"][0]["StackStatus"]
        for event in sorted(events, key=lambda e: e["Timestamp"]):
            seen.add(event["EventId"])
            out(f"[{change.label}] {_event_line(event)}")
        if not status.endswith("_IN_PROGRESS"):
            return str(status)
        time.sleep(poll_seconds())


def _event_line(event: dict[str, Any]) -> str:
    stamp = event["Timestamp"].strftime("%H:%M:%S") if hasattr(event["Timestamp"], "strftime") else ""
    reason = f"  {event['ResourceStatusReason']}" if event.get("ResourceStatusReason") else ""
    return f"{stamp} {event['ResourceStatus']:<28} {event.get('ResourceType', ''):<40} " \
           f"{event.get('LogicalResourceId', '')}{reason}"


def _failure(client: Any, change: Change, final: str, before: set[str]) -> PipecError:
    """The events of this change (not in `before`) that explain why it failed: resource, status, reason."""
    with errors():
        events = _events(client, change.stack)
    failed = [e for e in events if e["ResourceStatus"].endswith("_FAILED") and e["EventId"] not in before
              and e.get("LogicalResourceId") != change.stack  # the stack's own event only repeats the final state
              and "cancelled" not in str(e.get("ResourceStatusReason", "")).lower()]
    found = [Diagnostic("PC604", f"[{change.label}] the change failed and the stack is now {final}",
                        hint="nothing was recorded in the ledger; the previous version is still the one in "
                             "`pipec status`")]
    for event in sorted(failed, key=lambda e: e["Timestamp"]):
        found.append(Diagnostic("PC604", f"[{change.label}] {event.get('LogicalResourceId')} "
                                f"({event.get('ResourceType')}) {event['ResourceStatus']}: "
                                f"{event.get('ResourceStatusReason', 'no reason given')}"))
    return PipecError(found)


def parameter_values(text: str) -> dict[str, str]:
    """The values of a parameter file in the AWS CLI format."""
    return {item["ParameterKey"]: item["ParameterValue"] for item in json.loads(text)}
