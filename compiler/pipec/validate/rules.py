"""Validate stage, part 2: semantic rules over a well-typed Spec (references, policies, AWS facts).

Each rule is one small function with a code and a title; it speaks in spec paths and the Document turns them
into file:line:col. Rules never render or write.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import NamedTuple

from pipec import __version__
from pipec.codes import CODES
from pipec.diagnostics import Diagnostic, Severity
from pipec.load.load import Document, SpecPath
from pipec.validate import contract, install
from pipec.validate.facts import (
    FARGATE_SIZES,
    LAMBDA_MEMORY,
    LAMBDA_RESERVED_VARIABLES,
    LAMBDA_RUNTIMES,
    LAMBDA_VARIABLE_NAME,
    LAMBDA_VARIABLES_BYTES,
    REGIONS,
    fargate_memory_hint,
)
from pipec.validate.schedule import ScheduleError, check_schedule
from pipec.validate.spec import ContainerImage, EcsService, LambdaService, LambdaZip, Spec
from pipec.validate.suggest import did_you_mean

Found = Iterator[Diagnostic]
RuleFunction = Callable[[Spec, Document], Found]


class Rule(NamedTuple):
    code: str
    title: str
    check: RuleFunction
    looks_up: tuple[str, ...]  # the sections whose entries it finds by name (or counts): see `check`


def check(spec: Spec, document: Document, pruned: frozenset[SpecPath] = frozenset()) -> list[Diagnostic]:
    """Run every rule; all problems are reported together.

    `pruned` names the parts of the document the models refused, absent from `spec`: a rule that looks up
    entries in a section that lost one stays silent, since what it would say may be untrue of the document."""
    lost = {path[0] for path in pruned}
    return [d for r in RULES if not lost & set(r.looks_up) for d in r.check(spec, document)]


# ---------------------------------------------------------------- references


def artifact_references(spec: Spec, doc: Document) -> Found:
    for name, service in spec.services.items():
        path = ("services", name, "artifact")
        artifact = spec.artifacts.get(service.artifact)
        if artifact is None:
            hint = did_you_mean(service.artifact, list(spec.artifacts)) or (
                f"artifacts are: {', '.join(spec.artifacts)}")
            yield doc.diagnostic("PC201", path, f'service "{name}" uses unknown artifact "{service.artifact}"', hint)
        elif isinstance(service, EcsService) and not isinstance(artifact, ContainerImage):
            yield doc.diagnostic("PC201", path, f'service "{name}" runs on ECS, but artifact "{service.artifact}" '
                                 f"is a {artifact.type}", "ECS services need a container-image artifact")


def environment_references(spec: Spec, doc: Document) -> Found:
    envs = list(spec.environments)
    for name, service in spec.services.items():
        suggested: set[str] = set()
        for section in ("scaling", "config"):
            for env in getattr(service, section):
                if env not in spec.environments:
                    hint = did_you_mean(env, envs)
                    suggested |= {e for e in envs if hint == f'did you mean "{e}"?'}
                    yield doc.diagnostic("PC202", ("services", name, section, env),
                                         f'unknown environment "{env}" in {section} of service "{name}"',
                                         hint or f"environments are: {', '.join(envs)}", key=True)
        for env in envs:
            if env not in service.scaling and env not in suggested:
                yield doc.diagnostic("PC202", ("services", name, "scaling"),
                                     f'service "{name}" has no scaling for environment "{env}"',
                                     f"add `{env}: {{...}}` under scaling; each environment states its own size",
                                     key=True)


def regions(spec: Spec, doc: Document) -> Found:
    for env_name, env in spec.environments.items():
        base = ("environments", env_name)
        for i, region in enumerate(env.regions):
            if region not in REGIONS:
                yield doc.diagnostic("PC203", (*base, "regions", i), f'"{region}" is not an AWS region',
                                     did_you_mean(region, sorted(REGIONS)))
        for region, count in Counter(env.regions).items():
            if count > 1:
                yield doc.diagnostic("PC203", (*base, "regions"), f'region "{region}" is listed {count} times')
        per_region: dict[str, list[str]] = {"certificates": list(env.certificates),
                                            "network.vpcs": list(env.network.vpcs or {})}
        for section, listed in per_region.items():
            for region in listed:
                if region not in env.regions:
                    path = (*base, *section.split("."), region)
                    yield doc.diagnostic("PC203", path, f'{section} names region "{region}", which environment '
                                         f'"{env_name}" does not deploy to',
                                         did_you_mean(region, env.regions) or
                                         f"its regions are: {', '.join(env.regions)}", key=True)


# ---------------------------------------------------------------- policies


def production_approval(spec: Spec, doc: Document) -> Found:
    name = list(spec.environments)[-1]
    if len(spec.environments) > 1 and spec.environments[name].approval is None:
        yield doc.diagnostic("PC204", ("environments", name), f'environment "{name}" is the last one in '
                             "promotion order but does not say who approves its deploys",
                             "add `approval: manual` (a reviewer presses a button in GitHub), or "
                             "`approval: none` if every release should reach it automatically", key=True)


def shared_accounts(spec: Spec, doc: Document) -> Found:
    """What IAM keeps apart in one account is what is granted by name: load balancers, security groups, scaling
    targets and task definitions are granted by `*` (AWS names them, truncated, or gives them ids), so one
    environment's CloudFormation role can change another's."""
    seen: dict[str, str] = {}
    for name, env in spec.environments.items():
        if env.account in seen:
            first = seen[env.account]
            yield doc.diagnostic("PC205", ("environments", name, "account"),
                                 f'environments "{first}" and "{name}" share account {env.account}: what IAM '
                                 f'lets "{first}" deploy reaches the load balancers, security groups and scaling '
                                 f'targets of "{name}" (pipec grants those by `*`, not by name)',
                                 "give each environment its own account (AWS Organizations makes one in minutes); "
                                 "everything with a name stays apart either way",
                                 severity=Severity.WARNING)
        else:
            seen[env.account] = name


def overlapping_environments(spec: Spec, doc: Document) -> Found:
    """IAM grants an environment what its names match, `<project>-<env>-*`: in one account, that pattern of
    `prod` also matches everything of `prod-eu`, so staging-level access to one would reach the other."""
    for name, env in spec.environments.items():
        for other, other_env in spec.environments.items():
            if name.startswith(f"{other}-") and env.account == other_env.account:
                yield doc.diagnostic("PC221", ("environments", name), f'environment "{name}" shares account '
                                     f'{env.account} with "{other}", and every AWS name of "{name}" starts with '
                                     f'"{spec.project}-{other}-": what IAM grants "{other}" would reach "{name}"',
                                     f'rename one so that neither is the other followed by "-" (e.g. {other}-us and '
                                     f"{name}), or give it an account of its own", key=True)


def plaintext_secrets(spec: Spec, doc: Document) -> Found:
    for name, service in spec.services.items():
        for key, value in service.env.items():
            yield from _secret_value(doc, ("services", name, "env", key), key, value, spec.project)
        for env, values in service.config.items():
            for key, value in values.items():
                yield from _secret_value(doc, ("services", name, "config", env, key), key, value, spec.project)


_SECRET_PATTERNS = [
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\b(ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"), "a GitHub token"),
    (re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]{10,}"), "a Stripe key"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "a URL with a password"),
]
_SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|api_?key|private_?key|credential|access_?key)")


def _secret_value(doc: Document, path: tuple[str, ...], key: str, value: str, project: str) -> Found:
    if "{{resolve:" in value:
        yield doc.diagnostic("PC206", path, f"{key} holds a CloudFormation dynamic reference",
                             "CloudFormation would resolve it into plain text; reference secrets under `secrets:` "
                             "instead")
        return
    what = next((label for pattern, label in _SECRET_PATTERNS if pattern.search(value)), None)
    if what is None and _SECRET_KEY.search(key) and _looks_random(value):
        what = f"a secret (by its name, {key})"
    if what is not None:
        yield doc.diagnostic("PC206", path, f"{key} holds what looks like {what} in plain text",
                             f"store it in SSM or Secrets Manager and reference it under `secrets:`, e.g. "
                             f"{key}: ssm:/{project}/{{env}}/{key.lower().replace('_', '-')} (the value is "
                             "hidden here)", redact=True)


def _looks_random(value: str) -> bool:
    if len(value) < 12 or " " in value:
        return False
    counts = Counter(value)
    entropy = -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())
    return entropy >= 3.0 and any(ch.isdigit() for ch in value) and any(ch.isalpha() for ch in value)


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def placeholders(spec: Spec, doc: Document) -> Found:
    for name, service in spec.services.items():
        for key, ref in service.secrets.items():
            yield from _placeholders(doc, ("services", name, "secrets", key), ref,
                                     contract.SECRET_PLACEHOLDERS)
    for name, env in spec.environments.items():
        if env.url:
            yield from _placeholders(doc, ("environments", name, "url"), env.url, contract.URL_PLACEHOLDERS)


def _placeholders(doc: Document, path: tuple[str, ...], text: str, known: tuple[str, ...]) -> Found:
    for match in _PLACEHOLDER.finditer(text):
        if match.group(1) not in known:
            yield doc.diagnostic("PC207", path, f"unknown placeholder {{{match.group(1)}}}",
                                 did_you_mean(match.group(1), list(known)) or
                                 f"known placeholders: {', '.join('{' + k + '}' for k in known)}")
    if text.count("{") != text.count("}"):
        yield doc.diagnostic("PC207", path, "unbalanced { } in a placeholder")


# ---------------------------------------------------------------- sizes and AWS facts


def fargate_sizes(spec: Spec, doc: Document) -> Found:
    for name, service in spec.services.items():
        if not isinstance(service, EcsService):
            continue
        for env, size in service.scaling.items():
            path = ("services", name, "scaling", env)
            if size.cpu not in FARGATE_SIZES:
                yield doc.diagnostic("PC208", (*path, "cpu"), f"{size.cpu} is not a Fargate cpu size",
                                     fargate_memory_hint(0))
            elif size.memory not in FARGATE_SIZES[size.cpu]:
                yield doc.diagnostic("PC208", (*path, "memory"), f"Fargate cannot give {size.memory} MiB of "
                                     f"memory with {size.cpu} cpu units", fargate_memory_hint(size.cpu))
            if size.min > size.max:
                yield doc.diagnostic("PC208", (*path, "min"), f"min ({size.min}) is larger than max ({size.max})")


_PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}  # Lambda's architecture: the image it can run


def lambda_settings(spec: Spec, doc: Document) -> Found:
    for name, service in spec.services.items():
        if not isinstance(service, LambdaService):
            continue
        base = ("services", name)
        artifact = spec.artifacts.get(service.artifact)
        if isinstance(artifact, LambdaZip):
            for field in ("handler", "runtime"):
                if getattr(service, field) is None:
                    yield doc.diagnostic("PC209", base, f'service "{name}" needs `{field}` for its zip artifact',
                                         "e.g. runtime: python3.13 and handler: app.handler", key=True)
            if service.command is not None:
                yield doc.diagnostic("PC209", (*base, "command"), "`command` is for a container image; a zip "
                                     "runs its handler", "remove it, or set `handler`", key=True)
            if service.runtime is not None and service.runtime not in LAMBDA_RUNTIMES:
                yield doc.diagnostic("PC209", (*base, "runtime"), f'"{service.runtime}" is not a supported, '
                                     "non-deprecated Lambda runtime",
                                     did_you_mean(service.runtime, list(LAMBDA_RUNTIMES)) or
                                     f"e.g. {', '.join(LAMBDA_RUNTIMES[:3])}")
        elif isinstance(artifact, ContainerImage):
            yield from _image_function(name, service, artifact, doc)
        for env, size in service.scaling.items():
            low, high = LAMBDA_MEMORY
            if not low <= size.memory <= high:
                yield doc.diagnostic("PC209", (*base, "scaling", env, "memory"),
                                     f"Lambda memory must be {low} to {high} MiB, found {size.memory}")


def _image_function(name: str, service: LambdaService, artifact: ContainerImage, doc: Document) -> Found:
    """A container-image function: no zip settings, and an image built for the function's architecture."""
    base = ("services", name)
    for field in ("handler", "runtime"):
        if getattr(service, field) is not None:
            yield doc.diagnostic("PC209", (*base, field), f"`{field}` has no meaning for a container "
                                 "image; the image's entry point runs", "remove it", key=True)
    built_for = next(a for a, p in _PLATFORMS.items() if p == artifact.platform)
    if service.architecture != built_for:
        yield doc.diagnostic("PC209", (*base, "architecture"),
                             f'service "{name}" runs on {service.architecture}, but its image '
                             f'"{service.artifact}" is built for {artifact.platform}: Lambda cannot start it',
                             f"build the image for {_PLATFORMS[service.architecture]} (the artifact's "
                             f"platform), or set architecture: {built_for}", key=True)


def schedules(spec: Spec, doc: Document) -> Found:
    found: list[tuple[tuple[str, ...], str, bool]] = []
    for name, service in spec.services.items():
        if isinstance(service, LambdaService) and service.schedule is not None:
            found.append((("services", name, "schedule"), service.schedule, True))
    if spec.checks.sanity is not None:
        found.append((("checks", "sanity", "schedule"), spec.checks.sanity.schedule, False))
    for path, text, allow_rate in found:
        try:
            check_schedule(text, allow_rate=allow_rate)
        except ScheduleError as exc:
            yield doc.diagnostic("PC210", path, str(exc), exc.hint)


# ---------------------------------------------------------------- consistency


def networks(spec: Spec, doc: Document) -> Found:
    for name, env in spec.environments.items():
        path = ("environments", name, "network")
        if env.network.cidr is not None and env.network.vpcs is not None:
            yield doc.diagnostic("PC212", path, "give either `cidr` (pipec manages the VPC) or `vpcs` "
                                 "(existing VPCs), not both", key=True)
        elif env.network.vpcs is not None:
            for region in env.regions:
                if region not in env.network.vpcs:
                    yield doc.diagnostic("PC212", (*path, "vpcs"), f'no VPC is given for region "{region}"',
                                         "list an existing VPC for every region, or drop `vpcs` to let pipec "
                                         "manage the network", key=True)


def certificates(spec: Spec, doc: Document) -> Found:
    # A certificate for a region the environment does not deploy to is PC203's to report, not HTTPS.
    with_certs = [n for n, e in spec.environments.items() if set(e.certificates) & set(e.regions)]
    if not with_certs or not any(isinstance(s, EcsService) and s.port for s in spec.services.values()):
        return
    for name, env in spec.environments.items():
        missing = [r for r in dict.fromkeys(env.regions) if r not in env.certificates]
        if missing:
            yield doc.diagnostic("PC213", ("environments", name), f'environment "{name}" has no certificate for '
                                 f"{', '.join(missing)}, but {with_certs[0]} serves HTTPS",
                                 "environments differ only in scaling and config, so either every region "
                                 "of every environment has a certificate or none does", key=True)


def plain_http(spec: Spec, doc: Document) -> Found:
    # Certificates for some environments only are PC213's error; this is the spec that gives none at all.
    web = [n for n, s in spec.services.items() if isinstance(s, EcsService) and s.port is not None]
    if not web or any(e.certificates for e in spec.environments.values()):
        return
    last = list(spec.environments)[-1]
    yield doc.diagnostic("PC220", ("environments", last), f"{', '.join(web)} serve{'s' * (len(web) == 1)} plain "
                         f"HTTP to the internet in every environment, {last} included: no environment gives a "
                         "certificate", "add `certificates: {REGION: arn:aws:acm:...}` to every environment; "
                         "port 80 then only redirects to HTTPS", key=True, severity=Severity.WARNING)


def web_settings(spec: Spec, doc: Document) -> Found:
    web_only = {"unhealthy_targets", "error_rate_percent", "p99_latency_ms"}
    for name, service in spec.services.items():
        if not isinstance(service, EcsService) or service.port is not None:
            continue
        if "health_check" in service.model_fields_set:
            yield doc.diagnostic("PC214", ("services", name, "health_check"), f'service "{name}" has no port, so '
                                 "nothing calls its health check", "add `port:` or remove `health_check`",
                                 key=True)
        for key in sorted(web_only & service.alarms.model_fields_set):
            yield doc.diagnostic("PC214", ("services", name, "alarms", key), f'service "{name}" has no port and '
                                 f"no load balancer, so it has no {key} alarm", "remove it", key=True)


def check_urls(spec: Spec, doc: Document) -> Found:
    if spec.checks.e2e is None and spec.checks.sanity is None:
        return
    for name, env in spec.environments.items():
        if env.url is None:
            yield doc.diagnostic("PC215", ("environments", name), f'environment "{name}" has no `url`, so the '
                                 "checks cannot reach it", "add e.g. `url: https://{region}.api.example.com`",
                                 key=True)


def unused_artifacts(spec: Spec, doc: Document) -> Found:
    used = {s.artifact for s in spec.services.values()}
    if not used <= set(spec.artifacts):
        return  # a misspelt reference is already an error; do not also call the artifact unused
    for name in spec.artifacts:
        if name not in used:
            yield doc.diagnostic("PC216", ("artifacts", name), f'artifact "{name}" is not used by any service',
                                 "remove it, or it is built on every release for nothing", key=True,
                                 severity=Severity.WARNING)


# ---------------------------------------------------------------- environment variables


def variable_names(spec: Spec, doc: Document) -> Found:
    own = {contract.VERSION_VARIABLE: "the release version", contract.ENVIRONMENT_VARIABLE: "the environment's name",
           contract.TELEMETRY_VARIABLE: "the service, release and environment every OpenTelemetry span carries"}
    for name, service in spec.services.items():
        is_lambda = isinstance(service, LambdaService)
        plain: list[tuple[tuple[str, ...], str]] = [(("services", name, "env", key), key) for key in service.env]
        plain += [(("services", name, "config", env, key), key) for env, values in service.config.items()
                  for key in values]
        secret: list[tuple[tuple[str, ...], str]] = [(("services", name, "secrets", key), key)
                                                     for key in service.secrets]
        references = {contract.secret_variable(key): key for key in service.secrets} if is_lambda else {}
        for path, key in plain + secret:
            if key in own:
                yield doc.diagnostic("PC217", path, f"{key} is set by pipec itself ({own[key]})",
                                     "choose another name", key=True)
            elif is_lambda and key in LAMBDA_RESERVED_VARIABLES:
                yield doc.diagnostic("PC217", path, f"Lambda reserves {key} and refuses a function that sets it",
                                     "Lambda sets it itself; choose another name", key=True)
            elif is_lambda and not re.fullmatch(LAMBDA_VARIABLE_NAME, key):
                yield doc.diagnostic("PC217", path, f"Lambda refuses the variable name {key}",
                                     "a Lambda variable's name starts with a letter and has two characters or more",
                                     key=True)
        for path, key in plain:
            if key in service.secrets:
                yield doc.diagnostic("PC217", path, f"{key} is both a plain variable and a secret",
                                     "keep it under `secrets:` only", key=True)
            elif key in references:
                yield doc.diagnostic("PC217", path, f"{key} is the variable that carries the reference of secret "
                                     f"{references[key]}", "choose another name", key=True)


def lambda_variable_size(spec: Spec, doc: Document) -> Found:
    for name, service in spec.services.items():
        if not isinstance(service, LambdaService):
            continue
        for env_name, env in spec.environments.items():
            region = max(env.regions, key=len)
            values = {**service.env, **service.config.get(env_name, {}), contract.ENVIRONMENT_VARIABLE: env_name,
                      contract.VERSION_VARIABLE: "",  # the version's own length is not known yet
                      contract.TELEMETRY_VARIABLE: contract.telemetry(name, "", env_name)}
            values |= {contract.secret_variable(key): contract.fill(ref, env=env_name, region=region,
                                                                    account=env.account, project=spec.project,
                                                                    service=name)
                       for key, ref in service.secrets.items()}
            size = sum(len(key.encode()) + len(value.encode()) for key, value in values.items())
            if size > LAMBDA_VARIABLES_BYTES:
                where: tuple[str, ...] = ("services", name)  # at `env`, else at this environment's `config`
                if service.env:
                    where = (*where, "env")
                elif env_name in service.config:
                    where = (*where, "config", env_name)
                yield doc.diagnostic("PC218", where, f'the variables of "{name}" in {env_name} '
                                     f"take {size:,} bytes; Lambda allows {LAMBDA_VARIABLES_BYTES:,} in all",
                                     "keep large values in SSM or Secrets Manager and name them under `secrets:`",
                                     key=True)
                break


# ---------------------------------------------------------------- the workflows


def pipec_install(spec: Spec, doc: Document) -> Found:
    """The workflows install pipec before they assume AWS roles: it must install as written, pinned by content."""
    requirement = spec.github.pipec or f"pipec=={__version__}"
    found = install.problem(requirement, __version__, default=spec.github.pipec is None)
    if found is not None:
        where = ("github", "pipec") if spec.github.pipec else ("github",)  # unset: at the section, if any
        yield doc.diagnostic("PC222", where, found, install.PINNED_FORMS, key=spec.github.pipec is None,
                             severity=Severity.WARNING)


# How long one region's deploy job may take: pipec deploys the services one after another, and CloudFormation
# waits for each to settle before the next starts.
SETUP_MINUTES = 10  # check out, install pipec, assume the role, read the release
ECS_SERVICE_MINUTES = 30  # tasks replaced, healthy behind the load balancer, old ones drained (circuit breaker on)
LAMBDA_UPDATE_MINUTES = 10  # the stack update and CodeDeploy's deployment around its traffic shifting
GITHUB_HOSTED_MINUTES = 360  # GitHub stops a job on a GitHub-hosted runner after 6 hours
SESSION_MINUTES = 720  # IAM: a role session (MaxSessionDuration) lasts at most 12 hours


def shifting_minutes(service: EcsService | LambdaService) -> int:
    """How long CodeDeploy shifts a function's traffic: one wait (canary), or one per step (linear)."""
    if isinstance(service, EcsService) or service.rollout.strategy == "all-at-once":
        return 0
    rollout = service.rollout
    return rollout.minutes if rollout.strategy == "canary" else math.ceil(100 / rollout.percent) * rollout.minutes


def service_minutes(service: EcsService | LambdaService) -> int:
    if isinstance(service, EcsService):
        return ECS_SERVICE_MINUTES
    return LAMBDA_UPDATE_MINUTES + shifting_minutes(service)


def job_limit(spec: Spec) -> int:
    """The most minutes a deploy job may run: GitHub's limit on its own runners, else the longest role session."""
    return GITHUB_HOSTED_MINUTES if github_hosted(spec) else SESSION_MINUTES


def deploy_minutes(spec: Spec) -> int:
    """The timeout of a deploy (or rollback) job of one region, and what its role session must last: its services
    one after another, within the job limit (each service's own time fits: PC223)."""
    return min(job_limit(spec), SETUP_MINUTES + sum(service_minutes(s) for s in spec.services.values()))


def github_hosted(spec: Spec) -> bool:
    runner = spec.github.runner
    return isinstance(runner, str) and re.match(r"(ubuntu|windows|macos)-", runner) is not None


def deploy_time(spec: Spec, doc: Document) -> Found:
    """A service whose own deploy outlasts the job (a long rollout) would be stopped halfway every time, leaving
    its stack updating and nothing in the ledger."""
    limit = job_limit(spec)
    what = (f"a GitHub-hosted runner stops a job after {limit}" if limit == GITHUB_HOSTED_MINUTES
            else f"a role session lasts at most {limit} (IAM)")
    for name, service in spec.services.items():
        minutes = SETUP_MINUTES + service_minutes(service)
        if minutes <= limit or not isinstance(service, LambdaService):
            continue
        where = ("services", name, "rollout") if "rollout" in service.model_fields_set else ("services", name)
        yield doc.diagnostic("PC223", where, f'deploying "{name}" may take up to {minutes} minutes '
                             f"({SETUP_MINUTES} to set up, {LAMBDA_UPDATE_MINUTES} for the update, "
                             f"{shifting_minutes(service)} shifting traffic), but {what}: the job would stop "
                             "halfway, with the stack still updating",
                             "shift traffic in fewer or shorter steps (a canary, or fewer minutes per step), or run "
                             "the jobs on self-hosted runners (github.runner)", key=True)


# Every rule under its code, in the order they run; titles come from the one registry, `pipec.codes`.
# (A table, not a decorator: mutation testing skips decorated functions.)
RULES: list[Rule] = [Rule(code, CODES[code].title, function, looks_up) for code, function, looks_up in (
    ("PC201", artifact_references, ("artifacts",)),
    ("PC202", environment_references, ("environments",)),
    ("PC203", regions, ()),
    ("PC204", production_approval, ("environments",)),
    ("PC205", shared_accounts, ()),
    ("PC206", plaintext_secrets, ()),
    ("PC207", placeholders, ()),
    ("PC208", fargate_sizes, ()),
    ("PC209", lambda_settings, ()),
    ("PC210", schedules, ()),
    ("PC212", networks, ()),
    ("PC213", certificates, ()),
    ("PC214", web_settings, ()),
    ("PC215", check_urls, ()),
    ("PC216", unused_artifacts, ("services",)),
    ("PC217", variable_names, ()),
    ("PC218", lambda_variable_size, ("project",)),
    ("PC220", plain_http, ("environments",)),
    ("PC221", overlapping_environments, ()),
    ("PC222", pipec_install, ("github",)),
    ("PC223", deploy_time, ("services",)),
)]
