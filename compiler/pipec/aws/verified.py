"""Promotion provenance: which environments' checks a release passed, when, and in which run.

A release's verification in an environment is an object of the release bucket beside its bundle,
releases/<version>/verified/<environment>.json. The release workflow's verify job writes it once (the bucket
requires `If-None-Match: *` of every write under releases/, and only the build role may write there) after the
environment's end-to-end checks passed in every region, or after its deploy when the spec has no end-to-end
checks. A deploy to an environment refuses a release that the environment before it did not verify; a
break-glass deploy goes ahead with a reason, which the ledger keeps.

Who can forge a verification can write the release bucket, and so can publish a release; the deploy of
another environment still needs that environment's own approval and credentials.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from pipec.aws import targets
from pipec.aws.bundle import put_once, read_object
from pipec.aws.session import Aws, errors, utc_now
from pipec.aws.stacks import Out
from pipec.diagnostics import fail, quote
from pipec.plan import names
from pipec.plan.model import EnvironmentPlan, Plan


@dataclass(frozen=True)
class Verification:
    version: str
    environment: str
    regions: tuple[str, ...]
    checks: str  # e2e | deploy (the spec has no end-to-end checks)
    run: str  # the GitHub Actions run that checked it, when known
    at: str
    by: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def record(aws: Aws, plan: Plan, env_name: str, version: str, run: str, out: Out) -> Verification:
    """Record that a published release passed an environment's checks (once; recording it again changes
    nothing)."""
    env = targets.environment(plan, env_name)
    targets.version(version)
    if run and not re.fullmatch(r"https://[^\s]+", run):
        raise fail("PC412", f"--run {quote(run)} is not the https URL of a run",
                   hint="pass the run's URL (https://github.com/OWNER/REPO/actions/runs/ID), or leave --run out "
                        "inside GitHub Actions")
    build = plan.build_env
    aws.require_account(build.account, build.name)
    key = names.verification_key(version, env.name)
    with errors(f"reading release {version}"):
        published = read_object(aws, plan, names.release_prefix(version) + "release.json") is not None
    if not published:
        raise fail("PC603", f"release {version} is not published in s3://{plan.release_bucket}",
                   hint="only a release `pipec bundle` published can be verified")
    verification = Verification(version, env.name, env.regions, "e2e" if plan.e2e else "deploy", run, utc_now(),
                                aws.actor())
    with errors(f"recording the verification of {version} in {env.name}"):
        written = put_once(aws, plan, key, verification.to_json().encode("utf-8"))
    if not written:
        existing = find(aws, plan, env, version)
        when = f" at {existing.at}" if existing else ""
        out(f"pipec: {version} was already verified in {env.name}{when}; nothing to do")
        return existing or verification
    out(f"pipec: recorded that {version} passed {env.name}'s {_what(verification)} "
        f"(s3://{plan.release_bucket}/{key})")
    return verification


def find(aws: Aws, plan: Plan, env: EnvironmentPlan, version: str) -> Verification | None:
    """The verification of a release in an environment, or None when it has none (or an unreadable one)."""
    with errors(f"reading the verification of {version} in {env.name}"):
        body = read_object(aws, plan, names.verification_key(version, env.name))
    if body is None:
        return None
    try:
        data = json.loads(body)
        found = Verification(str(data["version"]), str(data["environment"]), tuple(map(str, data["regions"])),
                             str(data["checks"]), str(data.get("run", "")), str(data["at"]), str(data["by"]))
    except (ValueError, KeyError, TypeError):
        return None
    return found if (found.version, found.environment) == (version, env.name) else None


def require(aws: Aws, plan: Plan, env: EnvironmentPlan, version: str, break_glass: str | None,
            out: Out) -> str:
    """Stop a deploy of a release the environment before this one did not verify; with a break-glass reason, go
    on and return the reason to record ("" when nothing was bypassed)."""
    if env.previous is None:
        return ""
    before = plan.environment(env.previous)
    found = find(aws, plan, before, version)
    if found is not None:
        run = f" in {found.run}" if found.run else ""
        out(f"pipec: {version} passed {before.name}'s {_what(found)} at {found.at}{run}")
        return ""
    if break_glass is not None:
        out(f"pipec: BREAK GLASS: {version} was not verified in {before.name}; deploying anyway, recorded with "
            f"the reason: {break_glass}")
        return break_glass
    raise fail("PC621", f"release {version} was not verified in {before.name}, the environment before "
               f"{env.name}: nothing was changed",
               hint=f"deploy it to {before.name} and let its checks pass (the release workflow does, then runs "
                    f"`pipec verify --env {before.name} --version {version}`); in an emergency: pipec deploy --env "
                    f"{env.name} --version {version} --break-glass \"<why>\", which the ledger keeps")


def reason(text: str | None, option: str = "--break-glass") -> str | None:
    """A reason as given (a break-glass deploy's, a rollback's), checked: one line of words, not empty."""
    if text is None:
        return None
    cleaned = text.strip()
    if not cleaned or len(cleaned) > 200 or not cleaned.isprintable():
        example = ('--break-glass "INC-142: staging is down, hotfix"' if option == "--break-glass"
                   else '--reason "INC-142: checkout errors since 1.4.2"')
        raise fail("PC411", f"{option} needs a reason: one line of at most 200 printable characters",
                   hint=f"say why, e.g. {example}")
    return cleaned


def _what(found: Verification) -> str:
    return "end-to-end checks" if found.checks == "e2e" else "deploy"
