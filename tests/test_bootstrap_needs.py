"""A release whose spec changed the bootstrap (a new image's repository) against a real moto server: the deploy
to an environment an administrator has not bootstrapped yet stops before anything changes, naming what is missing
and the command; an older release still deploys on the newer bootstrap.

(Known and left: by then ECR replication has created the new repository in production's registries, as ECR does
for a missing destination repository, so production's bootstrap then fails with RepositoryAlreadyExists; the
administrator must bootstrap every environment before the first push of a new image.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipec.build import compile_spec
from tests.aws_world import World, build_release, moto_server, strip_unsupported, with_existing_networks
from tests.conftest import Run, cli

STAGING, PRODUCTION = "111111111111", "222222222222"


def _ok(result: Run) -> str:
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def _release(world: World, workdir: Path, version: str) -> None:
    """Build the spec as it now stands and publish it as a release (what the release workflow's jobs do)."""
    assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
    plan = compile_spec(workdir / "pipeline.yaml").plan
    digests = build_release(world, plan, version)
    _ok(cli("bundle", "--version", version, "--commit", version.replace(".", "") * 10,
            *[f"--artifact={name}={digest}" for name, digest in digests.items()], cwd=workdir,
            env=world.env(STAGING)))
    strip_unsupported(world, plan, version)


@pytest.mark.slow
def test_a_new_artifact_waits_for_the_administrators_bootstrap(workdir: Path) -> None:
    with moto_server() as url:
        world = World(url)
        spec = workdir / "pipeline.yaml"
        spec.write_text(with_existing_networks(world, spec.read_text(), PRODUCTION))

        def run(account: str, *args: str) -> Run:
            return cli(*args, cwd=workdir, env=world.env(account))

        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        _ok(run(STAGING, "bootstrap", "--env", "staging"))
        _ok(run(PRODUCTION, "bootstrap", "--env", "production"))
        _release(world, workdir, "1.0.0")
        for env, account in (("staging", STAGING), ("production", PRODUCTION)):
            _ok(run(account, "deploy", "--env", env, "--version", "1.0.0"))
            _ok(run(STAGING, "verify", "--env", env, "--version", "1.0.0"))

        # The worker moves to an image of its own: every registry needs its repository, which only a bootstrap
        # makes. The administrator bootstraps staging (the build registry) and not yet production.
        text = spec.read_text().replace("  jobs-zip:\n", "  billing-image:\n    type: container-image\n"
                                        "    context: services/billing\n  jobs-zip:\n", 1)
        text = text.replace("    kind: ecs-fargate\n    artifact: worker-image\n",
                            "    kind: ecs-fargate\n    artifact: billing-image\n", 1)
        spec.write_text(text)
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        assert "[staging us-east-1 bootstrap] UPDATE_COMPLETE" in _ok(run(STAGING, "bootstrap", "--env", "staging"))
        _release(world, workdir, "1.1.0")
        _ok(run(STAGING, "deploy", "--env", "staging", "--version", "1.1.0"))
        _ok(run(STAGING, "verify", "--env", "staging", "--version", "1.1.0"))

        before = json.loads(_ok(run(PRODUCTION, "status", "--env", "production", "--format", "json")))
        refused = run(PRODUCTION, "deploy", "--env", "production", "--version", "1.1.0")
        assert refused.exit_code == 4
        assert refused.stderr.startswith(
            "pipec: error[PC622]: the bootstrap of production lacks what the release needs: us-east-1 stack "
            "stigg-production-bootstrap has no resource RepositoryBillingImage; eu-west-1 stack "
            "stigg-production-bootstrap has no resource RepositoryBillingImage; nothing was changed\n"
            "hint: an administrator runs `pipec bootstrap --env production` with this spec (the deploy role cannot "
            "change the bootstrap or network stacks), then deploy again\n"), refused.stderr
        assert json.loads(_ok(run(PRODUCTION, "status", "--env", "production", "--format", "json"))) == before

        # A newer bootstrap serves older releases: staging, bootstrapped for 1.1.0, still takes 1.0.0's api back
        # (the worker's 1.0.0 predates its artifact: PC617 says so).
        assert "recorded 1.0.0" in _ok(run(STAGING, "rollback", "--env", "staging", "--service", "api", "--to",
                                           "1.0.0"))


@pytest.mark.slow
def test_a_new_region_waits_for_its_bootstrap_then_deploys(workdir: Path) -> None:
    """Staging gains a region: its release stops before any change until an administrator bootstrapped it, then
    deploys there (a function; images reach a region only once its replication rule exists, before their push)."""
    with moto_server() as url:
        world = World(url)
        spec = workdir / "pipeline.yaml"

        def run(*args: str) -> Run:
            return cli(*args, cwd=workdir, env=world.env(STAGING))

        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        _ok(run("bootstrap", "--env", "staging"))
        _release(world, workdir, "1.0.0")
        _ok(run("deploy", "--env", "staging", "--version", "1.0.0"))

        text = spec.read_text().replace("    regions: [us-east-1]\n    approval: none",
                                        "    regions: [us-east-1, us-west-2]\n    approval: none", 1)
        certificate = next(line for line in text.splitlines(keepends=True)
                           if line.startswith("      us-east-1: arn:aws:acm:us-east-1:111111111111:"))
        text = text.replace(certificate, certificate + certificate.replace("us-east-1", "us-west-2"), 1)
        spec.write_text(text)
        _release(world, workdir, "1.1.0")
        refused = run("deploy", "--env", "staging", "--version", "1.1.0")
        assert refused.exit_code == 4
        message = refused.stderr.split("\n", 1)[0]
        assert message.startswith("pipec: error[PC622]: the bootstrap of staging lacks what the release needs: "
                                  "us-west-2 stack stigg-staging-bootstrap (it does not exist); us-west-2 stack "
                                  "stigg-staging-network (it does not exist); us-west-2 parameter "
                                  "/pipec/stigg/staging/alerts/topic-arn (read by api, worker, usage-report, "
                                  "webhooks); "), message
        assert message.endswith("; nothing was changed")
        assert "an administrator runs `pipec bootstrap --env staging --region us-west-2` with this spec" in \
            refused.stderr
        assert {json.loads(v)["version"] for v in [world.client("ssm", STAGING, "us-east-1").get_parameter(
            Name="/pipec/stigg/staging/api")["Parameter"]["Value"]]} == {"1.0.0"}

        out = _ok(run("bootstrap", "--env", "staging", "--region", "us-west-2"))
        assert "[staging us-west-2 bootstrap] CREATE_COMPLETE" in out and "[staging us-west-2 network] " \
            "CREATE_COMPLETE" in out
        out = _ok(run("deploy", "--env", "staging", "--version", "1.1.0", "--region", "us-west-2", "--service",
                      "webhooks"))
        assert "[staging us-west-2 webhooks] recorded 1.1.0 in /pipec/stigg/staging/webhooks" in out
