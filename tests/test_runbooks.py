"""The runbooks and the generated README: every command in a runbook works, every name it quotes exists, and
the pipeline diagram is well formed and made from the plan.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from pipec.build import compile_spec
from pipec.render.output import Output
from pipec.render.parse import parse
from pipec.render.render import mermaid
from tests.aws_world import PRODUCTION_ACCOUNT, World, deploy_everywhere, moto_server, with_existing_networks
from tests.conftest import SPEC_NAMES, cli, workflows_of

FENCE = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def commands(markdown: str, tool: str) -> list[list[str]]:
    """Every `tool ...` command in the runbook's shell blocks, including those inside $(...)."""
    found = []
    for block in FENCE.findall(markdown):
        for raw in block.splitlines():
            line = raw.strip()
            inner = re.findall(rf"\$\(({tool} [^)]*)\)", line)
            for text in ([line] if line.startswith(f"{tool} ") else []) + inner:
                found.append(shlex.split(text))
    return found


def _runbooks(folder: Path) -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted((folder / "generated" / "runbooks").glob("*.md"))}


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_pipec_command_of_every_runbook_is_a_valid_request(name: str, built: dict[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command runs with its real arguments, every value checked, as far as the first call to AWS (which
    nobody answers here): a renamed flag exits 2, an unknown environment or service 1; only a valid request
    gets to ask AWS."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)  # retries, no waits
    runbooks = _runbooks(built[name])
    assert runbooks
    nobody = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    for env, text in runbooks.items():
        found = commands(text, "pipec")
        assert {c[1] for c in found} >= {"status", "history", "rollback"}, env
        for command in found:
            result = cli(*command[1:], cwd=built[name], env=nobody)
            assert (result.exit_code, "error[PC616]: " in result.stderr) == (4, True), (command, result.stderr)


def test_the_request_check_above_can_fail(built: dict[str, Path]) -> None:
    nobody = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    assert cli("status", "--env", "nosuch", cwd=built["example"], env=nobody).exit_code == 1
    assert cli("status", "--format", "bogus", cwd=built["example"], env=nobody).exit_code == 2


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_gh_commands_name_real_workflows_and_inputs(name: str, built: dict[str, Path]) -> None:
    workflows = {p.name: parse(Output(p.as_posix(), p.read_text())) for p in workflows_of(built[name])}
    for env, text in _runbooks(built[name]).items():
        for command in commands(text, "gh"):
            assert command[:3] == ["gh", "workflow", "run"]
            inputs = workflows[command[3]]["on"]["workflow_dispatch"]["inputs"]
            # dispatched from the release branch, the only one the environments let deploy
            spec = parse(Output("pipeline.yaml", (built[name] / "pipeline.yaml").read_text()))
            assert command[4:6] == ["--ref", spec.get("release", {}).get("branch", "main")]
            given = dict(arg.split("=", 1) for arg in command[7::2])
            assert set(given) == set(inputs)
            assert given["environment"] == env
            assert given["environment"] in inputs["environment"]["options"]
            assert given["service"] in inputs["service"]["options"]


_NAMED = {"AWS::CloudWatch::Alarm": ("alarm", "AlarmName"), "AWS::ECS::Cluster": ("cluster", "ClusterName"),
          "AWS::CodeDeploy::Application": ("codedeploy", "ApplicationName"),
          "AWS::CodeDeploy::DeploymentGroup": ("codedeploy", "DeploymentGroupName"),
          "AWS::ECS::Service": ("service", "ServiceName"), "AWS::SNS::Topic": ("topic", "TopicName"),
          "AWS::IAM::Role": ("role", "RoleName"), "AWS::Logs::LogGroup": ("log group", "LogGroupName"),
          "AWS::Lambda::Function": ("function", "FunctionName"), "AWS::CloudWatch::Dashboard": ("dashboard",
                                                                                              "DashboardName")}


def _template_names(folder: Path, env: str, regions: tuple[str, ...]) -> dict[str, set[str]]:
    """Names the rendered bootstrap, service and dashboard templates give their resources in an environment (in
    each of its regions), by kind: read from the templates themselves, not from the plan the runbook is made
    from."""
    names: dict[str, set[str]] = {kind: set() for kind, _ in _NAMED.values()}
    templates = folder / "generated" / "cloudformation"
    for path in [templates / "bootstrap.yaml", *sorted(templates.glob("dashboard*.yaml")),
                 *sorted((templates / "services").glob("*.yaml"))]:
        template = parse(Output(path.as_posix(), path.read_text()))
        for resource in template["Resources"].values():
            if resource["Type"] in _NAMED:
                kind, key = _NAMED[resource["Type"]]
                value = resource["Properties"].get(key)
                if value is None:  # a role CloudFormation names itself
                    continue
                text = value["Fn::Sub"] if isinstance(value, dict) else value
                names[kind] |= {text.replace("${Environment}", env).replace("${AWS::Region}", r) for r in regions}
    return names


@pytest.mark.slow
def test_runbook_commands_work_against_aws(workdir: Path) -> None:
    """Every pipec command of the example's runbooks runs against a deployed moto world, and every aws command
    names a stack, parameter, cluster, application or alarm that really exists or is really declared."""
    with moto_server() as url:
        world = World(url)
        spec = workdir / "pipeline.yaml"
        spec.write_text(with_existing_networks(world, spec.read_text(), PRODUCTION_ACCOUNT))
        assert cli("build", "pipeline.yaml", cwd=workdir).exit_code == 0
        deploy_everywhere(world, workdir, ("1.0.0", "1.1.0", "1.2.0"))  # the runbook rolls back twice
        plan = compile_spec(spec).plan
        for env_name, text in _runbooks(workdir).items():
            env = plan.environment(env_name)
            for command in commands(text, "pipec"):
                result = cli(*command[1:], cwd=workdir, env=world.env(env.account))
                assert result.exit_code == 0, (command, result.stdout, result.stderr)
            declared = _template_names(workdir, env_name, env.regions)
            for command in commands(text, "aws"):
                _check_aws(world, env.account, command, declared, plan, env_name)
            # Every name of this environment the runbook quotes is one a template gives or a stack that exists.
            quoted = set(re.findall(rf"`({re.escape(env.alarm_prefix)}[a-z0-9-]+)`", text))
            stacks = {s["StackName"] for region in env.regions
                      for s in world.client("cloudformation", env.account, region).describe_stacks()["Stacks"]}
            assert len(quoted) > 5 and quoted - set().union(*declared.values()) - stacks == set()


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _check_aws(world: World, account: str, command: list[str], declared: dict[str, set[str]], plan: Any,
               env: str) -> None:
    service, action, region = command[1], command[2], _option(command, "--region")
    if (service, action) in (("cloudformation", "describe-stacks"), ("cloudformation", "describe-stack-events")):
        world.client("cloudformation", account, region).describe_stacks(StackName=_option(command, "--stack-name"))
    elif (service, action) == ("ssm", "get-parameter"):
        world.client("ssm", account, region).get_parameter(Name=_option(command, "--name"))
    elif (service, action) == ("ecs", "describe-services"):
        cluster = _option(command, "--cluster")
        assert cluster in declared["cluster"] and _option(command, "--services") in declared["service"]
        found = world.client("ecs", account, region).describe_services(cluster=cluster,
                                                                       services=[_option(command, "--services")])
        assert found["services"], command
    elif (service, action) == ("deploy", "list-deployments"):
        # moto does not carry CodeDeploy; the name must be the one the template declares.
        assert _option(command, "--application-name") in declared["codedeploy"]
        assert _option(command, "--deployment-group-name") in declared["codedeploy"]
    elif (service, action) == ("logs", "start-query"):
        group = _option(command, "--log-group-name")
        assert group in declared["log group"], group
        logs = world.client("logs", account, region)
        started = logs.start_query(logGroupName=group, startTime=0, endTime=1, queryString=_option(
            command, "--query-string"))  # moto refuses a log group that does not exist
        assert logs.get_query_results(queryId=started["queryId"])["status"] == "Complete"
    elif (service, action) == ("lambda", "list-versions-by-function"):
        function = _option(command, "--function-name")
        assert function in declared["function"], function
        # The runbook's example release and the last one deployed are described alike ("release <version>").
        wanted = re.fullmatch(r"Versions\[\?Description=='release ([^']+)'\]\.Version", _option(command, "--query"))
        assert wanted is not None and re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", wanted.group(1))
        versions = world.client("lambda", account, region).list_versions_by_function(FunctionName=function)
        assert "release 1.2.0" in {v.get("Description") for v in versions["Versions"]}, versions["Versions"]
    elif (service, action) == ("cloudwatch", "get-dashboard"):
        name = _option(command, "--dashboard-name")
        assert name in declared["dashboard"], name
        body = json.loads(world.client("cloudwatch", account, region).get_dashboard(DashboardName=name)
                          ["DashboardBody"])
        shown = "\n".join(w["properties"]["markdown"] for w in body["widgets"] if w["type"] == "text")
        cloudformation = world.client("cloudformation", account, region)
        for service in plan.services:  # what each stack runs now (the runbook's rollbacks ran before)
            stack = cloudformation.describe_stacks(StackName=service.stack_for(env, region).name)["Stacks"][0]
            version = next(p["ParameterValue"] for p in stack["Parameters"] if p["ParameterKey"] == "Version")
            assert f"### {service.name}\n" in shown and re.search(
                rf"### {service.name}\n[^#]*release \*\*{re.escape(version)}\*\*", shown), (service.name, version)
    elif (service, action) == ("cloudwatch", "describe-alarms"):
        prefix = _option(command, "--alarm-name-prefix")
        assert declared["alarm"] and all(name.startswith(prefix) for name in declared["alarm"])
    else:
        raise AssertionError(f"the runbook uses an aws command this test does not check: {command}")


def test_the_diagram_is_well_formed_and_made_from_the_plan(built: dict[str, Path]) -> None:
    for name in SPEC_NAMES:
        plan = compile_spec(built[name] / "pipeline.yaml").plan
        diagram = mermaid(plan)
        readme = (built[name] / "generated" / "README.md").read_text()
        assert f"```mermaid\n{diagram}\n```" in readme
        _well_formed(diagram)
        for env in plan.environments:
            services = ", ".join(s.name for s in plan.services)
            assert f"deploy {env.name}<br/>{', '.join(env.regions)}<br/>{services}" in diagram
            assert (f'approve_{env.name.replace("-", "_")}{{"approval {env.name}"}}' in diagram) == env.approval
        for artifact in plan.artifacts:
            assert f'["build {artifact.name}"]' in diagram


NODE = r"[A-Za-z][A-Za-z0-9_]*"
SHAPE = r'(\["[^"\]]*"\]|\{"[^"}]*"\}|\(\["[^"\]]*"\]\))'


def _well_formed(diagram: str) -> None:
    lines = diagram.splitlines()
    assert lines[0] == "flowchart LR"
    defined: set[str] = set()
    used: set[str] = set()
    for line in lines[1:]:
        text = line.strip()
        edge = re.fullmatch(rf"({NODE}){SHAPE}? (-->|-\.->) ({NODE}){SHAPE}?", text)
        node = re.fullmatch(rf"({NODE}){SHAPE}", text)
        assert edge or node, f"not a Mermaid node or edge: {line!r}"
        if node:
            defined.add(node.group(1))
        else:
            assert edge is not None
            used |= {edge.group(1), edge.group(4)}
            if edge.group(2):
                defined.add(edge.group(1))
            if edge.group(5):
                defined.add(edge.group(4))
    assert used <= defined, used - defined


def test_a_new_environment_and_service_appear_in_the_diagram(workdir: Path) -> None:
    spec = workdir / "pipeline.yaml"
    canary = ('  canary:\n    account: "333333333333"\n    regions: [us-west-2]\n    approval: manual\n'
              "    url: https://canary.example\n    certificates:\n"
              "      us-west-2: arn:aws:acm:us-west-2:333333333333:certificate/c\n")
    text = spec.read_text().replace("  production:\n    account:", canary + "  production:\n    account:", 1)
    webhooks = "      staging:    {memory: 512, reserved_concurrency: 5}"
    text = text.replace(webhooks, f"{webhooks}\n      canary: {{memory: 512, reserved_concurrency: 5}}")
    for kind in ("{cpu: 256, memory: 512, min: 1, max: 2}", "{cpu: 256, memory: 512, min: 1, max: 1}",
                 "{memory: 512, reserved_concurrency: 1}"):
        text = text.replace(f"staging:    {kind}", f"staging:    {kind}\n      canary: {kind}", 1)
    text = text.replace("\nchecks:\n", "  exports:\n    kind: lambda\n    artifact: jobs-zip\n    handler: e.handler\n"
                        "    runtime: python3.13\n    scaling:\n      staging: {memory: 256}\n"
                        "      canary: {memory: 256}\n      production: {memory: 256}\n\nchecks:\n")
    spec.write_text(text)
    diagram = mermaid(compile_spec(spec).plan)
    assert 'approve_canary{"approval canary"}' in diagram
    assert "deploy canary<br/>us-west-2<br/>api, worker, usage-report, webhooks, exports" in diagram
    assert "e2e_staging --> approve_canary" in diagram
    assert "deploy_canary --> e2e_canary" in diagram
    _well_formed(diagram)
