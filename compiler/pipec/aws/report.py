"""What runs where: `pipec status` (the version in effect per environment, region and service, with the
stack's state and the identity of the artifact its resources actually run) and `pipec history` (every recorded
deployment, newest first)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass

import semver

from pipec.aws import ledger, targets
from pipec.aws.session import Aws, errors
from pipec.aws.stacks import describe, parameter
from pipec.diagnostics import PipecError, fail
from pipec.plan.model import EnvironmentPlan, Plan, ServicePlan, Target


@dataclass(frozen=True)
class Row:
    env: str
    region: str
    service: str
    version: str
    commit: str
    at: str
    by: str
    stack: str
    action: str = ""
    ledger: str = ""  # what the ledger records, when the stack runs another version (a deploy that stopped)
    reason: str = ""  # why a break-glass deploy skipped the previous environment's verification
    artifact: str = ""  # what the resources run: the image digest or the zip's sha256 ("sha256:<hex>"), read from them


def _environments(plan: Plan, env: str | None) -> list[EnvironmentPlan]:
    return list(plan.environments) if env is None else [targets.environment(plan, env)]


def status(aws: Aws, plan: Plan, env: str | None, region: str | None, notes: list[str],
           strays: bool = True, artifacts: bool = True) -> list[Row]:
    """One row per environment, region and service that the credentials' account can see; with strays, a note
    per stack pipec made there that the spec no longer names; with artifacts, what each service's task definition
    or function runs, and a note where that is not the artifact its release recorded."""
    chosen = [(e, targets.regions(e, region)) for e in _environments(plan, env)]  # checked before AWS is asked
    rows = []
    account = aws.identity()["account"]
    for environment, regions in chosen:
        if environment.account != account:
            notes.append(f"{environment.name}: skipped, it is in account {environment.account} and the "
                         f"credentials are for {account}")
            continue
        for name in regions:
            target = Target(environment.name, name, environment.account)
            for service in plan.services:
                entry = ledger.current(aws, service, target)
                row = _row(aws, service, target, entry, notes)
                rows.append(_identified(aws, service, target, row, entry, notes) if artifacts else row)
        if strays:
            _strays(aws, plan, environment.name, regions, notes)
    if env is not None and not rows:
        raise fail("PC605", notes[-1] if notes else f"nothing to show for {env}")
    return rows


def _strays(aws: Aws, plan: Plan, env: str, regions: list[str], notes: list[str]) -> None:
    from pipec.aws import prune

    try:
        found = prune.orphans(aws, plan, env, regions)
    except PipecError as exc:  # credentials that may read only pipec's own stacks by name (the sanity role)
        notes.append(f"{env}: could not look for stacks the spec no longer names ({exc.diagnostics[0].message})")
        return
    for orphan in found:
        notes.append(f"{env} {orphan.region}: stack {orphan.stack} (service {orphan.service}, runs {orphan.version}) "
                     f"is pipec's, but pipeline.yaml no longer names it: it keeps running until `pipec prune --env "
                     f"{env} --apply` deletes it")


def _row(aws: Aws, service: ServicePlan, target: Target, entry: ledger.Entry | None, notes: list[str]) -> Row:
    """What runs, read from the stack itself (its Version parameter), beside what the ledger records (its current
    entry): a deploy killed between the stack's update and the ledger's write leaves them apart, and the stack is
    the truth."""
    stack = describe(aws, service.stack_for(target.env, target.region).name, target.region)
    recorded = entry.version if entry else "-"
    running = (parameter(stack, "Version") or "-") if stack else "-"
    where = f"{target.env} {target.region} {service.name}"
    if running == recorded or stack is None:
        return Row(target.env, target.region, service.name, recorded, entry.commit[:12] if entry else "",
                   entry.at if entry else "", entry.by if entry else "", stack["StackStatus"] if stack else
                   "NOT DEPLOYED", entry.action if entry else "", reason=entry.reason if entry else "")
    notes.append(f"{where}: the stack runs {running}, but the ledger records {recorded} (a deploy or rollback "
                 "stopped before it was recorded); deploy the version you want to set both")
    tags = {t["Key"]: t["Value"] for t in stack.get("Tags") or []}
    commit = tags.get("pipec:commit", "")[:12] if tags.get("pipec:version") == running else ""
    return Row(target.env, target.region, service.name, running, commit, "", "", stack["StackStatus"], "",
               recorded)


def _identified(aws: Aws, service: ServicePlan, target: Target, row: Row, entry: ledger.Entry | None,
                notes: list[str]) -> Row:
    """The row with the artifact the service's resources run, and a note on any skew with the ledger's record of
    the release (code changed behind pipec's back, or a deploy that stopped)."""
    if row.stack == "NOT DEPLOYED":
        return row
    where = f"{target.env} {target.region} {service.name}"
    try:
        running = running_artifact(aws, service, target)
    except PipecError as exc:  # credentials that may not read the service's resources (the sanity role)
        notes.append(f"{where}: could not read what it runs ({exc.diagnostics[0].message})")
        return row
    recorded = entry.digest if entry and entry.version == row.version else ""
    if running and recorded and running != recorded:
        notes.append(f"{where}: SKEW: it runs {running}, but release {row.version} recorded {recorded} for "
                     f"{service.artifact.name}: changed outside pipec (CloudTrail says by whom); deploying a "
                     "release replaces it")
    return Row(**(asdict(row) | {"artifact": running}))


def running_artifact(aws: Aws, service: ServicePlan, target: Target) -> str:
    """The identity of what the service runs, read from its deployed resources: the image digest of its task
    definition's container (ECS) or of its live alias (a Lambda image), or the sha256 of the live alias's code (a
    Lambda zip); "" when the resource does not say."""
    name = service.resource_in(target.env)
    if service.kind == "lambda":
        with errors(f"reading function {name}"):
            found = aws.client("lambda", target.region).get_function(FunctionName=name, Qualifier="live")
        if service.artifact.is_image:
            code = found.get("Code") or {}
            return _digest(str(code.get("ResolvedImageUri") or code.get("ImageUri") or ""))
        try:
            return "sha256:" + base64.b64decode(found["Configuration"]["CodeSha256"], validate=True).hex()
        except (KeyError, binascii.Error):
            return ""
    ecs = aws.client("ecs", target.region)
    with errors(f"reading ECS service {service.name} of cluster {name}"):
        described = ecs.describe_services(cluster=name, services=[service.name])["services"]
        if not described:
            return ""
        definition = ecs.describe_task_definition(taskDefinition=described[0]["taskDefinition"])
    containers = definition["taskDefinition"].get("containerDefinitions") or []
    return next((_digest(str(c.get("image", ""))) for c in containers if c.get("name") == service.name), "")


def _digest(image: str) -> str:
    """The digest of an image reference pinned by digest (REGISTRY/REPOSITORY@sha256:<hex>), or ""."""
    _, at, digest = image.rpartition("@")
    return digest if at and digest.startswith("sha256:") else ""


def history(aws: Aws, plan: Plan, env: str, service: str | None, region: str | None) -> list[Row]:
    environment = targets.environment(plan, env)
    chosen, regions = targets.services(plan, service), targets.regions(environment, region)
    aws.require_account(environment.account, environment.name)
    rows = []
    for name in regions:
        target = Target(environment.name, name, environment.account)
        for plan_service in chosen:
            rows += [Row(e.env, e.region, e.service, e.version, e.commit[:12], e.at, e.by, "", e.action,
                         reason=e.reason)
                     for e in ledger.history(aws, plan_service, target)]
    return sorted(rows, key=lambda r: r.at, reverse=True)


def newest_version(rows: list[Row]) -> str:
    """The newest version running among the rows (what a sanity check should expect)."""
    versions = [r.version for r in rows if semver.Version.is_valid(r.version)]
    if not versions:
        raise fail("PC611", "nothing is deployed here yet")
    return str(max(semver.Version.parse(v) for v in versions))


def table(rows: list[Row], columns: list[str]) -> str:
    """Rows as an aligned text table, with a reason column when a row has a reason (a break-glass deploy)."""
    columns = columns + (["reason"] if any(r.reason for r in rows) else [])
    data = [[c.upper() for c in columns]] + [[_cell(r, c) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in data) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in data) + "\n"


def _cell(row: Row, column: str) -> str:
    value = str(getattr(row, column))
    return value[:len("sha256:") + 12] if column == "artifact" else value  # as git shortens a commit


def as_json(rows: list[Row]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2) + "\n"
