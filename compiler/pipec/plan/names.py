"""Plan stage, names: the one place where AWS and GitHub names are made from the spec's names.

Pure functions of strings, so the validate rules can check lengths against AWS limits and the plan, the
templates' parameters, the deploy code and the runbooks all agree on every name.
"""

from __future__ import annotations

# AWS limits on the names pipec sets explicitly (characters).
LIMITS = {
    "stack": 128,
    "function": 64,
    "queue": 80,
    "bucket": 63,
    "role": 64,
    "alarm": 255,
    "codedeploy": 100,
}


# Environment variables pipec sets in every service itself; a team's own names must stay clear of them.
VERSION_VARIABLE = "APP_VERSION"  # the release version running
ENVIRONMENT_VARIABLE = "PIPEC_ENVIRONMENT"  # the environment's name


def secret_variable(key: str) -> str:
    """The Lambda variable that carries a secret's reference (the code reads the value itself, at start-up)."""
    return f"{key}_SECRET_REF"


def fill(text: str, **values: str) -> str:
    """A spec value with its placeholders ({env}, {region}, {account}, {project}, {service}) replaced."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def stack(project: str, env: str, unit: str) -> str:
    """CloudFormation stack of one service (or `bootstrap`, `network`) in one environment."""
    return f"{project}-{env}-{unit}"


def resource(project: str, env: str, service: str) -> str:
    """Name of a service's function, cluster, alarms prefix and log group suffix."""
    return f"{project}-{env}-{service}"


def queue(project: str, env: str, service: str) -> str:
    return f"{resource(project, env, service)}-dlq"


def role(project: str, env: str, purpose: str) -> str:
    """IAM role made by the bootstrap stack: deploy, cfn, sanity."""
    return f"{project}-{env}-{purpose}"


def build_role(project: str) -> str:
    return f"{project}-build"


def bucket(project: str, env: str, account: str, region: str) -> str:
    """Regional artifact bucket of an environment; holds Lambda zips and release bundles."""
    return f"{project}-{env}-{account}-{region}"


def repository(project: str, artifact: str) -> str:
    """ECR repository of a container artifact (the same name in every registry it is replicated to)."""
    return f"{project}/{artifact}"


def ledger(project: str, env: str, service: str) -> str:
    """SSM parameter whose history is the deployment history of a service in one region."""
    return f"/pipec/{project}/{env}/{service}"


def release_prefix(version: str) -> str:
    """Key prefix of a release bundle in the artifact bucket."""
    return f"releases/{version}/"


def zip_key(version: str, artifact: str) -> str:
    return f"{release_prefix(version)}artifacts/{artifact}.zip"


def concurrency_group(project: str, env: str, region: str) -> str:
    """GitHub concurrency group shared by the deploys and rollbacks of one environment in one region (one group
    per environment would make its regions' matrix jobs cancel each other)."""
    return f"{project}-{env}-{region}"


def lengths(project: str, env: str, service: str, kind: str, account: str, regions: list[str]) -> dict[str, str]:
    """Every explicit name of one service of a kind (lambda, web, worker) in one environment, by limit."""
    made = {"stack": stack(project, env, service), "role": role(project, env, "deploy"),
            "alarm": f"{resource(project, env, service)}-unhealthy-targets"}
    if kind == "lambda":
        made |= {"function": resource(project, env, service), "queue": queue(project, env, service),
                 "codedeploy": resource(project, env, service)}
    made["bucket"] = max((bucket(project, env, account, r) for r in regions), key=len)
    return made
