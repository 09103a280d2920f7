"""Plan stage, dashboards: the CloudWatch dashboard of each environment and region, as data.

A row per service: what it is and the release and commit it runs (parameters of the dashboard's stack, which
pipec deploy and rollback fill from the service stacks), its alarms, and its golden signals from the metrics AWS
publishes for its resources: traffic, errors, latency and saturation where its kind has them. The metrics are
named with the dimensions the service's alarms use; a load balancer's and target group's full names are only known
once its stack exists, so they are parameters too.

The body is CloudFormation !Sub text of compact JSON, one widget per line (readable in a pull request's diff).
Every value in it is a pipec name or a parameter whose pattern keeps it plain text, so no substitution can break
the JSON.
"""

from __future__ import annotations

import json
from typing import Any

from pipec.plan import names
from pipec.plan.model import CLOUDFORMATION, DashboardPlan, Parameter, ServicePlan

# CloudFormation takes a template of at most 51,200 bytes in a request: a dashboard holds the services whose rows
# and parameters fit in this many bytes of it (some 3 KB a service), and the next ones go on another dashboard.
DASHBOARD_BYTES = 40_000
PARAMETER_BYTES = 300  # what one parameter's declaration takes in the template, at most
ROW = 6  # height of a service's row
NONE = "none"  # what a parameter says of a service whose stack does not exist (yet) in that region

_VERSION = r"^(none|[0-9A-Za-z.+-]+)$"
_COMMIT = r"^(none|[0-9a-f]{7,40})$"
_LOAD_BALANCER = r"^(none|app/[A-Za-z0-9-]+/[0-9A-Za-z]+)$"
_TARGET_GROUP = r"^(none|targetgroup/[A-Za-z0-9-]+/[0-9A-Za-z]+)$"


def plan_dashboards(project: str, services: tuple[ServicePlan, ...]) -> tuple[DashboardPlan, ...]:
    """The dashboards that show the services, in the spec's order, each as many as fit in one template."""
    groups: list[list[ServicePlan]] = [[]]
    size = 0
    for service in services:
        held = dict(service.dashboard_keys)
        # as the template's compact JSON will hold it: the body's JSON quoted as one string
        row = len(json.dumps(json.dumps(_row(service, held, 0)))) + PARAMETER_BYTES * len(held)
        if groups[-1] and size + row > DASHBOARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(service)
        size += row
    return tuple(plan_dashboard(project, i, tuple(group)) for i, group in enumerate(groups))


def _part(index: int) -> str:
    """What tells the index-th dashboard's names from the first's: nothing, -2, -3, ..."""
    return f"-{index + 1}" if index else ""


def unit(index: int) -> str:
    """The stack name part and template name of the index-th dashboard (dashboard, dashboard-2, ...)."""
    return f"dashboard{_part(index)}"


def dashboard_name(project: str, index: int) -> str:
    return names.dashboard(project, names.ENV, names.REGION) + _part(index)


def keys(service: ServicePlan, logical: str) -> dict[str, str]:
    """The dashboard parameters of one service, by what they hold."""
    found = {"version": f"{logical}Version", "commit": f"{logical}Commit"}
    if service.kind == "web":
        found |= {"load_balancer": f"{logical}LoadBalancer", "target_group": f"{logical}TargetGroup"}
    return found


def plan_dashboard(project: str, index: int, services: tuple[ServicePlan, ...]) -> DashboardPlan:
    name = dashboard_name(project, index)
    parameters = [Parameter("Environment", "String", "Environment name (only used in names).", r"^[a-z][a-z0-9-]*$")]
    widgets = [_header(project, index)]
    for row, service in enumerate(services):
        held = dict(service.dashboard_keys)
        parameters += [_parameter(key, what, service.name) for what, key in held.items()]
        widgets += _row(service, held, 2 + row * ROW)
    body = '{"widgets":[\n' + ",\n".join(json.dumps(w, separators=(",", ":")) for w in widgets) + "\n]}"
    return DashboardPlan(unit(index), f"{CLOUDFORMATION}/{unit(index)}.yaml", tuple(s.name for s in services),
                         name, tuple(parameters), body)


def _parameter(key: str, what: str, service: str) -> Parameter:
    described = {"version": ("the release it runs, set by pipec deploy", _VERSION),
                 "commit": ("the commit of that release, set by pipec deploy", _COMMIT),
                 "load_balancer": ("its load balancer's full name, set by pipec deploy", _LOAD_BALANCER),
                 "target_group": ("its target group's full name, set by pipec deploy", _TARGET_GROUP)}
    text, pattern = described[what]
    return Parameter(key, "String", f"{service}: {text} ({NONE}: not deployed here).", pattern, default=NONE)


def _header(project: str, index: int) -> dict[str, Any]:
    part = f" (part {index + 1})" if index else ""
    text = (f"# {project} in ${{Environment}}, ${{AWS::Region}}{part}\n"
            "The release and commit each service runs, its alarms, and its traffic, errors, latency and "
            "saturation. `pipec status` shows the same versions; `pipec logs` shows one release's logs.")
    return {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {"markdown": text}}


def _row(service: ServicePlan, held: dict[str, str], y: int) -> list[dict[str, Any]]:
    kind = {"web": "ECS service behind a load balancer", "worker": "ECS worker",
            "lambda": "Lambda function (live alias)"}[service.kind]
    text = (f"### {service.name}\n{kind}\n\nrelease **${{{held['version']}}}**, commit "
            f"`${{{held['commit']}}}`\n\n[runbook]({service.runbook})")
    alarms = [names.arn("cloudwatch", f"alarm:{a.name}", region=names.REGION) for a in service.alarms]
    widgets: list[dict[str, Any]] = [
        {"type": "text", "x": 0, "y": y, "width": 4, "height": 3 if alarms else ROW, "properties": {"markdown": text}}]
    if alarms:  # CloudWatch refuses a body whose alarm widget lists none (or more than 100)
        widgets.append({"type": "alarm", "x": 0, "y": y + 3, "width": 4, "height": 3,
                        "properties": {"title": f"{service.name}: alarms", "alarms": alarms[:100]}})
    for column, (signal, metrics) in enumerate(_signals(service, held)):
        widgets.append({"type": "metric", "x": 4 + column * 5, "y": y, "width": 5, "height": ROW, "properties": {
            "title": f"{service.name}: {signal}", "region": names.REGION, "view": "timeSeries", "period": 60,
            "metrics": metrics}})
    return widgets


def _signals(service: ServicePlan, held: dict[str, str]) -> list[tuple[str, list[list[Any]]]]:
    """The golden signals of a service: (title, metrics), each metric [namespace, name, dimensions..., options]."""
    function = ["FunctionName", service.sub_name]
    alias = [*function, "Resource", f"{service.sub_name}:live"]
    ecs = ["ClusterName", service.sub_name, "ServiceName", service.name]
    usage = ("saturation", [["AWS/ECS", "CPUUtilization", *ecs, _stat("Average", "CPU %")],
                            ["AWS/ECS", "MemoryUtilization", *ecs, _stat("Average", "memory %")]])
    if service.kind == "lambda":
        return [
            ("traffic", [["AWS/Lambda", "Invocations", *alias, _stat("Sum", "invocations")]]),
            ("errors", [["AWS/Lambda", "Errors", *alias, _stat("Sum", "errors")],
                        ["AWS/Lambda", "Throttles", *alias, _stat("Sum", "throttles")]]),
            ("latency", [["AWS/Lambda", "Duration", *alias, _stat("p50", "p50 ms")],
                         ["AWS/Lambda", "Duration", *alias, _stat("p99", "p99 ms")]]),
            ("saturation", [["AWS/Lambda", "ConcurrentExecutions", *function, _stat("Maximum", "concurrent")]]),
        ]
    if service.kind == "worker":
        return [("tasks", [["ECS/ContainerInsights", "RunningTaskCount", *ecs, _stat("Average", "running")],
                           ["ECS/ContainerInsights", "DesiredTaskCount", *ecs, _stat("Average", "desired")]]),
                usage]
    balancer = ["LoadBalancer", f"${{{held['load_balancer']}}}"]
    group = [*balancer, "TargetGroup", f"${{{held['target_group']}}}"]
    return [
        ("traffic", [["AWS/ApplicationELB", "RequestCount", *group, _stat("Sum", "requests")]]),
        ("errors", [["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", *group, _stat("Sum", "5xx from tasks")],
                    ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", *balancer, _stat("Sum", "5xx from the load "
                                                                                      "balancer")]]),
        ("latency", [["AWS/ApplicationELB", "TargetResponseTime", *group, _stat("p50", "p50 s")],
                     ["AWS/ApplicationELB", "TargetResponseTime", *group, _stat("p99", "p99 s")]]),
        usage,
    ]


def _stat(statistic: str, label: str) -> dict[str, str]:
    return {"stat": statistic, "label": label}


def console_url(name: str, region: str) -> str:
    """The console page of a dashboard (its name in one environment and region)."""
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"
