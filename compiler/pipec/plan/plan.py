"""Stage 3, plan: Validated -> Plan (the types are in `plan.model`). The one place where names, stacks,
parameters and their values per environment and region, regions, roles and defaults are decided.

Templates only loop over a Plan and print it. Must not import jinja2 or boto3.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterator

from pipec import __version__
from pipec.plan import dashboard, limits, names
from pipec.plan.model import (
    BOOTSTRAP_TEMPLATE,
    CLOUDFORMATION,
    GENERATED,
    NETWORK_TEMPLATE,
    AccountNames,
    Alarm,
    ArtifactPlan,
    DashboardPlan,
    EnvironmentPlan,
    EnvVar,
    Metric,
    NetworkPlan,
    Parameter,
    Plan,
    Ratio,
    Rollout,
    SecretRef,
    ServicePlan,
    Stack,
    Target,
)
from pipec.plan.names import ACCOUNT, ANY, ENV, REGION
from pipec.validate import contract, rules
from pipec.validate.facts import FARGATE_SIZES
from pipec.validate.schedule import eventbridge
from pipec.validate.spec import (
    CERTIFICATE,
    RELEASE_VERSION,
    ContainerImage,
    EcsAlarms,
    EcsService,
    LambdaAlarms,
    LambdaService,
    LambdaZip,
    Spec,
)
from pipec.validate.validate import Validated

# ---------------------------------------------------------------- building the plan


def make_plan(validated: Validated, spec_sha: str = "") -> Plan:
    """Decide everything the templates, workflows, runbooks and deploys need, from a valid spec."""
    spec = validated.spec
    artifacts = tuple(_artifact(spec, name) for name in spec.artifacts)
    environments = tuple(_environment(spec, i, name) for i, name in enumerate(spec.environments))
    by_name = {a.name: a for a in artifacts}
    services = tuple(_service(spec, name, by_name[spec.services[name].artifact], environments)
                     for name in spec.services)
    services, dashboards = _dashboards(spec.project, services)
    environments = tuple(e._replace(dashboards=_dashboard_stacks(spec.project, e, dashboards)) for e in environments)
    registries = tuple(dict.fromkeys((e.account, r) for e in environments for r in e.regions))
    build = environments[0]
    cross_accounts = tuple(dict.fromkeys(e.account for e in environments if e.account != build.account))
    checks = spec.checks
    plan = Plan(
        project=spec.project,
        repository=spec.repository,
        branch=spec.release.branch,
        default_branch=_default_branch(spec),
        tag_prefix=spec.release.tag_prefix,
        initial_version=spec.release.initial_version,
        runner=_labels(spec.github.runner),
        workflows_dir=spec.github.workflows_dir.rstrip("/"),
        pipec_requirement=spec.github.pipec or f"pipec=={__version__}",
        environments=environments,
        services=services,
        dashboards=dashboards,
        artifacts=artifacts,
        alert_emails=tuple(spec.alerts.email),
        webhook=spec.alerts.webhook,
        slack=(spec.alerts.slack.workspace, spec.alerts.slack.channel) if spec.alerts.slack else None,
        sanity_issues=spec.alerts.sanity_issues,
        e2e=checks.e2e.model_dump() if checks.e2e else None,
        sanity=checks.sanity.model_dump() if checks.sanity else None,
        registries=registries,
        cross_accounts=cross_accounts,
        build_role=names.build_role(spec.project),
        account_names=_account_names(spec, build, cross_accounts),
        release_group=names.workflow_group(spec.project, "release"),
        deploy_minutes=rules.deploy_minutes(spec),
        sanity_group=names.workflow_group(spec.project, "sanity"),
        spec_sha=spec_sha,
    )
    named = [named for env in environments for named in _named(plan, env)]
    limits.check(named, validated.document)
    limits.unique(named, validated.document)
    return plan


def _named(plan: Plan, env: EnvironmentPlan) -> Iterator[limits.Named]:
    """Every explicit AWS name of an environment, with the spec key it comes from."""
    here = ("environments", env.name)
    for region in env.regions:
        yield env.name, "bucket", names.bucket(plan.project, env.name, env.account, region), here
    for role in (env.deploy_role, env.cfn_role, env.sanity_role):
        yield env.name, "role", role, here
    if plan.slack:
        yield env.name, "role", names.role(plan.project, env.name, "chatbot"), ("alerts", "slack")
        for region in env.regions:
            yield (env.name, "chatbot configuration", names.chatbot_configuration(plan.project, env.name, region),
                   ("alerts", "slack"))
    yield env.name, "topic", env.alert_topic, here
    for stack in (*env.bootstrap[:1], *env.network[:1], *env.dashboards[:len(plan.dashboards)]):
        yield env.name, "stack", stack.name, here
    yield from _dashboard_names(plan, env)
    yield env.name, "log group", names.instance(plan.account_names.flow_log_group, env.name), here
    for service in plan.services:
        at = ("services", service.name)
        resource = service.resource_in(env.name)
        yield env.name, "stack", service.stack_for(env.name, env.home_region).name, at
        if service.kind == "lambda":
            yield env.name, "function", resource, at
            if service.dead_letter_queue:
                yield env.name, "queue", names.instance(service.queue, env.name), at
            yield env.name, "codedeploy", resource, at
            if service.schedule:
                yield env.name, "event rule", resource, at
        else:
            yield env.name, "cluster", resource, at
            yield env.name, "scaling policy", names.instance(service.scaling_policy, env.name), at
        yield env.name, "log group", names.instance(service.log_group, env.name), at
        for alarm in service.alarms:
            yield env.name, "alarm", service.alarm_in(alarm, env.name), at


def _dashboard_names(plan: Plan, env: EnvironmentPlan) -> Iterator[limits.Named]:
    for region in env.regions:
        for board in plan.dashboards:
            name = names.in_region(board.name, env.name, region)
            yield env.name, "dashboard", name, ("environments", env.name)


def _account_names(spec: Spec, build: EnvironmentPlan, cross_accounts: tuple[str, ...]) -> AccountNames:
    p = spec.project
    release_bucket = names.bucket(p, build.name, build.account, build.home_region)
    buckets = names.arn("s3", names.bucket(p, ENV, ACCOUNT, ANY), region="", account="")
    return AccountNames(
        kms_alias=names.kms_alias(p, ENV),
        alert_topic=names.alert_topic(p, ENV),
        artifact_bucket=names.bucket(p, ENV, ACCOUNT, REGION),
        deploy_role=names.role(p, ENV, "deploy"),
        cfn_role=names.role(p, ENV, "cfn"),
        sanity_role=names.role(p, ENV, "sanity"),
        chatbot_role=names.role(p, ENV, "chatbot"),
        chatbot_role_arn=names.arn("iam", f"role/{names.role(p, ENV, 'chatbot')}", region=""),
        chatbot_configuration=names.chatbot_configuration(p, ENV, REGION),
        plan_role=names.role(p, ENV, "plan"),
        deploy_subject=names.oidc_environment_subject(spec.repository, ENV),
        rollback_subject=names.oidc_environment_subject(spec.repository, "${RollbackEnvironment}")
        if _unapproved_rollbacks(spec) else None,
        branch_subjects=tuple(names.oidc_branch_subject(spec.repository, branch) for branch in
                              dict.fromkeys([spec.release.branch, _default_branch(spec)])),
        build_subject=names.oidc_environment_subject(spec.repository, names.BUILD_ENVIRONMENT),
        build_account_root=names.account_root(build.account),
        build_role_arn=names.arn("iam", f"role/{names.build_role(p)}", region=""),
        service_role_path=names.service_role_path(p, ENV),
        service_roles=names.arn("iam", f"role{names.service_role_path(p, ENV)}*", region=""),
        service_boundary=names.service_boundary(p, ENV),
        service_boundary_arn=names.arn("iam", f"policy/{names.service_boundary(p, ENV)}", region=""),
        cross_account_roots=tuple(names.account_root(a) for a in cross_accounts),
        cross_account_roles=tuple(names.arn("iam", f"role/{names.project_role(p)}", region="", account=a)
                                  for a in cross_accounts),
        repository_filter=names.repository_prefix(p),
        repositories_here=names.arn("ecr", f"repository/{names.repository(p, ANY)}", region=REGION),
        repositories_anywhere=names.arn("ecr", f"repository/{names.repository(p, ANY)}"),
        stacks=names.arn("cloudformation", f"stack/{names.stack(p, ENV, ANY)}/*"),
        cfn_role_arn=names.arn("iam", f"role/{names.role(p, ENV, 'cfn')}", region=""),
        shared_parameters=names.arn("ssm", f"parameter{names.shared_parameter(p, ENV, ANY)}"),
        shared_infrastructure=names.arn("ssm", f"parameter{names.shared_parameter(p, ENV, f'{ANY}/{ANY}')}"),
        environment_buckets=buckets,
        environment_objects=f"{buckets}/*",
        release_bucket=names.arn("s3", release_bucket, region="", account=""),
        release_objects=names.arn("s3", f"{release_bucket}/{names.RELEASES}*", region="", account=""),
        build_key=names.arn("kms", "key/*", region=build.home_region, account=build.account),
        functions=names.arn("lambda", f"function:{names.resource(p, ENV, ANY)}"),
        # every environment's functions in this account and region: environments that share an account share
        # the repositories of its first one
        functions_here=names.arn("lambda", f"function:{names.resource(p, ANY, ANY)}", region=REGION),
        ecs=names.arn("ecs", f"*/{names.resource(p, ENV, ANY)}"),
        codedeploy=names.arn("codedeploy", f"*:{names.resource(p, ENV, ANY)}"),
        alarms=names.arn("cloudwatch", f"alarm:{names.alarm_prefix(p, ENV)}{ANY}"),
        dashboards=names.arn("cloudwatch", f"dashboard/{names.dashboard(p, ENV, ANY)}", region=""),
        queues=names.arn("sqs", names.resource(p, ENV, ANY)),
        lambda_logs=names.arn("logs", f"log-group:{names.lambda_log_group(p, ENV, ANY)}"),
        pipec_logs=names.arn("logs", f"log-group:{names.log_group(p, ENV, ANY)}"),
        event_rules=names.arn("events", f"rule/{names.resource(p, ENV, ANY)}"),
        release_artifacts=f"{buckets}/{names.RELEASES}*",
        network_name=names.network_name(p, ENV),
        flow_log_group=names.log_group(p, ENV, "vpc-flow-logs"),
        subnets=tuple((zone.upper(), names.subnet_name(p, ENV, "public", zone),
                       names.subnet_name(p, ENV, "private", zone)) for zone in names.SUBNET_ZONES),
        shared={key: names.shared_parameter(p, ENV, key) for key in _SHARED_KEYS},
    )


def _labels(runner: str | list[str]) -> str | tuple[str, ...]:
    """runs-on as the plan keeps it: one label, or the labels a runner must all have."""
    return runner if isinstance(runner, str) else tuple(runner)


def _artifact(spec: Spec, name: str) -> ArtifactPlan:
    """An artifact and where it is built: on an arm64 runner when it is for arm64 (an image for linux/arm64, a zip
    of arm64 functions only), since an x64 runner cannot run an arm64 image's RUN steps without emulation."""
    artifact = spec.artifacts[name]
    runner, arm = _labels(spec.github.runner), _labels(spec.github.arm_runner)
    if isinstance(artifact, ContainerImage):
        return ArtifactPlan(name, artifact.type, names.repository(spec.project, name), artifact.context,
                            artifact.dockerfile, artifact.platform,
                            runner=arm if artifact.platform == "linux/arm64" else runner)
    assert isinstance(artifact, LambdaZip)
    users = [s for s in spec.services.values() if s.artifact == name and isinstance(s, LambdaService)]
    for_arm = bool(users) and all(s.architecture == "arm64" for s in users)
    return ArtifactPlan(name, artifact.type, build=artifact.build, path=artifact.path,
                        runner=arm if for_arm else runner)


def _environment(spec: Spec, index: int, name: str) -> EnvironmentPlan:
    env = spec.environments[name]
    project = spec.project
    names_in_order = list(spec.environments)
    target = [Target(name, region, env.account) for region in env.regions]
    previous = names_in_order[index - 1] if index else None
    return EnvironmentPlan(
        name=name,
        account=env.account,
        regions=tuple(env.regions),
        approval=env.approval == "manual",
        reviewers=tuple(env.reviewers),
        url=env.url,
        urls=tuple((r, contract.fill(env.url, env=name, region=r)) for r in env.regions) if env.url else (),
        deploy_role=names.role(project, name, "deploy"),
        sanity_role=names.role(project, name, "sanity"),
        plan_role=names.role(project, name, "plan"),
        cfn_role=names.role(project, name, "cfn"),
        bootstrap=tuple(_bootstrap_stack(spec, name, t) for t in target),
        # a network only where a service runs in a VPC: every ECS service, and the functions that ask for one
        network=tuple(_network_stack(spec, name, t) for t in target) if needs_network(spec) else (),
        dashboards=(),  # once the services are planned
        alert_topic=names.alert_topic(project, name),
        alarm_prefix=names.alarm_prefix(project, name),
        deploy_subject=names.oidc_environment_subject(spec.repository, name),
        rollback_environment=_rollback_environment(spec, name),
        stage_job=names.job("promote", name),
        stage_workflow=names.stage_workflow(name),
        stage_group=names.stage_group(project, name),
        deploy_job=names.job("deploy", name),
        e2e_job=names.job("e2e", name),
        verify_job=names.job("verify", name),
        plan_job=names.job("plan", name),
        rollback_job=names.job("rollback", name),
        recover_job=names.job("recover", name),
        rolls_back_failures=env.on_failed_checks == "rollback",
        needs="bundle" if previous is None else names.job("promote", previous),
        previous=previous,
    )


def needs_network(spec: Spec) -> bool:
    return any(_in_vpc(s) for s in spec.services.values())


def _in_vpc(service: EcsService | LambdaService) -> bool:
    """Every ECS service runs in the environment's VPC; a function only when it asks."""
    return isinstance(service, EcsService) or service.vpc


def _default_cidr(spec: Spec, env: str, region: str) -> str:
    """A managed VPC's range when the spec gives none: 10.N.0.0/16, N counting every environment's regions in
    order, so no two managed VPCs of a project overlap (and can be peered or joined by a transit gateway)."""
    pairs = [(e, r) for e, body in spec.environments.items() for r in body.regions]
    return f"10.{pairs.index((env, region))}.0.0/16"


def _network(spec: Spec, env: str, region: str) -> NetworkPlan:
    network = spec.environments[env].network
    if network.vpcs is not None:
        vpc = network.vpcs[region]
        return NetworkPlan(False, vpc=vpc.vpc, public_subnets=tuple(vpc.public_subnets),
                           private_subnets=tuple(vpc.private_subnets))
    return NetworkPlan(True, cidr=network.cidr or _default_cidr(spec, env, region))


def _dashboards(project: str, services: tuple[ServicePlan, ...]
                ) -> tuple[tuple[ServicePlan, ...], tuple[DashboardPlan, ...]]:
    """The dashboards that show the services (as many as fit in one template each), and the services knowing
    theirs."""
    used: set[str] = set()
    keyed = tuple(s._replace(dashboard_keys=tuple(dashboard.keys(s, _unique(camel(s.name), used)).items()))
                  for s in services)
    dashboards = dashboard.plan_dashboards(project, keyed)
    placed = {name: d.name for d in dashboards for name in d.services}
    return tuple(s._replace(dashboard=placed[s.name]) for s in keyed), dashboards


def _dashboard_stacks(project: str, env: EnvironmentPlan, dashboards: tuple[DashboardPlan, ...]) -> tuple[Stack, ...]:
    return tuple(Stack(names.stack(project, env.name, d.unit), d.template, _parameter_file(env.name, region, d.unit),
                       Target(env.name, region, env.account), (("Environment", env.name),))
                 for region in env.regions for d in dashboards)


def _parameter_file(env: str, region: str, unit: str) -> str:
    return f"{CLOUDFORMATION}/parameters/{env}/{region}/{unit}.json"


def _default_branch(spec: Spec) -> str:
    """Where GitHub runs schedules: the repository's default branch, the release branch unless the spec says."""
    return spec.github.default_branch or spec.release.branch


def _rollback_environment(spec: Spec, env: str) -> str:
    """The GitHub environment an environment's rollbacks run in: its own, unless the spec lets them start
    without its reviewers."""
    settings = spec.environments[env]
    unapproved = settings.approval == "manual" and settings.rollback_approval == "none"
    return names.rollback_environment(env) if unapproved else env


def _approved(spec: Spec) -> bool:
    """Some environment waits for reviewers (and so has a plan role and a plan job)."""
    return any(e.approval == "manual" for e in spec.environments.values())


def _unapproved_rollbacks(spec: Spec) -> bool:
    return any(_rollback_environment(spec, env) != env for env in spec.environments)


def _bootstrap_stack(spec: Spec, env: str, target: Target) -> Stack:
    environments = list(spec.environments)
    first_in_account = next(e for e in environments if spec.environments[e].account == target.account)
    first_in_registry = next(e for e in environments if spec.environments[e].account == target.account
                             and target.region in spec.environments[e].regions)
    home = spec.environments[env].regions[0]
    values = {
        "Environment": env,
        "HomeRegion": home,
        "CreateOidcProvider": _flag(env == first_in_account and target.region == home),
        "BuildEnvironment": _flag(env == environments[0]),
    }
    if any(a.type == "container-image" for a in spec.artifacts.values()):  # only images need a registry
        values["OwnsRegistry"] = _flag(env == first_in_registry)
    if _approved(spec):  # a plan role where reviewers approve, to show them what they approve
        values["PlansReleases"] = _flag(spec.environments[env].approval == "manual")
    if _unapproved_rollbacks(spec):  # the deploy role then trusts the rollbacks' environment too
        values["RollbackEnvironment"] = _rollback_environment(spec, env)
    return Stack(names.stack(spec.project, env, "bootstrap"), BOOTSTRAP_TEMPLATE,
                 _parameter_file(env, target.region, "bootstrap"), target, tuple(values.items()))


def _network_stack(spec: Spec, env: str, target: Target) -> Stack:
    network = _network(spec, env, target.region)
    subnets = _subnets(network.cidr) if network.managed else ["", "", "", ""]
    values = {
        "Environment": env,
        "VpcCidr": network.cidr if network.managed else "",
        "PublicCidrA": subnets[0],
        "PublicCidrB": subnets[1],
        "PrivateCidrA": subnets[2],
        "PrivateCidrB": subnets[3],
        "ExistingVpcId": network.vpc,
        "ExistingPublicSubnets": ",".join(network.public_subnets),
        "ExistingPrivateSubnets": ",".join(network.private_subnets),
        "KeyArn": names.shared_parameter(spec.project, env, "kms/key-arn"),
    }
    return Stack(names.stack(spec.project, env, "network"), NETWORK_TEMPLATE,
                 _parameter_file(env, target.region, "network"), target, tuple(values.items()))


def _subnets(cidr: str) -> list[str]:
    """The managed VPC split in four equal subnets: two public, then two private (one per zone)."""
    network = ipaddress.ip_network(cidr, strict=False)
    return [str(subnet) for subnet in network.subnets(prefixlen_diff=2)]


def _flag(value: bool) -> str:
    return "true" if value else "false"


# ---------------------------------------------------------------- services


def _service(spec: Spec, name: str, artifact: ArtifactPlan, environments: tuple[EnvironmentPlan, ...]) -> ServicePlan:
    service = spec.services[name]
    env_vars = _env_vars(service.env, service.config)
    kind = "lambda" if isinstance(service, LambdaService) else "web" if service.port is not None else "worker"
    https = kind == "web" and any(e.certificates for e in spec.environments.values())
    parameters = _parameters(kind, artifact, env_vars, https, service)
    common = ServicePlan(
        project=spec.project, name=name, kind=kind, artifact=artifact,
        template=_service_template(name), parameters=parameters,
        stacks=tuple(_service_stack(spec, name, env, region, env_vars, parameters)
                     for env in environments for region in env.regions),
        env=env_vars, secrets=tuple(_secret(spec.project, name, key, ref) for key, ref in service.secrets.items()),
        alarms=(), sub_name=names.resource(spec.project, ENV, name),
        log_group=(names.lambda_log_group if kind == "lambda" else names.log_group)(spec.project, ENV, name),
        queue=names.queue(spec.project, ENV, name), scaling_policy=names.scaling_policy(spec.project, ENV, name),
        runbook=_runbook_url(spec.repository, spec.release.branch, ENV) + "#" + names.runbook_section(name),
        telemetry=contract.telemetry(name, "${Version}", ENV),
    )
    alarm = functools.partial(names.alarm, spec.project, ENV, name)  # an alarm's name from its key
    if isinstance(service, EcsService):
        alarms = _ecs_alarms(service.alarms, alarm, web=kind == "web")
        return common._replace(alarms=_messages(common, alarms), port=service.port,
                               health_check=service.health_check, https=https,
                               command=tuple(service.command) if service.command else None)
    rollout = service.rollout
    return common._replace(alarms=_messages(common, _lambda_alarms(service.alarms, alarm)), handler=service.handler,
                           runtime=service.runtime, architecture=service.architecture, timeout=service.timeout,
                           public_url=service.public_url, vpc=service.vpc,
                           command=tuple(service.command) if service.command else None,
                           schedule=eventbridge(service.schedule) if service.schedule else None,
                           dead_letter_queue=service.dead_letter_queue,
                           rollout=Rollout(rollout.strategy, rollout.percent, rollout.minutes))


def _runbook_url(repository: str, branch: str, env: str) -> str:
    """Where an environment's runbook is read on GitHub (env may be ${Environment})."""
    return names.github_file(repository, branch, names.runbook_path(GENERATED, env))


def _messages(service: ServicePlan, alarms: tuple[Alarm, ...]) -> tuple[Alarm, ...]:
    """What each alarm's notifications say (its description, which CloudWatch puts in every message and AWS
    Chatbot shows): the environment, region and service, the release running (the stack's Version parameter, so
    each release rewrites it), what it watches, whether it rolls a deployment back, and the runbook section."""
    where = f"{service.name} in {ENV} {names.REGION}, release ${{Version}}"
    rollback = {True: "; it rolls back a deployment in progress, so a release that sets it off while deploying is "
                      "rolled back by itself", False: ""}
    return tuple(a._replace(message=f"{where}: {a.description}{rollback[a.rollback]}. Runbook: {service.runbook}")
                 for a in alarms)


def _env_vars(base: dict[str, str], config: dict[str, dict[str, str]]) -> tuple[EnvVar, ...]:
    """Variables overridden in some environment become parameters; the rest are template constants."""
    varying = sorted({key for values in config.values() for key in values})
    keys = list(base) + [k for k in varying if k not in base]
    used: set[str] = set()
    result = []
    for key in keys:
        if key in varying:
            logical = _unique("Env" + camel(key.lower().replace("_", "-")), used)
            result.append(EnvVar(key, parameter=logical))
        else:
            result.append(EnvVar(key, value=base[key]))
    return tuple(result)


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}{n}", n + 1
    used.add(candidate)
    return candidate


def camel(name: str) -> str:
    """CamelCase of a kebab or snake name, for CloudFormation logical ids."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name) if part)


def _secret(project: str, service: str, key: str, ref: str) -> SecretRef:
    store, _, target = ref.partition(":")
    sub = contract.fill(target, env=ENV, region=REGION, account=ACCOUNT, project=project, service=service)
    if store == "ssm":
        full = names.arn("ssm", f"parameter{sub}", region=REGION)
        return SecretRef(key, store, full, full, f"ssm:{sub}")
    # Secrets Manager adds six random characters to a secret's ARN.
    return SecretRef(key, store, names.arn("secretsmanager", f"secret:{sub}", region=REGION),
                     names.arn("secretsmanager", f"secret:{sub}-??????", region=REGION), f"secretsmanager:{sub}")


# Shared infrastructure that the bootstrap and network stacks publish in SSM, and that service templates read
# through SSM-typed parameters: (parameter, type, SSM key under /pipec/<project>/<env>/).
SHARED: tuple[tuple[str, str, str], ...] = (
    ("VpcId", "AWS::SSM::Parameter::Value<AWS::EC2::VPC::Id>", "network/vpc-id"),
    ("PublicSubnets", "AWS::SSM::Parameter::Value<List<AWS::EC2::Subnet::Id>>", "network/public-subnets"),
    ("PrivateSubnets", "AWS::SSM::Parameter::Value<List<AWS::EC2::Subnet::Id>>", "network/private-subnets"),
    ("AlertTopicArn", "AWS::SSM::Parameter::Value<String>", "alerts/topic-arn"),
    ("KeyArn", "AWS::SSM::Parameter::Value<String>", "kms/key-arn"),
    ("LogBucket", "AWS::SSM::Parameter::Value<String>", "logs/bucket"),
)


_SHARED_KEYS = tuple(key for _, _, key in SHARED)


def _parameters(kind: str, artifact: ArtifactPlan, env_vars: tuple[EnvVar, ...], https: bool,
                service: EcsService | LambdaService) -> tuple[Parameter, ...]:
    """The parameters of a service template: release identity, shared infrastructure, scaling, config."""
    params = [
        Parameter("Environment", "String", "Environment name (only used in names and tags).", r"^[a-z][a-z0-9-]*$"),
        Parameter("Version", "String", "Release version (semver), set by pipec deploy.", RELEASE_VERSION),
    ]
    wanted = {"AlertTopicArn", "KeyArn"} | ({"VpcId", "PrivateSubnets"} if _in_vpc(service) else set()) | (
        {"PublicSubnets", "LogBucket"} if kind == "web" else set())
    shared = [Parameter(key, kind_, f"SSM parameter of the environment's {key}, published by pipec bootstrap.")
              for key, kind_, _ in SHARED if key in wanted]
    if artifact.is_image:
        params.append(Parameter("ImageUri", "String", "Image by digest, set by pipec deploy.",
                                r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9/_.-]+@sha256:[0-9a-f]{64}$"))
    else:
        params += [Parameter("CodeBucket", "String", "Bucket of the release's zip, set by pipec deploy."),
                   Parameter("CodeKey", "String", "Key of the release's zip, set by pipec deploy."),
                   Parameter("CodeSha256", "String", "Base64 SHA-256 of the zip, set by pipec deploy.")]
    params += shared
    if https:
        params.append(Parameter("CertificateArn", "String", "ACM certificate of the HTTPS listener.", CERTIFICATE))
    if kind in ("web", "worker"):
        params += [Parameter("Cpu", "String", "Fargate CPU units.", allowed=tuple(str(c) for c in FARGATE_SIZES)),
                   Parameter("Memory", "String", "Fargate memory (MiB).", r"^[0-9]+$"),
                   Parameter("MinCount", "Number", "Fewest tasks.", min_value=1, max_value=1000),
                   Parameter("MaxCount", "Number", "Most tasks.", min_value=1, max_value=1000)]
    else:
        params.append(Parameter("MemorySize", "Number", "Lambda memory (MiB).", min_value=128, max_value=10240))
        reserved = [s.reserved_concurrency for s in service.scaling.values()] if isinstance(
            service, LambdaService) else []
        if None not in reserved:
            params.append(Parameter("ReservedConcurrency", "Number", "Reserved concurrent executions.",
                                    min_value=1, max_value=10000))
        elif any(r is not None for r in reserved):
            # Reserved in some environments only: empty means "unset" there, through the template's condition.
            params.append(Parameter("ReservedConcurrency", "String",
                                    "Reserved concurrent executions, empty for none (the account's shared pool).",
                                    r"^([1-9][0-9]{0,3}|10000)?$"))
    params += [Parameter(v.parameter, "String", f"{v.name} (differs per environment).")
               for v in env_vars if v.parameter]
    return tuple(params)


def _service_stack(spec: Spec, name: str, env: EnvironmentPlan, region: str, env_vars: tuple[EnvVar, ...],
                   parameters: tuple[Parameter, ...]) -> Stack:
    service = spec.services[name]
    project = spec.project
    values: dict[str, str] = {"Environment": env.name}
    values |= {key: names.shared_parameter(project, env.name, suffix) for key, _, suffix in SHARED}
    spec_env = spec.environments[env.name]
    if spec_env.certificates:
        values["CertificateArn"] = spec_env.certificates.get(region, "")
    if isinstance(service, EcsService):
        ecs = service.scaling[env.name]
        values |= {"Cpu": str(ecs.cpu), "Memory": str(ecs.memory), "MinCount": str(ecs.min), "MaxCount": str(ecs.max)}
    else:
        size = service.scaling[env.name]
        values["MemorySize"] = str(size.memory)
        reserved = size.reserved_concurrency
        values["ReservedConcurrency"] = "" if reserved is None else str(reserved)
    overrides = service.config.get(env.name, {})
    for var in env_vars:
        if var.parameter:
            values[var.parameter] = overrides.get(var.name, service.env.get(var.name, ""))
    wanted = [p.key for p in parameters if not p.per_release]
    ordered = tuple((key, values[key]) for key in wanted)
    return Stack(names.stack(project, env.name, name), _service_template(name),
                 _parameter_file(env.name, region, name), Target(env.name, region, env.account), ordered)


def _service_template(name: str) -> str:
    return f"{CLOUDFORMATION}/services/{name}.yaml"


def _elb(name: str, statistic: str, id: str = "") -> Metric:
    return Metric("AWS/ApplicationELB", name, statistic, "target-group", id)


def _ecs_alarms(a: EcsAlarms, name: Callable[[str], str], *, web: bool) -> tuple[Alarm, ...]:
    """Web services roll back on load balancer alarms; workers on CPU and memory."""
    usage = (
        Alarm("cpu", "CpuAlarm", "average CPU utilisation (%)", a.cpu_percent, not web, name("cpu"),
              Metric("AWS/ECS", "CPUUtilization", "Average", "ecs-service")),
        Alarm("memory", "MemoryAlarm", "average memory utilisation (%)", a.memory_percent, not web, name("memory"),
              Metric("AWS/ECS", "MemoryUtilization", "Average", "ecs-service")),
    )
    if not web:
        return usage
    return (
        Alarm("5xx-rate", "ErrorRateAlarm", "5xx responses as a share of requests", a.error_rate_percent, True,
              name("5xx-rate"), Ratio(_elb("HTTPCode_Target_5XX_Count", "Sum", "errors"),
                                      _elb("RequestCount", "Sum", "requests"), "5xx responses (% of requests)")),
        Alarm("p99-latency", "LatencyAlarm", "p99 target response time (seconds)", a.p99_latency_ms / 1000, True,
              name("p99-latency"), _elb("TargetResponseTime", "p99")),
        Alarm("unhealthy-targets", "UnhealthyTargetsAlarm", "unhealthy load balancer targets",
              a.unhealthy_targets, True, name("unhealthy-targets"), _elb("UnHealthyHostCount", "Maximum")),
        *usage,
    )


def _lambda(name: str, statistic: str, id: str = "") -> Metric:
    return Metric("AWS/Lambda", name, statistic, "lambda-alias", id)


def _lambda_alarms(a: LambdaAlarms, name: Callable[[str], str]) -> tuple[Alarm, ...]:
    return (
        Alarm("error-rate", "ErrorRateAlarm", "errors as a share of invocations of the live alias",
              a.error_rate_percent, True, name("error-rate"),
              Ratio(_lambda("Errors", "Sum", "errors"), _lambda("Invocations", "Sum", "invocations"),
                    "errors (% of invocations)")),
        Alarm("p99-duration", "DurationAlarm", "p99 duration of the live alias (ms)", a.p99_latency_ms, True,
              name("p99-duration"), _lambda("Duration", "p99")),
        Alarm("throttles", "ThrottlesAlarm", "throttled invocations per minute", a.throttles, True,
              name("throttles"), _lambda("Throttles", "Sum")),
    )
