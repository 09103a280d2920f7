"""Plan stage: the Plan's types, what the spec means once every name, stack, parameter and default is decided.

Plain, immutable records; `plan.plan` builds them from a valid spec. Must not import jinja2 or boto3.
"""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

from pipec.plan import names
from pipec.validate.facts import ELB_LOG_ACCOUNTS, PARTITION

GENERATED = "generated"  # the generated tree, relative to the spec's folder
CLOUDFORMATION = f"{GENERATED}/cloudformation"
BOOTSTRAP_TEMPLATE = f"{CLOUDFORMATION}/bootstrap.yaml"
NETWORK_TEMPLATE = f"{CLOUDFORMATION}/network.yaml"
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
    default: str | None = None

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
    runner: str | tuple[str, ...] = "ubuntu-24.04"  # runs-on of its build job: an arm64 runner for arm64 builds

    @property
    def is_image(self) -> bool:
        return self.type == "container-image"

    @property
    def job(self) -> str:
        """Id of the release workflow job that builds it."""
        return names.job("build", self.name)

    @property
    def dockerfile_path(self) -> str:
        return self.dockerfile or f"{self.context}/Dockerfile"

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


class Metric(NamedTuple):
    """A CloudWatch metric an alarm watches, and whose dimensions name the resource (a plan value the templates
    branch on: target-group, ecs-service or lambda-alias)."""

    namespace: str
    name: str
    statistic: str  # Sum, Average, Maximum, or p99 (an extended statistic)
    dimensions: str
    id: str = ""  # its id inside a metric-math expression

    @property
    def extended(self) -> bool:
        return self.statistic.startswith("p")


class Ratio(NamedTuple):
    """A percentage of two metrics: 100 * part / whole."""

    part: Metric
    whole: Metric
    label: str


class Alarm(NamedTuple):
    key: str  # short name, e.g. 5xx-rate
    logical: str
    description: str
    threshold: float
    rollback: bool
    name: str  # !Sub text, e.g. stigg-${Environment}-api-5xx-rate
    watches: Metric | Ratio
    message: str = ""  # !Sub text of its description: what every notification of it says


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
    vpc: bool = True  # runs in the environment's VPC (every ECS service; a function only when it asks)
    dead_letter_queue: bool = False
    rollout: Rollout | None = None
    sub_name: str = ""  # !Sub text of the resource name, e.g. stigg-${Environment}-api
    log_group: str = ""  # !Sub text
    queue: str = ""  # !Sub text of the dead-letter queue's name
    scaling_policy: str = ""  # !Sub text
    runbook: str = ""  # !Sub text of the URL of its section in the environment's runbook
    telemetry: str = ""  # !Sub text of its OpenTelemetry resource attributes (the release among them)
    dashboard: str = ""  # !Sub text of the name of the dashboard that shows it (in each environment and region)
    dashboard_keys: tuple[tuple[str, str], ...] = ()  # (what, parameter of that dashboard): version, commit, ...

    def stack_for(self, env: str, region: str) -> Stack:
        return next(s for s in self.stacks if s.target.env == env and s.target.region == region)

    def ledger_for(self, env: str) -> str:
        return names.ledger(self.project, env, self.name)

    def resource_in(self, env: str) -> str:
        """The name of the service's function, cluster and CodeDeploy application in one environment."""
        return names.resource(self.project, env, self.name)

    def alarm_in(self, alarm: Alarm, env: str) -> str:
        return names.alarm(self.project, env, self.name, alarm.key)

    def log_group_in(self, env: str) -> str:
        return names.instance(self.log_group, env)

    def dashboard_in(self, env: str, region: str) -> str:
        return names.in_region(self.dashboard, env, region)

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


class DashboardPlan(NamedTuple):
    """One CloudWatch dashboard template, deployed as a stack in every environment and region: a row per service
    (as many as fit in one template; more services, more dashboards) with its release and commit, its golden
    signals and its alarms. pipec deploy and rollback fill the parameters from the service stacks they read."""

    unit: str  # dashboard, dashboard-2, ...: its stacks' last name part and its template's name
    template: str
    services: tuple[str, ...]
    name: str  # !Sub text of the dashboard's name
    parameters: tuple[Parameter, ...]
    body: str  # !Sub text of the dashboard body (JSON, one widget per line)


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
    plan_role: str  # assumed before an approval, to show reviewers what the release will change (never to execute)
    cfn_role: str
    bootstrap: tuple[Stack, ...]
    network: tuple[Stack, ...]
    dashboards: tuple[Stack, ...]  # every dashboard template's stack in each region
    alert_topic: str
    alarm_prefix: str
    deploy_subject: str  # the OIDC subject of this environment's deploy jobs
    rollback_environment: str  # the GitHub environment its rollbacks run in: its own, or <env>_rollback (unapproved)
    stage_job: str  # the release workflow's job that calls the stage workflow
    stage_workflow: str  # the file of the reusable workflow: deploy, then the end-to-end checks
    stage_group: str  # concurrency group held by the stage, from approval to the last check
    deploy_job: str
    e2e_job: str
    verify_job: str  # records in the release bucket that the release passed this environment's checks
    plan_job: str  # shows reviewers, before the approval, what the release will change and which commits it brings
    rollback_job: str
    recover_job: str  # rolls the environment back when its end-to-end checks fail (on_failed_checks: rollback)
    rolls_back_failures: bool
    needs: str  # the release workflow job its stage waits for
    previous: str | None = None

    @property
    def home_region(self) -> str:
        return self.regions[0]

    def role_arn(self, role: str) -> str:
        return names.arn("iam", f"role/{role}", region="", account=self.account, partition=PARTITION)

    def url_for(self, region: str) -> str:
        return dict(self.urls).get(region, "")

    @property
    def deployments(self) -> tuple[tuple[str, str], ...]:
        """(region, URL) of every deploy job: what GitHub's Deployments view shows ("" where the spec gives none)."""
        return self.urls or tuple((region, "") for region in self.regions)


class Plan(NamedTuple):
    project: str
    repository: str
    branch: str
    default_branch: str  # where GitHub runs schedules (the release branch unless the spec says otherwise)
    tag_prefix: str
    initial_version: str
    runner: str | tuple[str, ...]  # one label, or labels a runner must all have
    workflows_dir: str
    pipec_requirement: str  # what the workflows install to run pipec
    environments: tuple[EnvironmentPlan, ...]
    services: tuple[ServicePlan, ...]
    dashboards: tuple[DashboardPlan, ...]
    artifacts: tuple[ArtifactPlan, ...]
    alert_emails: tuple[str, ...]
    webhook: str | None  # the GitHub secret holding the alert channel's webhook URL
    slack: tuple[str, str] | None  # (workspace, channel) where AWS Chatbot posts the alarms
    sanity_issues: bool  # a failing sanity check opens a GitHub issue, closed on recovery
    e2e: dict[str, str | int] | None
    sanity: dict[str, str | int] | None
    registries: tuple[tuple[str, str], ...]  # every (account, region) that runs the services
    cross_accounts: tuple[str, ...]  # accounts other than the build account
    build_role: str
    account_names: AccountNames
    release_group: str  # concurrency group of the release workflow's version job (one tag at a time)
    deploy_minutes: int  # the timeout of a deploy or rollback job of one region (its services one after another)
    sanity_group: str
    spec_sha: str = ""

    @property
    def session_seconds(self) -> int:
        """How long the deploy role's session lasts (its MaxSessionDuration, and what each job asks for): the whole
        job, within IAM's one to twelve hours."""
        return min(43200, max(3600, self.deploy_minutes * 60))

    @property
    def branch_ref(self) -> str:
        return names.branch_ref(self.branch)

    @property
    def all_regions(self) -> tuple[str, ...]:
        return tuple(sorted({region for _, region in self.registries}))

    @property
    def replication_destinations(self) -> tuple[tuple[str, str], ...]:
        """Registries that receive the build registry's images (all but the build registry itself)."""
        source = (self.build_env.account, self.build_env.home_region)
        return tuple(r for r in self.registries if r != source)

    @property
    def replica_policy(self) -> dict[str, Any]:
        """The policy of every repository replication makes in another registry (ECR's repository creation
        template there): the project's functions there may pull, whichever of them use images, so that a repository
        made today serves an image function added tomorrow (a repository replication made keeps the policy it was
        made with; the template changes only what replication makes later)."""
        return {"Version": "2012-10-17", "Statement": [{
            "Sid": "LambdaPulls", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Condition": {"StringLike": {"aws:SourceArn": self.account_names.functions_here}}}]}

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

    def image(self, repository: str) -> str:
        """An image's name in the registry it is pushed to (without a tag)."""
        return f"{self.registry}/{repository}"

    def zip_key(self, version: str, artifact: str) -> str:
        """Where in the release bucket the build job uploads a release's zip (the version may be a workflow
        expression)."""
        return names.zip_key(version, artifact)

    @property
    def release_ref(self) -> str:
        """The release branch as a clone knows it (what `pipec diff --against` compares with)."""
        return f"origin/{self.branch}"

    @property
    def bootstrap_template(self) -> str:
        return BOOTSTRAP_TEMPLATE


class AccountNames(NamedTuple):
    """Every name and ARN pattern of the bootstrap and network templates, which serve every environment: the
    environment, account and region are left to CloudFormation (${Environment}, ${AWS::AccountId}, ...)."""

    kms_alias: str
    alert_topic: str
    artifact_bucket: str
    deploy_role: str
    cfn_role: str
    sanity_role: str
    chatbot_role: str  # AWS Chatbot's, to read the alarms it posts (alerts.slack)
    chatbot_role_arn: str
    chatbot_configuration: str  # the channel configuration of an environment in one region
    plan_role: str  # assumed before an approval, to show reviewers what a release will change
    deploy_subject: str
    rollback_subject: str | None  # trusted by the deploy role too when some environment's rollbacks are unapproved
    branch_subjects: tuple[str, ...]  # what the sanity role trusts: the release branch, and the default branch
    build_subject: str
    build_account_root: str
    build_role_arn: str  # in the build account (the only one it is used in)
    service_role_path: str
    service_roles: str  # every role the service stacks of an environment make (by their path)
    service_boundary: str
    service_boundary_arn: str
    cross_account_roots: tuple[str, ...]
    cross_account_roles: tuple[str, ...]
    repository_filter: str
    repositories_here: str
    repositories_anywhere: str
    stacks: str
    cfn_role_arn: str
    shared_parameters: str
    shared_infrastructure: str  # the bootstrap's own parameters among them (one level deeper than a ledger)
    environment_buckets: str
    environment_objects: str
    release_bucket: str
    release_objects: str
    build_key: str
    functions: str
    functions_here: str  # the project's functions in this account and region (who may pull their images)
    ecs: str
    codedeploy: str
    alarms: str
    dashboards: str
    queues: str
    lambda_logs: str
    pipec_logs: str
    event_rules: str
    release_artifacts: str
    network_name: str
    flow_log_group: str
    subnets: tuple[tuple[str, str, str], ...]  # (zone, public subnet name, private subnet name)
    shared: dict[str, str]  # shared SSM key (kms/key-arn) -> parameter name
