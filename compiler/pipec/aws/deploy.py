"""Deploy, roll back and bootstrap: the service stacks of an environment, region by region, from a release's
bundle; every success recorded in the ledger, every failure explained and recorded nowhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipec.aws import dashboard, ledger, needs, targets, verified
from pipec.aws.bundle import CHANGED_HINT, Bundles, place_artifact
from pipec.aws.session import Aws, utc_now
from pipec.aws.stacks import STABLE, Change, Out, apply, describe, parameter, parameter_values, service_tags
from pipec.diagnostics import PipecError, fail
from pipec.plan.model import EnvironmentPlan, Plan, ServicePlan, Stack, Target
from pipec.render.output import Output

PREVIOUS = "previous"
VERIFIED = "verified"
ROLLBACK_TARGETS = (PREVIOUS, VERIFIED)


@dataclass(frozen=True)
class Request:
    """What to change: an environment, optionally one service and one region, and the version (or, for a
    rollback, a version, "previous" or "verified")."""

    env: str
    version: str
    service: str | None = None
    region: str | None = None
    action: str = "deploy"  # deploy | rollback | bootstrap
    break_glass: str | None = None  # a deploy's reason to go ahead without the previous environment's verification
    reason: str | None = None  # a rollback's reason, kept in the ledger (an automatic rollback says so)


def _select(plan: Plan, request: Request) -> tuple[EnvironmentPlan, list[str], list[ServicePlan]]:
    """What the request acts on, checked against the plan before anything reaches AWS."""
    env = targets.environment(plan, request.env)
    if request.action == "rollback" and request.version not in ROLLBACK_TARGETS:
        targets.version(request.version, "--to")
    elif request.action == "deploy":
        targets.version(request.version)
    return env, targets.regions(env, request.region), targets.services(plan, request.service)


def deploy(aws: Aws, plan: Plan, request: Request, out: Out) -> None:
    """Deploy a version (or roll back to one) to every selected service stack, one at a time. Every stack's version
    is chosen and checked to fit the spec as it now stands before the first one changes, so a release that cannot
    go everywhere asked goes nowhere."""
    env, regions, services = _select(plan, request)
    reason = verified.reason(request.break_glass)  # checked before AWS is asked
    why = verified.reason(request.reason, "--reason")
    aws.require_account(env.account, env.name)
    bundles = Bundles(aws, plan)
    verb = "rolling back" if request.action == "rollback" else "deploying"
    out(f"pipec: {verb} {env.name} ({', '.join(regions)}) to {request.version}")
    rollback = request.action == "rollback"
    bypassed = "" if rollback else verified.require(aws, plan, env, request.version, reason, out)
    chosen: list[tuple[ServicePlan, Target, str, ledger.Entry | None]] = []
    for region in regions:
        target = Target(env.name, region, env.account)
        for service in services:
            version = _target_version(aws, plan, service, target, request)
            _fits(bundles, service, target, version)
            if rollback:
                _as_it_ran(aws, bundles, service, target, version)
            chosen.append((service, target, version, None if rollback else _forward(aws, service, target, version)))
    needs.check(aws, bundles, env, [(s, t, v) for s, t, v, _ in chosen])
    touched: dict[str, str] = {}  # region -> the last version deployed there (its dashboards are published)
    try:
        for service, target, version, checked in chosen:
            current = ledger.current(aws, service, target) if rollback else checked
            note = f"break glass: {bypassed}" if bypassed else (why or "")
            _deploy_one(aws, plan, bundles, service, target, version, current, request.action, note, out)
            touched[target.region] = version
    except PipecError:  # the stacks deployed before the failure run their new release: the dashboards say so
        _dashboards(aws, plan, bundles, env, touched, out)
        raise
    _dashboards(aws, plan, bundles, env, touched, out)


def _dashboards(aws: Aws, plan: Plan, bundles: Bundles, env: EnvironmentPlan, touched: dict[str, str],
                out: Out) -> None:
    for region, version in touched.items():
        dashboard.refresh(aws, plan, bundles, env, region, version, out)


def _target_version(aws: Aws, plan: Plan, service: ServicePlan, target: Target, request: Request) -> str:
    """The version to deploy. "previous": the newest version this service ran here that is older than the one
    running (after a rollback, "previous" goes further back, never forward to the release rolled back from).
    "verified": the newest such version that also passed this environment's checks (its verification is in the
    release bucket), what an automatic rollback after failed checks goes back to. A version that never ran here
    is never either: that needs --to."""
    if request.version not in ROLLBACK_TARGETS:
        return request.version
    entries = ledger.history(aws, service, target)
    where = f"{target.env} {target.region}"
    if not entries:
        raise fail("PC609", f"{service.name} was never deployed to {where}, so there is no {request.version} "
                   "version")
    current = entries[0].version
    older = list(dict.fromkeys(e.version for e in entries if _older(e.version, current)))
    if request.version == VERIFIED:
        env = plan.environment(target.env)
        older = [v for v in older if verified.find(aws, plan, env, v) is not None]
    if not older:
        ran = list(dict.fromkeys(e.version for e in entries))
        what = "older than" if request.version == PREVIOUS else f"verified in {target.env} and older than"
        raise fail("PC609", f"{service.name} has run no version {what} {current} in {where}, so there is no "
                   f"{request.version} version there",
                   hint=f"versions that ran there: {', '.join(ran)}; to deploy another release, name it with --to")
    return older[0]


def _fits(bundles: Bundles, service: ServicePlan, target: Target, version: str) -> None:
    """The release can be deployed to this stack as the spec now stands: it has the service's artifact and the
    stack's template and parameter file (a release made before an artifact was renamed, or before a service or
    region was added, has not)."""
    release = bundles.release(version)
    where = f"{service.name} in {target.env} {target.region}"
    if service.artifact.name not in release.digests:
        held = ", ".join(sorted(release.digests)) or "none"
        raise fail("PC617", f"release {version} cannot be deployed to {where}: it has no artifact "
                   f"{service.artifact.name}, which the service now uses (the release has: {held})",
                   hint="the release predates the artifact's name; deploy a release made since, or change the "
                        "spec back and release that")
    stack = service.stack_for(target.env, target.region)
    for path in (service.template, stack.parameter_file):
        if bundles.find(version, path) is None:
            raise fail("PC617", f"release {version} cannot be deployed to {where}: it has no {path}",
                       hint=f"the release predates {where}; deploy a release made since it was added")


def _as_it_ran(aws: Aws, bundles: Bundles, service: ServicePlan, target: Target, version: str) -> None:
    """A rollback to a release that ran here must find the very record that ran: its sha256 is in this
    environment's own ledger, which a writer of the release bucket (another account, for production) cannot
    change."""
    recorded = {e.record for e in ledger.history(aws, service, target) if e.version == version and e.record}
    found = bundles.record_sha256(version)
    if recorded and found not in recorded:
        raise fail("PC619", f"the record of release {version} is not the one {service.name} ran in {target.env} "
                   f"{target.region}: the ledger holds sha256 {min(recorded)}, the release bucket {found}",
                   hint=CHANGED_HINT)


def _forward(aws: Aws, service: ServicePlan, target: Target, version: str) -> ledger.Entry | None:
    """The deployment in effect, after checking that a deploy does not go back from it: an old release's run
    approved late, or re-run after a newer release shipped, must not undo that one (the newest approved release
    wins). Going back is a rollback, asked for by name."""
    current = ledger.current(aws, service, target)
    if current is not None and _older(version, current.version):
        raise fail("PC620", f"{service.name} in {target.env} {target.region} runs {current.version}, newer than "
                   f"{version}: a deploy never goes back, so nothing was changed",
                   hint=f"to run {version} there on purpose: pipec rollback --env {target.env} --region "
                        f"{target.region} --service {service.name} --to {version} (the rollback workflow)")
    return current


def _older(version: str, than: str) -> bool:
    import semver

    return semver.Version.is_valid(than) and semver.Version.parse(version) < semver.Version.parse(than)


def _deploy_one(aws: Aws, plan: Plan, bundles: Bundles, service: ServicePlan, target: Target, version: str,
                current: ledger.Entry | None, action: str, reason: str, out: Out) -> None:
    label = f"{target.env} {target.region} {service.name}"
    stack = service.stack_for(target.env, target.region)
    release = bundles.release(version)
    existing = describe(aws, stack.name, target.region)
    if (current is not None and current.version == version and existing is not None
            and existing["StackStatus"] in STABLE and parameter(existing, "Version") == version):
        out(f"[{label}] {version} is already deployed; nothing to do")
        return
    template = bundles.file(version, service.template)
    parameters = parameter_values(bundles.file(version, stack.parameter_file))
    parameters |= service.release_values(target, release)
    place_artifact(aws, plan, service, target, release, image_wait=float(os.environ.get("PIPEC_IMAGE_WAIT", "600")))
    tags = service_tags(plan.project, target.env, service.name, release.version, release.commit, action)
    change = Change(stack.name, target.region, template, parameters, tags, _role(plan, target), ("CAPABILITY_IAM",),
                    label)
    try:
        changed = apply(aws, change, out)
    except KeyboardInterrupt:
        raise fail("PC615", f"[{label}] interrupted: CloudFormation goes on with the change; nothing was recorded "
                   "in the ledger", hint="follow it with `pipec status` (or the CloudFormation console) and deploy "
                   "again once it settles") from None
    if not changed:
        out(f"[{label}] no changes")
        settled = describe(aws, stack.name, target.region)
        running = parameter(settled, "Version") if settled else None
        if running != version:  # the ledger records only what the stack runs
            raise fail("PC612", f"[{label}] CloudFormation found nothing to change, but the stack runs version "
                       f"{running}, not {version}; nothing was recorded", hint="the stack's template no longer "
                       "takes its Version parameter? `pipec status` shows what runs")
    entry = ledger.Entry(version=version, commit=release.commit, digest=release.digests[service.artifact.name],
                         at=utc_now(), by=aws.actor(), action=action, record=bundles.record_sha256(version),
                         reason=reason)
    ledger.record(aws, service, target, entry)
    out(f"[{label}] recorded {version} in {service.ledger_for(target.env)}")


def _role(plan: Plan, target: Target) -> str:
    env = plan.environment(target.env)
    return env.role_arn(env.cfn_role)


def bootstrap(aws: Aws, plan: Plan, outputs: list[Output], env_name: str, region: str | None, out: Out) -> None:
    """Create or update the bootstrap and network stacks of an environment from the compiled templates."""
    env, regions, _ = _select(plan, Request(env_name, "", region=region, action="bootstrap"))
    aws.require_account(env.account, env.name)
    texts = {a.path: a.text for a in outputs}
    # The home region first: it holds the roles the other regions' stacks are used with.
    ordered = sorted(regions, key=lambda r: r != env.home_region)
    for stacks in ([s for s in env.bootstrap if s.target.region in ordered],
                   [s for s in env.network if s.target.region in ordered]):
        for stack in sorted(stacks, key=lambda s: ordered.index(s.target.region)):
            _bootstrap_one(aws, plan, texts, stack, out)


def _bootstrap_one(aws: Aws, plan: Plan, texts: dict[str, str], stack: Stack, out: Out) -> None:
    label = f"{stack.target.env} {stack.target.region} {stack.name.rsplit('-', 1)[-1]}"
    tags = {"pipec:project": plan.project, "pipec:environment": stack.target.env, "pipec:action": "bootstrap"}
    change = Change(stack.name, stack.target.region, texts[stack.template], dict(stack.values), tags, None,
                    ("CAPABILITY_NAMED_IAM",), label)
    if not apply(aws, change, out):
        out(f"[{label}] up to date")
