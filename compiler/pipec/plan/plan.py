"""Stage 3, plan: Spec -> Plan, what the spec means. The one place where names, stacks, parameters and their
values per environment and region, regions, roles and defaults are decided.

Templates only loop over a Plan and print it. Must not import jinja2 or boto3.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import NamedTuple

from pipec import __version__
from pipec.plan import names
from pipec.validate.facts import ELB_LOG_ACCOUNTS
from pipec.validate.schedule import eventbridge
from pipec.validate.spec import ContainerImage, EcsAlarms, EcsService, LambdaAlarms, LambdaService, LambdaZip, Spec
from pipec.validate.validate import Validated

GENERATED = "generated"  # the generated tree, relative to the spec's folder
CLOUDFORMATION = f"{GENERATED}/cloudformation"
# Every action the workflows use, pinned to a full commit SHA, with the release it is.
ACTIONS = {
    "checkout": ("actions/checkout", "08c6903cd8c0fde910a37f88322edcfb5dd907a8", "v5.0.0"),
    "setup-python": ("actions/setup-python", "e797f83bcb11b83ae66e0230d6156d7c80228e7c", "v6.0.0"),
    "aws-credentials": ("aws-actions/configure-aws-credentials", "8df5847569e6427dd6c4fb1cf565c83acfa8afa7",
                        "v6.0.0"),
}
PYTHON_VERSION = "3.12"
OIDC_HOST = "token.actions.githubusercontent.com"
# Deploy-time parameters: pipec deploy fills them from the release record, never from a parameter file.
RELEASE_PARAMETERS = ("Version", "ImageUri", "CodeBucket", "CodeKey", "CodeSha256")


class Parameter(NamedTuple):
    """One CloudFormation parameter of a template."""

    key: str
    type: str
    description: str
    pattern: str | None = None
    min_value: int | None = None
    max_value: int | None = None
    allowed: tuple[str, ...] = ()

    @property
    def per_release(self) -> bool:
        return self.key in RELEASE_PARAMETERS


class Target(NamedTuple):
    """One environment in one region: where a stack is deployed."""

    env: str
    region: str
    account: str


class Stack(NamedTuple):
    """A stack of one template in one environment and region, with its parameter file and values."""

    name: str
    template: str
    parameter_file: str
    target: Target
    values: tuple[tuple[str, str], ...]


class ArtifactPlan(NamedTuple):
    name: str
    type: str  # container-image | lambda-zip
    repository: str = ""
    context: str = "."
    dockerfile: str | None = None
    platform: str = "linux/amd64"
    build: str | None = None
    path: str = ""

    @property
    def is_image(self) -> bool:
        return self.type == "container-image"

    @property
    def job(self) -> str:
        """Id of the release workflow job that builds it."""
        return f"build-{self.name}"

    @property
    def env_suffix(self) -> str:
        return self.name.upper().replace("-", "_")


class EnvVar(NamedTuple):
    name: str
    value: str = ""
    parameter: str | None = None  # set when the value differs per environment


class SecretRef(NamedTuple):
    name: str
    store: str  # ssm | secretsmanager
    value_from: str  # CloudFormation !Sub text of the ARN or name
    resource: str  # CloudFormation !Sub text of the IAM resource
    reference: str  # !Sub text of the reference (for Lambda's <NAME>_SECRET_REF)


class Alarm(NamedTuple):
    key: str  # short name, e.g. 5xx-rate
    logical: str
    description: str
    threshold: float
    rollback: bool


class Rollout(NamedTuple):
    strategy: str
    percent: int
    minutes: int

    @property
    def config_name(self) -> str | None:
        """A predefined CodeDeploy config, or None when the template defines its own."""
        return "CodeDeployDefault.LambdaAllAtOnce" if self.strategy == "all-at-once" else None


class Release(NamedTuple):
    """A release built once: its version, commit, and each artifact's digest ("sha256:<hex>")."""

    version: str
    commit: str
    digests: dict[str, str]


class ServicePlan(NamedTuple):
    project: str
    name: str
    kind: str  # web | worker | lambda
    artifact: ArtifactPlan
    template: str
    parameters: tuple[Parameter, ...]
    stacks: tuple[Stack, ...]
    env: tuple[EnvVar, ...]
    secrets: tuple[SecretRef, ...]
    alarms: tuple[Alarm, ...]
    port: int | None = None
    health_check: str = "/"
    command: tuple[str, ...] | None = None
    https: bool = False
    handler: str | None = None
    runtime: str | None = None
    architecture: str = "x86_64"
    timeout: int = 30
    schedule: str | None = None
    public_url: bool = False
    dead_letter_queue: bool = False
    rollout: Rollout | None = None
    sub_name: str = ""  # !Sub text of the resource name, e.g. stigg-${Environment}-api

    def stack_for(self, env: str, region: str) -> Stack:
        return next(s for s in self.stacks if s.target.env == env and s.target.region == region)

    def ledger_for(self, env: str) -> str:
        return names.ledger(self.project, env, self.name)

    def release_values(self, target: Target, release: Release) -> dict[str, str]:
        """The per-release parameters of this service's stack in one environment and region."""
        digest = release.digests[self.artifact.name]
        if self.artifact.is_image:
            registry = f"{target.account}.dkr.ecr.{target.region}.amazonaws.com"
            return {"Version": release.version, "ImageUri": f"{registry}/{self.artifact.repository}@{digest}"}
        raw = bytes.fromhex(digest.removeprefix("sha256:"))
        return {"Version": release.version,
                "CodeBucket": names.bucket(self.project, target.env, target.account, target.region),
                "CodeKey": names.zip_key(release.version, self.artifact.name),
                "CodeSha256": base64.b64encode(raw).decode()}


class NetworkPlan(NamedTuple):
    managed: bool
    cidr: str = ""
    vpc: str = ""
    public_subnets: tuple[str, ...] = ()
    private_subnets: tuple[str, ...] = ()


class EnvironmentPlan(NamedTuple):
    name: str
    account: str
    regions: tuple[str, ...]
    approval: bool
    reviewers: tuple[str, ...]
    url: str | None
    urls: tuple[tuple[str, str], ...]  # (region, url)
    deploy_role: str
    sanity_role: str
    cfn_role: str
    bootstrap: tuple[Stack, ...]
    network: tuple[Stack, ...]
    previous: str | None = None

    @property
    def home_region(self) -> str:
        return self.regions[0]

    def role_arn(self, role: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{role}"

    def url_for(self, region: str) -> str:
        return dict(self.urls).get(region, "")


class Plan(NamedTuple):
    project: str
    repository: str
    branch: str
    tag_prefix: str
    initial_version: str
    runner: str
    workflows_dir: str
    pipec_requirement: str  # what the workflows install to run pipec
    environments: tuple[EnvironmentPlan, ...]
    services: tuple[ServicePlan, ...]
    artifacts: tuple[ArtifactPlan, ...]
    alert_emails: tuple[str, ...]
    e2e: dict[str, str | int] | None
    sanity: dict[str, str | int] | None
    registries: tuple[tuple[str, str], ...]  # every (account, region) that runs the services
    cross_accounts: tuple[str, ...]  # accounts other than the build account
    build_role: str
    spec_sha: str = ""

    @property
    def all_regions(self) -> tuple[str, ...]:
        return tuple(sorted({region for _, region in self.registries}))

    @property
    def replication_destinations(self) -> tuple[tuple[str, str], ...]:
        """Registries that receive the build registry's images (all but the build registry itself)."""
        source = (self.build_env.account, self.build_env.home_region)
        return tuple(r for r in self.registries if r != source)

    @property
    def elb_log_accounts(self) -> tuple[tuple[str, str], ...]:
        """(region, ELB account) for the regions in use that still need an account in the log bucket policy."""
        return tuple((r, ELB_LOG_ACCOUNTS[r]) for r in self.all_regions if r in ELB_LOG_ACCOUNTS)

    @property
    def build_env(self) -> EnvironmentPlan:
        """Releases are built once, into the first environment's account and home region."""
        return self.environments[0]

    @property
    def release_bucket(self) -> str:
        env = self.build_env
        return names.bucket(self.project, env.name, env.account, env.home_region)

    def environment(self, name: str) -> EnvironmentPlan:
        return next(e for e in self.environments if e.name == name)

    def service(self, name: str) -> ServicePlan:
        return next(s for s in self.services if s.name == name)

    @property
    def registry(self) -> str:
        """The ECR registry images are pushed to, once."""
        env = self.build_env
        return f"{env.account}.dkr.ecr.{env.home_region}.amazonaws.com"


# ---------------------------------------------------------------- building the plan


def make_plan(validated: Validated, spec_sha: str = "") -> Plan:
    """Decide everything the templates, workflows, runbooks and deploys need, from a valid spec."""
    spec = validated.spec
    artifacts = tuple(_artifact(spec, name) for name in spec.artifacts)
    environments = tuple(_environment(spec, i, name) for i, name in enumerate(spec.environments))
    by_name = {a.name: a for a in artifacts}
    services = tuple(_service(spec, name, by_name[spec.services[name].artifact], environments)
                     for name in spec.services)
    registries = tuple(dict.fromkeys((e.account, r) for e in environments for r in e.regions))
    build = environments[0]
    checks = spec.checks
    return Plan(
        project=spec.project,
        repository=spec.repository,
        branch=spec.release.branch,
        tag_prefix=spec.release.tag_prefix,
        initial_version=spec.release.initial_version,
        runner=spec.github.runner,
        workflows_dir=spec.github.workflows_dir.rstrip("/"),
        pipec_requirement=spec.github.pipec or f"pipec=={__version__}",
        environments=environments,
        services=services,
        artifacts=artifacts,
        alert_emails=tuple(spec.alerts.email),
        e2e=checks.e2e.model_dump() if checks.e2e else None,
        sanity=checks.sanity.model_dump() if checks.sanity else None,
        registries=registries,
        cross_accounts=tuple(dict.fromkeys(e.account for e in environments if e.account != build.account)),
        build_role=names.build_role(spec.project),
        spec_sha=spec_sha,
    )


def _artifact(spec: Spec, name: str) -> ArtifactPlan:
    artifact = spec.artifacts[name]
    if isinstance(artifact, ContainerImage):
        return ArtifactPlan(name, artifact.type, names.repository(spec.project, name), artifact.context,
                            artifact.dockerfile, artifact.platform)
    assert isinstance(artifact, LambdaZip)
    return ArtifactPlan(name, artifact.type, build=artifact.build, path=artifact.path)


def _environment(spec: Spec, index: int, name: str) -> EnvironmentPlan:
    env = spec.environments[name]
    project = spec.project
    names_in_order = list(spec.environments)
    target = [Target(name, region, env.account) for region in env.regions]
    return EnvironmentPlan(
        name=name,
        account=env.account,
        regions=tuple(env.regions),
        approval=env.approval == "manual",
        reviewers=tuple(env.reviewers),
        url=env.url,
        urls=tuple((r, names.fill(env.url, env=name, region=r)) for r in env.regions) if env.url else (),
        deploy_role=names.role(project, name, "deploy"),
        sanity_role=names.role(project, name, "sanity"),
        cfn_role=names.role(project, name, "cfn"),
        bootstrap=tuple(_bootstrap_stack(spec, name, t) for t in target),
        network=tuple(_network_stack(spec, name, t) for t in target),
        previous=names_in_order[index - 1] if index else None,
    )


def _network(spec: Spec, env: str, region: str) -> NetworkPlan:
    network = spec.environments[env].network
    if network.vpcs is not None:
        vpc = network.vpcs[region]
        return NetworkPlan(False, vpc=vpc.vpc, public_subnets=tuple(vpc.public_subnets),
                           private_subnets=tuple(vpc.private_subnets))
    return NetworkPlan(True, cidr=network.cidr or "10.0.0.0/16")


def _parameter_file(env: str, region: str, unit: str) -> str:
    return f"{CLOUDFORMATION}/parameters/{env}/{region}/{unit}.json"


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
        "OwnsRegistry": _flag(env == first_in_registry),
    }
    return Stack(names.stack(spec.project, env, "bootstrap"), f"{CLOUDFORMATION}/bootstrap.yaml",
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
        "KeyArn": shared_parameter(spec.project, env, "kms/key-arn"),
    }
    return Stack(names.stack(spec.project, env, "network"), f"{CLOUDFORMATION}/network.yaml",
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
        template=f"{CLOUDFORMATION}/services/{name}.yaml", parameters=parameters,
        stacks=tuple(_service_stack(spec, name, env, region, env_vars, parameters)
                     for env in environments for region in env.regions),
        env=env_vars, secrets=tuple(_secret(spec.project, name, key, ref) for key, ref in service.secrets.items()),
        alarms=(), sub_name=f"{spec.project}-${{Environment}}-{name}",
    )
    if isinstance(service, EcsService):
        return common._replace(alarms=_ecs_alarms(service.alarms, web=kind == "web"), port=service.port,
                               health_check=service.health_check, https=https,
                               command=tuple(service.command) if service.command else None)
    rollout = service.rollout
    return common._replace(alarms=_lambda_alarms(service.alarms), handler=service.handler,
                           runtime=service.runtime, architecture=service.architecture, timeout=service.timeout,
                           public_url=service.public_url,
                           schedule=eventbridge(service.schedule) if service.schedule else None,
                           dead_letter_queue=service.dead_letter_queue,
                           rollout=Rollout(rollout.strategy, rollout.percent, rollout.minutes))


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
    sub = names.fill(target, env="${Environment}", region="${AWS::Region}", account="${AWS::AccountId}",
                     project=project, service=service)
    arn = "arn:${AWS::Partition}:%s:${AWS::Region}:${AWS::AccountId}:%s"
    if store == "ssm":
        full = arn % ("ssm", "parameter" + sub)
        return SecretRef(key, store, full, full, f"ssm:{sub}")
    return SecretRef(key, store, arn % ("secretsmanager", "secret:" + sub),
                     arn % ("secretsmanager", "secret:" + sub + "-??????"), f"secretsmanager:{sub}")


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


def shared_parameter(project: str, env: str, key: str) -> str:
    """Name of an SSM parameter of an environment's shared infrastructure, e.g. /pipec/stigg/staging/kms/key-arn."""
    return f"/pipec/{project}/{env}/{key}"


SEMVER_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"


def _parameters(kind: str, artifact: ArtifactPlan, env_vars: tuple[EnvVar, ...], https: bool,
                service: EcsService | LambdaService) -> tuple[Parameter, ...]:
    """The parameters of a service template: release identity, shared infrastructure, scaling, config."""
    params = [
        Parameter("Environment", "String", "Environment name (only used in names and tags).", r"^[a-z][a-z0-9-]*$"),
        Parameter("Version", "String", "Release version (semver), set by pipec deploy.", SEMVER_PATTERN),
    ]
    wanted = {"VpcId", "PrivateSubnets", "AlertTopicArn", "KeyArn"} | (
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
        params.append(Parameter("CertificateArn", "String", "ACM certificate of the HTTPS listener.",
                                r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$"))
    if kind in ("web", "worker"):
        params += [Parameter("Cpu", "String", "Fargate CPU units.", allowed=("256", "512", "1024", "2048", "4096",
                                                                              "8192", "16384")),
                   Parameter("Memory", "String", "Fargate memory (MiB).", r"^[0-9]+$"),
                   Parameter("MinCount", "Number", "Fewest tasks.", min_value=1, max_value=1000),
                   Parameter("MaxCount", "Number", "Most tasks.", min_value=1, max_value=1000)]
    else:
        params.append(Parameter("MemorySize", "Number", "Lambda memory (MiB).", min_value=128, max_value=10240))
        if isinstance(service, LambdaService) and any(s.reserved_concurrency is not None
                                                      for s in service.scaling.values()):
            params.append(Parameter("ReservedConcurrency", "Number", "Reserved concurrent executions.",
                                    min_value=1, max_value=10000))
    params += [Parameter(v.parameter, "String", f"{v.name} (differs per environment).")
               for v in env_vars if v.parameter]
    return tuple(params)


def _service_stack(spec: Spec, name: str, env: EnvironmentPlan, region: str, env_vars: tuple[EnvVar, ...],
                   parameters: tuple[Parameter, ...]) -> Stack:
    service = spec.services[name]
    project = spec.project
    values: dict[str, str] = {"Environment": env.name}
    values |= {key: shared_parameter(project, env.name, suffix) for key, _, suffix in SHARED}
    spec_env = spec.environments[env.name]
    if spec_env.certificates:
        values["CertificateArn"] = spec_env.certificates.get(region, "")
    if isinstance(service, EcsService):
        ecs = service.scaling[env.name]
        values |= {"Cpu": str(ecs.cpu), "Memory": str(ecs.memory), "MinCount": str(ecs.min), "MaxCount": str(ecs.max)}
    else:
        size = service.scaling[env.name]
        values["MemorySize"] = str(size.memory)
        if size.reserved_concurrency is not None:
            values["ReservedConcurrency"] = str(size.reserved_concurrency)
    overrides = service.config.get(env.name, {})
    for var in env_vars:
        if var.parameter:
            values[var.parameter] = overrides.get(var.name, service.env.get(var.name, ""))
    wanted = [p.key for p in parameters if not p.per_release]
    ordered = tuple((key, values[key]) for key in wanted)
    return Stack(names.stack(project, env.name, name), f"{CLOUDFORMATION}/services/{name}.yaml",
                 _parameter_file(env.name, region, name), Target(env.name, region, env.account), ordered)


def _ecs_alarms(a: EcsAlarms, *, web: bool) -> tuple[Alarm, ...]:
    """Web services roll back on load balancer alarms; workers on CPU and memory."""
    usage = (
        Alarm("cpu", "CpuAlarm", "average CPU utilisation (%)", a.cpu_percent, not web),
        Alarm("memory", "MemoryAlarm", "average memory utilisation (%)", a.memory_percent, not web),
    )
    if not web:
        return usage
    return (
        Alarm("5xx-rate", "ErrorRateAlarm", "5xx responses as a share of requests", a.error_rate_percent, True),
        Alarm("p99-latency", "LatencyAlarm", "p99 target response time (seconds)", a.p99_latency_ms / 1000, True),
        Alarm("unhealthy-targets", "UnhealthyTargetsAlarm", "unhealthy load balancer targets",
              a.unhealthy_targets, True),
        *usage,
    )


def _lambda_alarms(a: LambdaAlarms) -> tuple[Alarm, ...]:
    return (
        Alarm("error-rate", "ErrorRateAlarm", "errors as a share of invocations of the live alias",
              a.error_rate_percent, True),
        Alarm("p99-duration", "DurationAlarm", "p99 duration of the live alias (ms)", a.p99_latency_ms, True),
        Alarm("throttles", "ThrottlesAlarm", "throttled invocations per minute", a.throttles, True),
    )
