"""Plan stage, names: the one place where AWS and GitHub names are made from the spec's names.

Pure functions of strings. Each name is spelled once, here; the same function with the placeholders below makes
the text a template shared by every environment needs (`stigg-${Environment}-api`), and with `*` the pattern an
IAM policy grants on (`stigg-${Environment}-*`). So the plan, the templates, the deploy code, the runbooks and the
length check (PC211) all see the same names.
"""

from __future__ import annotations

# Placeholders CloudFormation fills in a template shared by every environment, account and region (!Sub).
ENV = "${Environment}"
ACCOUNT = "${AWS::AccountId}"
REGION = "${AWS::Region}"
PARTITION = "${AWS::Partition}"
ANY = "*"

# AWS limits on the names pipec sets explicitly (characters).
LIMITS = {
    "stack": 128,
    "function": 64,
    "queue": 80,
    "bucket": 63,
    "role": 64,
    "alarm": 255,
    "codedeploy": 100,
    "log group": 512,
    "scaling policy": 256,
    "cluster": 255,
    "event rule": 64,
    "topic": 256,
    "chatbot configuration": 128,
    "dashboard": 255,
}

# What the managed VPC's subnets are called, by role and zone.
SUBNET_ZONES = ("a", "b")


def instance(text: str, env: str) -> str:
    """A name made with ENV, as it is in one environment."""
    return text.replace(ENV, env)


def in_region(text: str, env: str, region: str) -> str:
    """A template's text in one environment and region."""
    return instance(text, env).replace(REGION, region)


def arn(service: str, resource: str, *, region: str = ANY, account: str = ACCOUNT, partition: str = PARTITION) -> str:
    """An ARN (by default any region of this account, in the template's partition)."""
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def account_root(account: str, partition: str = PARTITION) -> str:
    """The principal that stands for a whole account in a resource policy."""
    return arn("iam", "root", region="", account=account, partition=partition)


def _named(project: str, env: str, leaf: str) -> str:
    """The shape of every name of an environment: project, environment, then what it is."""
    return f"{project}-{env}-{leaf}"


def _path(project: str, env: str, leaf: str) -> str:
    """The shape of every path of an environment (log groups, SSM parameters): /pipec/project/environment/..."""
    return f"/pipec/{project}/{env}/{leaf}"


def stack(project: str, env: str, unit: str) -> str:
    """CloudFormation stack of one service (or `bootstrap`, `network`) in one environment."""
    return _named(project, env, unit)


def resource(project: str, env: str, service: str) -> str:
    """Name of a service's function, cluster, task family, CodeDeploy application and group, and event rule."""
    return _named(project, env, service)


def queue(project: str, env: str, service: str) -> str:
    return f"{resource(project, env, service)}-dlq"


def alarm(project: str, env: str, service: str, key: str) -> str:
    return f"{resource(project, env, service)}-{key}"


def alarm_prefix(project: str, env: str) -> str:
    """What every alarm name of an environment starts with."""
    return f"{project}-{env}-"


def scaling_policy(project: str, env: str, service: str) -> str:
    return f"{resource(project, env, service)}-cpu"


def lambda_log_group(project: str, env: str, service: str) -> str:
    """Lambda's own log group name for a function (it writes there whatever the configuration)."""
    return f"/aws/lambda/{resource(project, env, service)}"


def log_group(project: str, env: str, unit: str) -> str:
    """Log group of an ECS service or of the VPC flow logs."""
    return _path(project, env, unit)


def shared_parameter(project: str, env: str, key: str) -> str:
    """SSM parameter of an environment's shared infrastructure (or, with `*`, all of them)."""
    return _path(project, env, key)


def ledger(project: str, env: str, service: str) -> str:
    """SSM parameter whose history is the deployment history of a service in one region."""
    return _path(project, env, service)


def kms_alias(project: str, env: str) -> str:
    return f"alias/{project}-{env}"


def alert_topic(project: str, env: str) -> str:
    return _named(project, env, "alerts")


def network_name(project: str, env: str) -> str:
    """The Name tag of the managed VPC."""
    return f"{project}-{env}"


def subnet_name(project: str, env: str, role: str, zone: str) -> str:
    return _named(project, env, f"{role}-{zone}")


def role(project: str, env: str, purpose: str) -> str:
    """IAM role made by the bootstrap stack: deploy, cfn, sanity (or, with `*`, any role of the environment)."""
    return _named(project, env, purpose)


def build_role(project: str) -> str:
    return f"{project}-build"


def service_role_path(project: str, env: str) -> str:
    """The IAM path of every role a service stack makes. The bootstrap roles live at `/`, so a pattern of this
    path never matches them, and one environment's path never matches another's (the closing slash)."""
    return f"/{project}/{env}/"


def service_boundary(project: str, env: str) -> str:
    """The managed policy that bounds every role a service stack makes (the CloudFormation role must attach it)."""
    return _named(project, env, "service-boundary")


def project_role(project: str) -> str:
    """Pattern of every role of the project, whatever the environment (cross-account grants)."""
    return f"{project}-{ANY}"


def bucket(project: str, env: str, account: str, region: str) -> str:
    """Regional artifact bucket of an environment; holds Lambda zips and release bundles."""
    return _named(project, env, f"{account}-{region}")


def repository(project: str, artifact: str) -> str:
    """ECR repository of a container artifact (the same name in every registry it is replicated to)."""
    return f"{repository_prefix(project)}{artifact}"


def repository_prefix(project: str) -> str:
    return f"{project}/"


def rollback_environment(env: str) -> str:
    """The GitHub environment of an environment's unapproved rollbacks (an underscore, which no spec name has)."""
    return f"{env}_rollback"


def oidc_environment_subject(repository_name: str, env: str) -> str:
    """The OIDC subject GitHub gives a job bound to a GitHub environment."""
    return f"repo:{repository_name}:environment:{env}"


# The GitHub environment of the release workflow's build and bundle jobs: the build role trusts only it, so no
# other job on the branch (the scheduled sanity checks, a workflow of the team's) can push images or releases.
# An underscore, which no spec name has, keeps it apart from every environment of a spec.
BUILD_ENVIRONMENT = "pipec_build"


def branch_ref(branch: str) -> str:
    """The full git ref of a branch, as GitHub gives it in GITHUB_REF."""
    return f"refs/heads/{branch}"


def oidc_branch_subject(repository_name: str, branch: str) -> str:
    """The OIDC subject GitHub gives a job on a branch, bound to no environment."""
    return f"repo:{repository_name}:ref:{branch_ref(branch)}"


RELEASES = "releases/"


def release_prefix(version: str) -> str:
    """Key prefix of a release bundle in the artifact bucket."""
    return f"{RELEASES}{version}/"


def verification_key(version: str, env: str) -> str:
    """Where the release bucket keeps the record that a release passed an environment's checks."""
    return f"{release_prefix(version)}verified/{env}.json"


def zip_key(version: str, artifact: str) -> str:
    return f"{release_prefix(version)}artifacts/{artifact}.zip"


def tag(prefix: str, version: str) -> str:
    """The git tag of a release."""
    return f"{prefix}{version}"


def concurrency_group(project: str, env: str, region: str) -> str:
    """GitHub concurrency group of the rollbacks of one environment in one region (one group per environment would
    make its regions' matrix jobs cancel each other)."""
    return _named(project, env, region)


def stage_group(project: str, env: str) -> str:
    """GitHub concurrency group of one environment's stage of the release (approval, deploy, end-to-end checks):
    one release at a time in it, the newest waiting one next."""
    return f"{project}-deploy-{env}"


def stage_workflow(env: str) -> str:
    """File name of the reusable workflow that deploys a release to one environment and checks it."""
    return f"deploy-{env}.yml"


def workflow_group(project: str, workflow: str) -> str:
    """GitHub concurrency group of a whole workflow (or, with a suffix, of one of its runs)."""
    return f"{project}-{workflow}"


def job(step: str, name: str) -> str:
    """Id of a workflow job: build-<artifact>, promote-<env>, deploy-<env>, e2e-<env>, rollback-<env>."""
    return f"{step}-{name}"


def sanity_check_name(env: str, region: str) -> str:
    """Name of the sanity workflow's job for one environment and region, as GitHub's API lists the job (the
    workflow writes it with matrix expressions; `pipec notify sanity` finds the previous run's outcome by it)."""
    return f"Sanity checks on {env} ({region})"


SANITY_WORKFLOW = "sanity.yml"
ROLLBACK_WORKFLOW = "rollback.yml"


def sanity_issue_title(project: str, env: str, region: str) -> str:
    """Title of the one GitHub issue a failing sanity check keeps open for an environment and region."""
    return f"{project}: sanity checks failing on {env} ({region})"


def dashboard(project: str, env: str, region: str) -> str:
    """An environment's CloudWatch dashboard in one region (dashboard names are global to the account)."""
    return _named(project, env, region)


def runbook_path(generated: str, env: str) -> str:
    return f"{generated}/runbooks/{env}.md"


def github_file(repository_name: str, branch: str, path: str) -> str:
    """Where a generated file is read on GitHub: the release branch's copy, which is what runs."""
    from urllib.parse import quote

    return f"https://github.com/{repository_name}/blob/{quote(branch)}/{path}"


def runbook_section(service: str) -> str:
    """The anchor GitHub gives a service's heading in the runbook ("Service api")."""
    return f"service-{service}"


def ecs_log_stream(version: str, container: str) -> str:
    """An ECS task's log stream (the awslogs driver's prefix/container/task id, the prefix the release version)."""
    return f"{version}/{container}/<task id>"


LOG_FIELDS = "fields @timestamp, @logStream, @message"


def release_streams(kind: str, version: str, function_versions: tuple[str, ...] = ()) -> str:
    """The Logs Insights regular expression (between slashes) matching exactly the log streams of one release: an
    ECS task's <version>/<container>/<task id> (the stream prefix is the release version), or a function's
    YYYY/MM/DD/[<n>]<id>, n one of the function versions published for the release."""
    if kind != "lambda":
        return "^" + version.replace(".", r"\.").replace("+", r"\+") + r"\/"
    return r"^\d{4}\/\d{2}\/\d{2}\/\[(" + "|".join(function_versions) + r")\]"


def logs_query(pattern: str, limit: int = 200) -> str:
    """The Logs Insights query of the log streams a pattern of release_streams matches, newest first."""
    return f"{LOG_FIELDS} | filter @logStream like /{pattern}/ | sort @timestamp desc | limit {limit}"


def chatbot_configuration(project: str, env: str, region: str) -> str:
    """AWS Chatbot's Slack channel configuration of an environment in one region (unique in the account)."""
    return f"{project}-{env}-alerts-{region}"
