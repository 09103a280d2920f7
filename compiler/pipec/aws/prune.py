"""`pipec prune`: the service stacks pipec made that the spec no longer names, found by pipec's own stack tags, and
(with --apply, by an administrator) deleted.

A stack is pipec's when its tags say so (pipec:project, pipec:environment and pipec:service, as every deploy sets
them) and its name is the one pipec gives that service there; a stack without them, or with another name, is never
touched, nor are the bootstrap and network stacks. Before a deletion, the load balancers' deletion protection is
lifted (the deletion would fail on it) and the resources the template keeps (DeletionPolicy Retain: log groups) are
listed: they stay, with the service's ledger, which keeps its history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pipec.aws import targets
from pipec.aws.session import Aws, errors
from pipec.aws.stacks import Out, poll_seconds, running_template
from pipec.diagnostics import fail
from pipec.plan import names
from pipec.plan.model import Plan

_LOAD_BALANCER = "AWS::ElasticLoadBalancingV2::LoadBalancer"


@dataclass(frozen=True)
class Orphan:
    env: str
    region: str
    service: str
    stack: str
    status: str
    version: str


def orphans(aws: Aws, plan: Plan, env_name: str, regions: list[str]) -> list[Orphan]:
    """The service stacks of an environment, in the regions given, that pipec made and the spec no longer names
    (every one of them, for an environment the spec no longer has)."""
    known = {(s.name, region) for s in plan.services for e in plan.environments if e.name == env_name
             for region in e.regions}
    found = []
    for region in regions:
        for stack in _stacks(aws, env_name, region):
            tags = {t["Key"]: t["Value"] for t in stack.get("Tags") or []}
            service = tags.get("pipec:service", "")
            owned = (tags.get("pipec:project") == plan.project and tags.get("pipec:environment") == env_name
                     and service and stack["StackName"] == names.stack(plan.project, env_name, service))
            if owned and (service, region) not in known and stack["StackStatus"] != "DELETE_COMPLETE":
                found.append(Orphan(env_name, region, service, stack["StackName"], stack["StackStatus"],
                                    tags.get("pipec:version", "-")))
    return sorted(found, key=lambda o: (o.region, o.service))


def _stacks(aws: Aws, env: str, region: str) -> list[dict[str, Any]]:
    with errors(f"listing the stacks of {env} in {region}"):
        stacks: list[dict[str, Any]] = []
        for page in aws.client("cloudformation", region).get_paginator("describe_stacks").paginate():
            stacks += page["Stacks"]
    return stacks


def prune(aws: Aws, plan: Plan, env_name: str, region: str | None, apply: bool, out: Out) -> list[Orphan]:
    """List (and with apply, delete) the environment's orphaned service stacks. An environment the spec no longer
    has (removed or renamed) is looked for in the credentials' account, in the region named."""
    if region is not None:
        targets.region_name(region)
    former = env_name not in {e.name for e in plan.environments}
    if former:
        targets.former_environment(env_name, region)
        regions = [region] if region else []
    else:
        env = targets.environment(plan, env_name)
        regions = [region] if region else sorted(set(env.regions) | set(plan.all_regions))
        aws.require_account(env.account, env.name)
    found = orphans(aws, plan, env_name, regions)
    if former:
        left = [s["StackName"] for r in regions for s in _stacks(aws, env_name, r)
                if s["StackName"] in (names.stack(plan.project, env_name, "bootstrap"),
                                      names.stack(plan.project, env_name, "network"))]
        for stack in left:
            out(f"pipec: {stack} stays: a former environment's bootstrap and network are deleted by hand, once its "
                "service stacks are gone (its buckets, keys and repositories are retained)")
    if not found:
        where = f" in {', '.join(regions)}, which pipeline.yaml no longer has," if former else ""
        out(f"pipec: {env_name}{where} has no stack that pipeline.yaml no longer names; nothing to prune")
        return found
    busy = [o for o in found if o.status.endswith("_IN_PROGRESS")]
    if busy:
        raise fail("PC613", f"stack {busy[0].stack} ({busy[0].region}) is busy ({busy[0].status})",
                   hint="wait for the running change to finish, then prune again")
    for orphan in found:
        kept = _retained(aws, orphan)
        out(f"[{orphan.env} {orphan.region} {orphan.service}] {'deleting' if apply else 'would delete'} "
            f"{orphan.stack} (runs {orphan.version}); keeps {', '.join(kept) if kept else 'nothing'}, and the "
            f"ledger {names.ledger(plan.project, orphan.env, orphan.service)}")
        if apply:
            _delete(aws, orphan, out)
    if not apply:
        again = f" --region {region}" if former else ""
        out(f"pipec: nothing was deleted; `pipec prune --env {env_name}{again} --apply` deletes "
            f"{'it' if len(found) == 1 else 'them'} (administrator credentials)")
    return found


def _resources(aws: Aws, orphan: Orphan) -> list[dict[str, Any]]:
    with errors(f"reading the resources of {orphan.stack}"):
        found: list[dict[str, Any]] = aws.client("cloudformation", orphan.region).describe_stack_resources(
            StackName=orphan.stack)["StackResources"]
    return found


def _retained(aws: Aws, orphan: Orphan) -> list[str]:
    """What the stack's deletion leaves in place (its template's DeletionPolicy Retain or Snapshot)."""
    template = running_template(aws, orphan.stack, orphan.region)
    physical = {r.get("LogicalResourceId", ""): r.get("PhysicalResourceId", "") for r in _resources(aws, orphan)}
    kept = [f"{logical} ({item.get('Type')}{' ' + physical[logical] if physical.get(logical) else ''})"
            for logical, item in sorted((template.get("Resources") or {}).items())
            if item.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot")]
    return kept


def _delete(aws: Aws, orphan: Orphan, out: Out) -> None:
    label = f"{orphan.env} {orphan.region} {orphan.service}"
    balancers = [r["PhysicalResourceId"] for r in _resources(aws, orphan)
                 if r.get("ResourceType") == _LOAD_BALANCER and r.get("PhysicalResourceId")]
    with errors(f"lifting the deletion protection of {orphan.stack}'s load balancer"):
        for arn in balancers:
            aws.client("elbv2", orphan.region).modify_load_balancer_attributes(
                LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}])
            out(f"[{label}] deletion protection lifted from {arn}")
    client = aws.client("cloudformation", orphan.region)
    with errors(f"deleting {orphan.stack}"):
        stack_id = client.describe_stacks(StackName=orphan.stack)["Stacks"][0]["StackId"]
        client.delete_stack(StackName=stack_id)
        while True:
            status = client.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
            if not status.endswith("_IN_PROGRESS"):
                break
            time.sleep(poll_seconds())
    if status != "DELETE_COMPLETE":
        raise fail("PC623", f"[{label}] {orphan.stack} could not be deleted: it is {status}",
                   hint=f"its events say why: aws cloudformation describe-stack-events --region {orphan.region} "
                        f"--stack-name {orphan.stack}")
    out(f"[{label}] {orphan.stack} DELETE_COMPLETE")
