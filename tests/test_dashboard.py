"""What tells a person during an incident which release runs: the dashboards (their body parsed back as JSON with
the values CloudFormation substitutes, every metric one AWS publishes for the service's resources, named as its own
alarms name them), the alarm messages (environment, region, service, release, the runbook section that exists) and
the log streams of one release (the Logs Insights pattern matches its streams and no other release's).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec.build import compile_spec
from pipec.plan import names
from pipec.render.output import Output
from pipec.render.parse import parse, template_body
from pipec.validate.facts import TEMPLATE_BODY_BYTES
from tests.conftest import SPEC_NAMES, cli, sub_text
from tests.specgen import spec as generated_spec

# What AWS publishes, by namespace and metric: the dimension sets the dashboards may name it by (AWS's metric
# references for Application Load Balancers, ECS, Container Insights and Lambda).
PUBLISHED: dict[tuple[str, str], set[frozenset[str]]] = {
    ("AWS/ApplicationELB", "RequestCount"): {frozenset({"LoadBalancer", "TargetGroup"})},
    ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"): {frozenset({"LoadBalancer", "TargetGroup"})},
    ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"): {frozenset({"LoadBalancer"})},
    ("AWS/ApplicationELB", "TargetResponseTime"): {frozenset({"LoadBalancer", "TargetGroup"})},
    ("AWS/ECS", "CPUUtilization"): {frozenset({"ClusterName", "ServiceName"})},
    ("AWS/ECS", "MemoryUtilization"): {frozenset({"ClusterName", "ServiceName"})},
    ("ECS/ContainerInsights", "RunningTaskCount"): {frozenset({"ClusterName", "ServiceName"})},
    ("ECS/ContainerInsights", "DesiredTaskCount"): {frozenset({"ClusterName", "ServiceName"})},
    ("AWS/Lambda", "Invocations"): {frozenset({"FunctionName", "Resource"})},
    ("AWS/Lambda", "Errors"): {frozenset({"FunctionName", "Resource"})},
    ("AWS/Lambda", "Throttles"): {frozenset({"FunctionName", "Resource"})},
    ("AWS/Lambda", "Duration"): {frozenset({"FunctionName", "Resource"})},
    ("AWS/Lambda", "ConcurrentExecutions"): {frozenset({"FunctionName"})},
}
STATISTICS = {"Sum", "Average", "Maximum", "Minimum", "SampleCount", "p50", "p90", "p99"}
# A value of each parameter kind that its pattern admits, with what JSON and !Sub would choke on if it could.
SAMPLES = {"Version": "2.0.0-rc.1+build.7", "Commit": "0123456789abcdef0123456789abcdef01234567",
           "LoadBalancer": "app/stigg-api-lb/50dc6c495c0c9188", "TargetGroup": "targetgroup/stigg-api/73e2d6bc24d8a067"}
ACCOUNT, REGION = "123456789012", "eu-west-1"


def _template(path: Path) -> dict[str, Any]:
    return parse(Output(path.as_posix(), path.read_text()))


def _values(template: dict[str, Any], env: str) -> dict[str, str]:
    values = {"Environment": env, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
    for n, (key, declared) in enumerate(template["Parameters"].items()):
        if key != "Environment":  # a value of its own for each parameter, so a row shows whose it is
            sample = next(v for suffix, v in SAMPLES.items() if key.endswith(suffix))
            sample = sample.replace("7", str(n), 1) if key.endswith("Version") else sample[:-len(str(n))] + str(n)
            assert re.fullmatch(declared["AllowedPattern"], sample) and re.fullmatch(declared["AllowedPattern"],
                                                                                   declared["Default"]), key
            values[key] = sample
    assert len(set(values.values())) == len(values)  # all distinct
    return values


def substitute(text: str, values: dict[str, str]) -> str:
    """Fn::Sub as CloudFormation does it: every ${name} must be a parameter or pseudo parameter."""
    def one(match: re.Match[str]) -> str:
        assert match.group(1) in values, f"${{{match.group(1)}}} is neither a parameter nor a pseudo parameter"
        return values[match.group(1)]
    return re.sub(r"\$\{([^}]+)\}", one, text)


def _body(template: dict[str, Any], env: str) -> tuple[dict[str, Any], dict[str, str]]:
    values = _values(template, env)
    properties = template["Resources"]["Dashboard"]["Properties"]
    return json.loads(substitute(properties["DashboardBody"]["Fn::Sub"], values)), values


def _services(folder: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: _template(p) for p in sorted((folder / "generated/cloudformation/services").glob("*.yaml"))}


def _alarm_dimensions(service: dict[str, Any], env: str) -> dict[str, str]:
    """Every dimension value the service's own alarms name their metrics by, resolved for the environment."""
    found: dict[str, str] = {}
    for resource in service["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        metrics = [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m]
        for metric in metrics or [properties]:
            for dimension in metric["Dimensions"]:
                value = dimension["Value"]
                if isinstance(value, dict) and "Fn::Sub" in value:
                    found[dimension["Name"]] = substitute(value["Fn::Sub"], {"Environment": env,
                                                                              "Function": f"<function {env}>"})
                elif isinstance(value, str):
                    found[dimension["Name"]] = value
    return found


def _function_name(service: dict[str, Any], env: str) -> str | None:
    function = service["Resources"].get("Function")
    return substitute(sub_text(function["Properties"]["FunctionName"]), {"Environment": env}) if function else None


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_dashboard_is_valid_json_naming_metrics_aws_publishes_for_the_services_resources(
        name: str, built: dict[str, Path]) -> None:
    folder = built[name]
    plan = compile_spec(folder / "pipeline.yaml").plan
    services = _services(folder)
    shown: list[str] = []
    for board in plan.dashboards:
        path = folder / board.template
        template = _template(path)
        assert len(template_body(path.read_text()).encode()) <= TEMPLATE_BODY_BYTES
        assert set(template["Resources"]) == {"Dashboard"}
        for env in plan.environments:
            body, values = _body(template, env.name)
            name_sub = template["Resources"]["Dashboard"]["Properties"]["DashboardName"]["Fn::Sub"]
            assert substitute(name_sub, values) == names.dashboard(plan.project, env.name, REGION) + (
                "" if board.unit == "dashboard" else board.unit.removeprefix("dashboard"))
            _check_layout(body["widgets"])
            rows = [w for w in body["widgets"] if w["type"] == "text" and w["properties"]["markdown"].startswith("###")]
            assert [r["properties"]["markdown"].split("\n")[0][4:] for r in rows] == list(board.services)
            for service_name in board.services:
                _check_row(body["widgets"], service_name, services[service_name], env.name, values)
        shown += board.services
        # every parameter is used, and nothing else is substituted
        used = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", template["Resources"]["Dashboard"]["Properties"]
                              ["DashboardBody"]["Fn::Sub"]))
        assert used == set(template["Parameters"]), set(template["Parameters"]) ^ used
    assert shown == [s.name for s in plan.services]


def _check_layout(widgets: list[dict[str, Any]]) -> None:
    cells: set[tuple[int, int]] = set()
    for widget in widgets:
        assert widget["type"] in ("text", "metric", "alarm")
        if widget["type"] == "alarm":  # CloudWatch's schema of the body: 1 to 100 alarms
            assert 1 <= len(widget["properties"]["alarms"]) <= 100
        elif widget["type"] == "metric":  # metrics and a region, or CloudWatch refuses the body
            assert widget["properties"]["metrics"] and widget["properties"]["region"]
        else:
            assert widget["properties"]["markdown"]
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24
        mine = {(x, y) for x in range(widget["x"], widget["x"] + widget["width"])
                for y in range(widget["y"], widget["y"] + widget["height"])}
        assert not cells & mine, f"widgets overlap at {sorted(cells & mine)[:3]}"
        cells |= mine
    assert len(widgets) <= 500  # CloudWatch's limit of widgets per dashboard


def _check_row(widgets: list[dict[str, Any]], name: str, service: dict[str, Any], env: str,
               values: dict[str, str]) -> None:
    mine = [w for w in widgets if w["properties"].get("title", "").startswith(f"{name}: ")
            or w["properties"].get("markdown", "").startswith(f"### {name}\n")]
    text = next(w for w in mine if w["type"] == "text")["properties"]["markdown"]
    (logical,) = [k.removesuffix("Version") for k in values if k.endswith("Version") and f"**{values[k]}**" in text]
    assert logical.lower() == name.replace("-", "")  # the row shows its own service's parameters
    assert f"release **{values[logical + 'Version']}**, commit `{values[logical + 'Commit']}`" in text
    alarms = {r["Properties"]["AlarmName"]["Fn::Sub"].replace("${Environment}", env)
              for r in service["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    shown = next(w for w in mine if w["type"] == "alarm")["properties"]["alarms"]
    assert {arn.rsplit(":alarm:", 1)[1] for arn in shown} == alarms
    assert all(arn.startswith(f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:") for arn in shown)
    dimensions = _alarm_dimensions(service, env)
    graphs = [w for w in mine if w["type"] == "metric"]
    assert len(graphs) >= 2
    for graph in graphs:
        assert graph["properties"]["region"] == REGION
        for metric in graph["properties"]["metrics"]:
            namespace, metric_name, *rest = metric
            options = rest.pop() if rest and isinstance(rest[-1], dict) else {}
            given = dict(zip(rest[::2], rest[1::2], strict=True))
            assert frozenset(given) in PUBLISHED[(namespace, metric_name)], (namespace, metric_name, given)
            assert options["stat"] in STATISTICS
            for key, value in given.items():
                if key in ("LoadBalancer", "TargetGroup"):  # full names pipec deploy reads from the stack outputs
                    assert value == values[logical + key]
                elif key == "FunctionName":
                    assert value == _function_name(service, env)
                elif key == "Resource":
                    assert value == f"{_function_name(service, env)}:live"
                else:
                    assert value == dimensions[key], (key, value, dimensions)
    if any(m[0] == "ECS/ContainerInsights" for g in graphs for m in g["properties"]["metrics"]):
        settings = service["Resources"]["Cluster"]["Properties"]["ClusterSettings"]
        assert {"Name": "containerInsights", "Value": "enabled"} in settings  # the stack emits them


def test_a_spec_with_many_services_gets_several_dashboards_each_within_the_request_limit(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(generated_spec(70, environments=2, regions=2)))
    assert cli("build", "pipeline.yaml", cwd=tmp_path).exit_code == 0
    plan = compile_spec(tmp_path / "pipeline.yaml").plan
    assert len(plan.dashboards) >= 3
    assert [s for d in plan.dashboards for s in d.services] == [s.name for s in plan.services]
    for board in plan.dashboards:
        path = tmp_path / board.template
        assert len(template_body(path.read_text()).encode()) <= TEMPLATE_BODY_BYTES
        assert len(_template(path)["Parameters"]) <= 200  # CloudFormation's limit
    for env in plan.environments:  # one stack of each dashboard in each region
        assert len({s.name for s in env.dashboards}) == len(plan.dashboards)
        assert len(env.dashboards) == len(plan.dashboards) * len(env.regions)


def test_a_service_named_like_a_dashboard_stack_is_refused(tmp_path: Path) -> None:
    spec = generated_spec(2, environments=2, regions=1)
    spec["services"]["dashboard"] = spec["services"].pop("svc1")
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec))
    result = cli("validate", "pipeline.yaml", cwd=tmp_path)
    assert result.exit_code == 1
    assert 'error[PC219]: the stack name "gen-env0-dashboard" of service "dashboard"' in result.stderr, result.stderr


def _anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_alarm_message_names_where_what_which_release_and_a_runbook_section_that_exists(
        name: str, built: dict[str, Path]) -> None:
    folder = built[name]
    plan = compile_spec(folder / "pipeline.yaml").plan
    for service_name, service in _services(folder).items():
        alarms = [r["Properties"] for r in service["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
        assert alarms
        for env in plan.environments:
            runbook = (folder / names.runbook_path("generated", env.name)).read_text()
            for alarm in alarms:
                values = {"Environment": env.name, "AWS::Region": REGION, "Version": "1.4.2"}
                message = substitute(sub_text(alarm["AlarmDescription"]), values)
                assert message.startswith(f"{service_name} in {env.name} {REGION}, release 1.4.2: "), message
                assert len(message.replace("1.4.2", "x" * 60)) <= 1024  # CloudWatch's limit, with a long version
                url = re.fullmatch(r".*Runbook: (\S+)", message)
                assert url is not None, message
                page, anchor = url.group(1).split("#")
                assert page == f"https://github.com/{plan.repository}/blob/{plan.branch}/generated/runbooks/" \
                               f"{env.name}.md"
                assert anchor == f"service-{service_name}" and anchor in _anchors(runbook)
                rollback = [a for a in service["Resources"].values() if a["Type"] in (
                    "AWS::ECS::Service", "AWS::CodeDeploy::DeploymentGroup")]
                watched = json.dumps(rollback)
                rolls_back = json.dumps({"Ref": _logical(service, alarm)}) in watched
                assert ("rolled back by itself" in message) == rolls_back, message


def _logical(service: dict[str, Any], alarm: dict[str, Any]) -> str:
    return next(k for k, r in service["Resources"].items() if r.get("Properties") is alarm)


# Log streams as ECS and Lambda name them: which release each belongs to, for the patterns below.
ECS_STREAMS = {"1.4.2/api/0f3a9c": "1.4.2", "1.4.20/api/77aa01": "1.4.20", "11.4.2/api/12ab34": "11.4.2",
               "1x4y2/api/ffffff": "other", "2.0.0-rc.1+b.7/api/0a0b0c": "2.0.0-rc.1+b.7",
               "2.0.0-rc.1/api/0a0b0d": "2.0.0-rc.1", "x1.4.2/api/000000": "other"}
LAMBDA_STREAMS = {"2026/12/02/[7]3f1a2b4c5d6e4f70": "7", "2026/12/02/[17]aa": "17", "2026/12/02/[$LATEST]bb": "$LATEST",
                  "2026/12/01/[71]cc": "71", "2026/12/03/[9]dd": "9", "x2026/12/03/[9]dd": "other"}


def _insights(pattern: str) -> re.Pattern[str]:
    """A Logs Insights regular expression (RE2 syntax: the subset these patterns use means the same in Python)."""
    assert not re.search(r"\(\?|\\[pPk]", pattern)  # nothing whose meaning differs between the two
    return re.compile(pattern)


@pytest.mark.parametrize("version", ["1.4.2", "1.4.20", "11.4.2", "2.0.0-rc.1+b.7", "2.0.0-rc.1"])
def test_the_ecs_pattern_matches_exactly_one_releases_streams(version: str) -> None:
    pattern = _insights(names.release_streams("web", version))
    assert {s for s in ECS_STREAMS if pattern.search(s)} == {s for s, v in ECS_STREAMS.items() if v == version}
    query = names.logs_query(names.release_streams("worker", version))
    assert query == (f"fields @timestamp, @logStream, @message | filter @logStream like "
                     f"/{names.release_streams('worker', version)}/ | sort @timestamp desc | limit 200")


@pytest.mark.parametrize("numbers", [("7",), ("7", "9"), ("71",)])
def test_the_lambda_pattern_matches_exactly_the_function_versions_of_a_release(numbers: tuple[str, ...]) -> None:
    pattern = _insights(names.release_streams("lambda", "1.4.2", numbers))
    assert {s for s in LAMBDA_STREAMS if pattern.search(s)} == {s for s, v in LAMBDA_STREAMS.items() if v in numbers}


def test_ecs_tasks_log_under_their_release(built: dict[str, Path]) -> None:
    for path in sorted((built["example"] / "generated/cloudformation/services").glob("*.yaml")):
        template = _template(path)
        if "TaskDefinition" in template["Resources"]:
            (container,) = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
            assert container["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == {"Ref": "Version"}


def test_every_service_tells_opentelemetry_its_release(built: dict[str, Path]) -> None:
    """Every span, metric and log record an OpenTelemetry SDK (or the ADOT layer) makes carries the service, the
    release running (the stack's Version, which each release rewrites) and the environment."""
    for folder in built.values():
        for name, service in _services(folder).items():
            resources = service["Resources"]
            if "TaskDefinition" in resources:
                (container,) = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]
                given = {v["Name"]: v["Value"] for v in container["Environment"]}
            else:
                given = resources["Function"]["Properties"]["Environment"]["Variables"]
            text = substitute(sub_text(given["OTEL_RESOURCE_ATTRIBUTES"]), {"Version": "1.4.2", "Environment": "prod"})
            assert dict(pair.split("=") for pair in text.split(",")) == {
                "service.name": name, "service.version": "1.4.2", "deployment.environment.name": "prod"}


def test_a_service_without_alarms_gets_no_alarm_widget_which_cloudwatch_would_refuse(built: dict[str, Path]) -> None:
    from pipec.plan.dashboard import plan_dashboard

    plan = compile_spec(built["example"] / "pipeline.yaml").plan
    quiet = tuple(s._replace(alarms=()) if s.name == "worker" else s for s in plan.services)
    text = plan_dashboard(plan.project, 0, quiet).body
    body = json.loads(substitute(text, dict.fromkeys(re.findall(r"\$\{([A-Za-z0-9:]+)\}", text), "x")))
    _check_layout(body["widgets"])
    titles = [w["properties"].get("title") for w in body["widgets"] if w["type"] == "alarm"]
    assert titles == [f"{s.name}: alarms" for s in quiet if s.name != "worker"]
