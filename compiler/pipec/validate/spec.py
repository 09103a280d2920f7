"""The spec: pydantic models of what the user wrote in pipeline.yaml (validate stage, part 1).

Models are strict, frozen and forbid unknown keys; descriptions become the JSON Schema that editors use.
Cross-references and policies live in `rules`, naming and defaults that depend on context in `plan`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipec.validate.facts import FARGATE_SIZES

NAME = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
ENV_VAR = r"^[A-Za-z_][A-Za-z0-9_]*$"
ACCOUNT = r"^[0-9]{12}$"
REPOSITORY = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$"
_SEMVER_CORE = r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
_PRERELEASE = r"(-[0-9A-Za-z.-]+)?"
SEMVER = rf"^{_SEMVER_CORE}$"  # a version a team writes (initial_version): no pre-release
ROLLBACK_VERSION = rf"{_SEMVER_CORE}{_PRERELEASE}"  # what the rollback workflow accepts (grep -Ex, unanchored)
RELEASE_VERSION = rf"^{ROLLBACK_VERSION}(\+[0-9A-Za-z.-]+)?$"  # a release as the tags and commands carry it
TAG_PREFIX = r"^(?![-./])[A-Za-z0-9._/-]{0,20}$"  # git reads a leading - as an option
BRANCH = r"^[A-Za-z0-9._/-]{1,100}$"
SECRET_REF = r"^(ssm:/[A-Za-z0-9_.{}/-]+|secretsmanager:[A-Za-z0-9/_+=.@{}-]+)$"
VPC_ID = r"^vpc-[0-9a-f]{8,17}$"
SUBNET_ID = r"^subnet-[0-9a-f]{8,17}$"
CIDR = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/(1[6-9]|2[0-4])$"
CERTIFICATE = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$"
URL = r"^https?://[A-Za-z0-9.{}:/_-]+$"
EMAIL = r"^[^@\s\"'`$]+@[^@\s\"'`$]+\.[A-Za-z]{2,}$"
HEALTH_PATH = r"^/[A-Za-z0-9._~/-]*$"
RELATIVE_PATH = r"^(?!.*(^|/)\.{1,2}(/|$))[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
CONTEXT = r"^(\.|(?!.*(^|/)\.{1,2}(/|$))[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)$"
HANDLER = r"^[A-Za-z0-9_.$/-]+$"
GITHUB_HANDLE = r"^@?[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(/[A-Za-z0-9._-]+)?$"
RUNNER = r"^[A-Za-z0-9._-]+$"
SLACK_WORKSPACE = r"^T[A-Z0-9]{2,20}$"
SLACK_CHANNEL = r"^[CG][A-Z0-9]{2,20}$"
GITHUB_SECRET = r"^(?![Gg][Ii][Tt][Hh][Uu][Bb]_)[A-Za-z_][A-Za-z0-9_]{0,99}$"  # GitHub's rules for a secret's name
# A pip requirement: a name and versions, or a URL (name @ URL, or the URL alone); PC222 judges what it installs.
REQUIREMENT = r"^(?:[A-Za-z0-9][A-Za-z0-9._-]* ?@ ?)?[A-Za-z0-9][A-Za-z0-9._+=<>!~@:/,\[\]#&%-]*$"



def whole(pattern: str) -> str:
    r"""The pattern as Python must apply it to match the whole value: Python's `$` also matches before a final
    newline, `\Z` only at the very end (what `$` means in JSON Schema, whose copy keeps the `$`: see schema)."""
    return pattern.removesuffix("$") + r"\Z"


# Human names for patterns, used in error messages.
PATTERN_NAMES = {
    NAME: "a lowercase name: letters a-z, digits and single hyphens, starting with a letter",
    ENV_VAR: "an environment variable name: letters, digits and _, not starting with a digit",
    ACCOUNT: "a 12-digit AWS account id",
    REPOSITORY: "a GitHub repository as owner/name",
    SEMVER: "a version such as 0.1.0",
    TAG_PREFIX: "a short tag prefix such as v (letters, digits, . _ / and -, not first: -, . or /)",
    BRANCH: "a git branch name",
    SECRET_REF: "a reference such as ssm:/PROJECT/{env}/db-url or secretsmanager:PROJECT/{env}/db",
    VPC_ID: "a VPC id such as vpc-0123456789abcdef0",
    SUBNET_ID: "a subnet id such as subnet-0123456789abcdef0",
    CIDR: "an IPv4 CIDR block from /16 to /24, such as 10.0.0.0/16",
    CERTIFICATE: "an ACM certificate ARN",
    URL: "an http(s) URL, optionally with {env} or {region}",
    EMAIL: "an email address",
    HEALTH_PATH: "a URL path starting with /",
    RELATIVE_PATH: "a path inside the repository, such as services/api (no leading /, no . or .. parts)",
    CONTEXT: "a folder inside the repository, such as services/api, or . for the repository itself",
    HANDLER: "a Lambda handler such as app.handler",
    GITHUB_HANDLE: "a GitHub user or team such as @alice or @OWNER/platform",
    RUNNER: "a runner label such as ubuntu-24.04 or self-hosted",
    SLACK_WORKSPACE: "a Slack workspace (team) id such as T0123ABCD, as AWS Chatbot's console shows it",
    SLACK_CHANNEL: "a Slack channel id such as C0123ABCD (the end of the channel's link)",
    GITHUB_SECRET: ("the name of a GitHub Actions secret, such as SLACK_WEBHOOK_URL (letters, digits and _, not "
                    "starting with a digit or GITHUB_)"),
    REQUIREMENT: ("a pip requirement, such as pipec @ https://HOST/pipec-0.1.0-py3-none-any.whl#sha256=HEX or "
                  "pipec @ git+https://github.com/OWNER/pipec@COMMIT"),
}

Name = Annotated[str, Field(pattern=whole(NAME), min_length=1, max_length=32)]
EnvVarName = Annotated[str, Field(pattern=whole(ENV_VAR), max_length=128)]
EnvValue = Annotated[str, Field(max_length=4096)]
Command = Annotated[str, Field(min_length=1, max_length=4000)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, regex_engine="python-re", defer_build=True)


class ReleasePolicy(Model):
    """How a release is cut: one per push to the release branch, named by a semver tag."""

    branch: Annotated[str, Field(pattern=whole(BRANCH), description="Every push to this branch is a release.")] = "main"
    tag_prefix: Annotated[str, Field(pattern=whole(TAG_PREFIX), description="Prefix of release tags, e.g. v.")] = "v"
    initial_version: Annotated[str, Field(pattern=whole(SEMVER), description="First version when no tag exists.")] = (
        "0.1.0")


class GitHub(Model):
    """Where the workflows go and what they run on."""

    default_branch: Annotated[str | None, Field(pattern=whole(BRANCH), description=(
        "The repository's default branch, when it is not the release branch: GitHub runs scheduled workflows "
        "there, so the sanity role trusts it too, and the scheduled checks check out the release branch. "
        "Default: the release branch."))] = None
    workflows_dir: Annotated[str, Field(pattern=whole(RELATIVE_PATH), description=(
        "Folder of the generated workflows, relative to pipeline.yaml. A folder inside generated/ is "
        "part of the generated tree."))] = ".github/workflows"
    runner: Annotated[Annotated[str, Field(pattern=whole(RUNNER))] | Annotated[
        list[Annotated[str, Field(pattern=whole(RUNNER))]], Field(min_length=1, max_length=10)], Field(description=(
            "runs-on of every job: a label, or the labels a runner must all have, e.g. [self-hosted, linux, "
            "x64]."))] = "ubuntu-24.04"
    arm_runner: Annotated[Annotated[str, Field(pattern=whole(RUNNER))] | Annotated[
        list[Annotated[str, Field(pattern=whole(RUNNER))]], Field(min_length=1, max_length=10)], Field(description=(
            "runs-on of the jobs that build for arm64 (images for linux/arm64, zips of arm64 functions): GitHub's "
            "arm64 runner, or labels of a self-hosted one. They build natively: an x64 runner fails on an arm64 "
            "image's first RUN step (exec format error)."))] = "ubuntu-24.04-arm"
    pipec: Annotated[str | None, Field(pattern=whole(REQUIREMENT), description=(
        "What the workflows install with pip to run pipec, pinned: its wheel by sha256 "
        "(pipec @ https://.../pipec-0.1.0-py3-none-any.whl#sha256=...) or a git commit "
        "(pipec @ git+https://github.com/OWNER/pipec@<40-hex commit>). `pipec init` writes the one this pipec "
        "was installed from. Default: pipec==<this version>, which PyPI does not have (PC222)."))] = None


class ContainerImage(Model):
    """A container image built once per release, pushed to ECR and deployed by digest."""

    type: Literal["container-image"]
    context: Annotated[str, Field(pattern=whole(CONTEXT), description="Docker build context.")] = "."
    dockerfile: Annotated[str | None, Field(pattern=whole(RELATIVE_PATH), description="Dockerfile path.")] = None
    platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"


class LambdaZip(Model):
    """A Lambda deployment package built once per release and uploaded with its sha256."""

    type: Literal["lambda-zip"]
    build: Annotated[Command | None, Field(description="Command that produces the zip.")] = None
    path: Annotated[str, Field(pattern=whole(RELATIVE_PATH), description="Path of the zip after the build.")]


Artifact = Annotated[ContainerImage | LambdaZip, Field(discriminator="type")]


class Vpc(Model):
    """An existing VPC of one region, with the subnets pipec may use."""

    vpc: Annotated[str, Field(pattern=whole(VPC_ID))]
    public_subnets: Annotated[list[Annotated[str, Field(pattern=whole(SUBNET_ID))]], Field(
        min_length=2, max_length=6, description="Subnets of the load balancers (two or more zones).")]
    private_subnets: Annotated[list[Annotated[str, Field(pattern=whole(SUBNET_ID))]], Field(
        min_length=2, max_length=6, description="Subnets of the tasks and functions.")]


class Network(Model):
    """Either a VPC that pipec manages (give `cidr`, or nothing) or existing VPCs per region (`vpcs`)."""

    cidr: Annotated[str | None, Field(pattern=whole(CIDR), description="CIDR of the managed VPC.")] = None
    vpcs: Annotated[dict[str, Vpc] | None, Field(description="Existing VPC per region.")] = None


class Environment(Model):
    """One environment, in promotion order; it differs from the others only in scaling and config."""

    account: Annotated[str, Field(pattern=whole(ACCOUNT), description="AWS account id (quote it).")]
    regions: Annotated[list[str], Field(min_length=1, max_length=8, description="AWS regions; first is home.")]
    approval: Annotated[Literal["manual", "none"] | None, Field(description=(
        "manual: deploys wait for a reviewer in the GitHub environment. The last environment must say "
        "it explicitly."))] = None
    reviewers: Annotated[list[Annotated[str, Field(pattern=whole(GITHUB_HANDLE))]], Field(
        description="Who approves deploys (documented in generated/README.md).")] = []
    rollback_approval: Annotated[Literal["reviewers", "none"], Field(description=(
        "With approval: manual, who lets a rollback start. reviewers (the default, four eyes): the same reviewers "
        "as a deploy; with GitHub's prevent self-review, not the person who started it. none: at once, in the "
        "GitHub environment <env>_rollback (release branch only, no reviewers), which the deploy role then trusts "
        "too."))] = "reviewers"
    url: Annotated[str | None, Field(pattern=whole(URL), description=(
        "Base URL of the environment for e2e and sanity checks; {region} and {env} are replaced."))] = None
    network: Network = Network()
    certificates: Annotated[dict[str, Annotated[str, Field(pattern=whole(CERTIFICATE))]], Field(
        description="ACM certificate per region; web services serve HTTPS when given.")] = {}
    on_failed_checks: Annotated[Literal["rollback", "keep"], Field(description=(
        "When the end-to-end checks fail after a deploy here. rollback (the default): the release workflow rolls "
        "this environment back at once to the newest older release that passed its checks, recorded in the ledger "
        "as automatic, and says so in the alerts. keep: the release stays for a person to look at."))] = "rollback"


class EcsScaling(Model):
    cpu: Annotated[int, Field(description=f"Fargate CPU units: {', '.join(str(c) for c in FARGATE_SIZES)}.")]
    memory: Annotated[int, Field(description="Fargate memory in MiB, valid for the CPU.")]
    min: Annotated[int, Field(ge=1, le=1000, description="Fewest running tasks.")]
    max: Annotated[int, Field(ge=1, le=1000, description="Most running tasks.")]


class LambdaScaling(Model):
    memory: Annotated[int, Field(description="MiB, 128 to 10240.")]
    reserved_concurrency: Annotated[int | None, Field(ge=1, le=10000)] = None


class EcsAlarms(Model):
    """Thresholds of the alarms that page the team and roll back an ECS deployment."""

    error_rate_percent: Annotated[float, Field(gt=0, le=100, description="5xx responses, % of requests.")] = 5
    p99_latency_ms: Annotated[int, Field(ge=1, le=600000, description="p99 target response time.")] = 2000
    unhealthy_targets: Annotated[int, Field(ge=1, le=1000, description="Unhealthy load balancer targets.")] = 1
    cpu_percent: Annotated[float, Field(gt=0, le=100, description="Average CPU utilisation.")] = 90
    memory_percent: Annotated[float, Field(gt=0, le=100, description="Average memory utilisation.")] = 90


class LambdaAlarms(Model):
    error_rate_percent: Annotated[float, Field(gt=0, le=100, description="Errors, % of invocations.")] = 5
    p99_latency_ms: Annotated[int, Field(ge=1, le=900000)] = 10000
    throttles: Annotated[int, Field(ge=1, le=100000, description="Throttled invocations per minute.")] = 1


class Rollout(Model):
    """How CodeDeploy shifts traffic to a new Lambda version; it rolls back on any alarm."""

    strategy: Literal["canary", "linear", "all-at-once"] = "canary"
    percent: Annotated[int, Field(ge=1, le=99, description="Traffic shifted per step.")] = 10
    minutes: Annotated[int, Field(ge=1, le=2880, description="Minutes between steps.")] = 5


Secrets = Annotated[dict[EnvVarName, Annotated[str, Field(pattern=whole(SECRET_REF))]], Field(
    description=("Secret references (ssm:/... or secretsmanager:...), never values. ECS injects each value as the "
                 "variable; a Lambda function gets NAME_SECRET_REF holding the reference and reads the value itself "
                 "(its role may GetParameter or GetSecretValue on it): see generated/README.md."))]
Config = Annotated[dict[str, dict[EnvVarName, EnvValue]], Field(
    description="Per-environment overrides of `env`; the only configuration that differs.")]


class EcsService(Model):
    """A container on ECS Fargate: a web service behind a load balancer when it has a port, else a worker."""

    kind: Literal["ecs-fargate"]
    artifact: Name
    port: Annotated[int | None, Field(ge=1, le=65535, description="Container port; makes it a web service.")] = None
    health_check: Annotated[str, Field(pattern=whole(HEALTH_PATH), description="Health check path.")] = "/health"
    command: Annotated[list[Annotated[str, Field(max_length=1000)]] | None, Field(max_length=50)] = None
    env: dict[EnvVarName, EnvValue] = {}
    secrets: Secrets = {}
    scaling: Annotated[dict[str, EcsScaling], Field(description="Per environment.")]
    config: Config = {}
    alarms: EcsAlarms = EcsAlarms()


class LambdaService(Model):
    """A Lambda function behind a `live` alias, shifted by CodeDeploy on every release."""

    kind: Literal["lambda"]
    artifact: Name
    handler: Annotated[str | None, Field(pattern=whole(HANDLER), description="Handler, for zip artifacts.")] = None
    runtime: Annotated[str | None, Field(description="Runtime, for zip artifacts, e.g. python3.13.")] = None
    architecture: Annotated[Literal["x86_64", "arm64"], Field(description=(
        "Instruction set; a container image must be built for it (platform linux/amd64 or linux/arm64)."))] = (
        "x86_64")
    command: Annotated[list[Annotated[str, Field(max_length=1000)]] | None, Field(max_length=50, description=(
        "For a container image: what Lambda runs instead of the image's CMD (ImageConfig.Command), e.g. "
        "[app.handler]."))] = None
    timeout: Annotated[int, Field(ge=1, le=900, description="Seconds.")] = 30
    schedule: Annotated[str | None, Field(description="Cron (5 fields, UTC) or rate(5 minutes).")] = None
    public_url: Annotated[bool, Field(description="A public function URL, e.g. for webhooks.")] = False
    vpc: Annotated[bool, Field(description=(
        "Run in the environment's VPC (its private subnets), e.g. to reach a database there. By default a "
        "function runs outside any VPC, as in SAM and Copilot, and needs no NAT gateway."))] = False
    dead_letter_queue: bool = True
    env: dict[EnvVarName, EnvValue] = {}
    secrets: Secrets = {}
    scaling: Annotated[dict[str, LambdaScaling], Field(description="Per environment.")]
    config: Config = {}
    alarms: LambdaAlarms = LambdaAlarms()
    rollout: Rollout = Rollout()


Service = Annotated[EcsService | LambdaService, Field(discriminator="kind")]


class Check(Model):
    run: Annotated[Command, Field(description="Shell command; BASE_URL, EXPECTED_VERSION, PIPEC_ENV set.")]
    setup: Annotated[Command | None, Field(description="Command run first, e.g. npm ci.")] = None
    timeout_minutes: Annotated[int, Field(ge=1, le=360)] = 15


class SanityCheck(Check):
    schedule: Annotated[str, Field(description="Cron, 5 fields, UTC.")] = "*/30 * * * *"


class Checks(Model):
    e2e: Annotated[Check | None, Field(description="Runs against each environment after each deploy.")] = None
    sanity: Annotated[SanityCheck | None, Field(description="Runs on a schedule against every environment.")] = (
        None)


class Slack(Model):
    """Where AWS Chatbot posts the CloudWatch alarms (the workspace authorized once in its console)."""

    workspace: Annotated[str, Field(pattern=whole(SLACK_WORKSPACE), description=(
        "The Slack workspace id AWS Chatbot was authorized for (once, in its console, by an administrator)."))]
    channel: Annotated[str, Field(pattern=whole(SLACK_CHANNEL), description=(
        "The channel id; invite @aws (Amazon Q) into it. Best the same channel as the webhook's."))]


class Alerts(Model):
    """Who hears what goes wrong: CloudWatch alarms by e-mail; releases and sanity checks in a chat channel."""

    email: Annotated[list[Annotated[str, Field(pattern=whole(EMAIL))]], Field(
        min_length=1, max_length=10, description="Subscribed to each environment's alert topic (the alarms).")]
    webhook: Annotated[str | None, Field(pattern=whole(GITHUB_SECRET), description=(
        "Name of the GitHub Actions secret that holds a Slack-compatible incoming webhook URL (never the URL): told "
        "when a release waits for approval, is deployed, fails, is rolled back, and when a sanity check fails or "
        "recovers."))] = None
    slack: Annotated[Slack | None, Field(description=(
        "The CloudWatch alarms in a Slack channel too, through AWS Chatbot: each environment's bootstrap subscribes "
        "a channel configuration (notifications only, read-only CloudWatch) to its alert topic in every region."))] = (
        None)
    sanity_issues: Annotated[bool, Field(description=(
        "A failing sanity check opens one GitHub issue per environment and region (comments on it while it keeps "
        "failing) and closes it when the check passes again."))] = False


class Spec(Model):
    """pipeline.yaml: how this repository ships."""

    pipec: Annotated[Literal[1], Field(description="Spec format version.")]
    project: Annotated[str, Field(pattern=whole(NAME), max_length=20, description="Prefixes every stack and name.")]
    repository: Annotated[str, Field(pattern=whole(REPOSITORY), description="GitHub owner/name; scopes OIDC trust.")]
    release: ReleasePolicy = ReleasePolicy()
    github: GitHub = GitHub()
    artifacts: Annotated[dict[Name, Artifact], Field(min_length=1, description="Built once per release.")]
    environments: Annotated[dict[Name, Environment], Field(min_length=1, description="In promotion order.")]
    services: Annotated[dict[Name, Service], Field(min_length=1)]
    checks: Checks = Checks()
    alerts: Alerts
