"""Stage 4, render: Plan -> Outputs (path, text), through the Jinja2 templates shipped in pipec.templates.

Every value from the spec passes through one YAML-safe filter (`y`, JSON-quoted); GitHub expressions are
written with `gh(...)` so Jinja's {{ }} and GitHub's ${{ }} never mix. Each YAML and JSON file is parsed back
before it leaves this stage. Must not read the spec or the disk (beyond the packaged templates).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from pipec import __version__
from pipec.diagnostics import Diagnostic, PipecError
from pipec.plan import dashboard, names
from pipec.plan.model import ACTIONS, CLOUDFORMATION, GENERATED, OIDC_HOST, PYTHON_VERSION, Plan, Stack
from pipec.plan.plan import camel
from pipec.render.output import Output, header
from pipec.render.parse import check_syntax, parse, template_body
from pipec.validate import contract
from pipec.validate.facts import TEMPLATE_BODY_BYTES
from pipec.validate.spec import ROLLBACK_VERSION

if TYPE_CHECKING:
    import jinja2


def render(plan: Plan) -> list[Output]:
    """Every generated file of a plan, parsed back and checked by pipec's own guards."""
    from pipec.render import guards
    from pipec.validate.schema import packaged_schema

    outputs = [Output(f"{GENERATED}/pipeline.schema.json", packaged_schema())]
    outputs += _cloudformation(plan)
    outputs += _workflows(plan)
    outputs += _docs(plan)
    outputs = [Output(a.path, header(a.path) + a.text) for a in outputs]
    _unique_paths(outputs)
    _fit_requests(plan, outputs)
    read = guards.reads(plan)
    for output in outputs:
        if output.path not in read:
            check_syntax(output)
    guards.check(plan, {a.path: parse(a) for a in outputs if a.path in read})
    return outputs


def _unique_paths(outputs: list[Output]) -> None:
    """Two files on one path would leave only one of them on disk: a bug, never a silent overwrite."""
    counts = Counter(a.path for a in outputs)
    repeated = sorted(path for path, n in counts.items() if n > 1)
    if repeated:
        raise PipecError([Diagnostic("PC309", f"{len(repeated)} generated path(s) are made twice: "
                                     f"{', '.join(repeated[:3])}", hint="a bug in pipec: please report it")])


def _fit_requests(plan: Plan, outputs: list[Output]) -> None:
    """pipec hands every template to CloudFormation inside the request (as compact JSON), which takes at most
    51,200 bytes: a larger one would fail at deploy time, so the build refuses it now (exit 1: the spec asks for
    too much). Only a template whose YAML is over the limit is converted to measure it, and the dashboards (whose
    JSON body grows when quoted)."""
    services = {s.template: s.name for s in plan.services}
    dashboards = {d.template for d in plan.dashboards}  # their JSON body, quoted once more, outgrows the YAML
    found = []
    for output in outputs:
        if not (output.path.startswith(CLOUDFORMATION + "/") and output.path.endswith(".yaml")) or (len(
                output.text.encode("utf-8")) <= TEMPLATE_BODY_BYTES and output.path not in dashboards):
            continue
        size = len(template_body(output.text).encode("utf-8"))
        if size > TEMPLATE_BODY_BYTES:
            if output.path in dashboards:
                hint = "a bug in pipec: a dashboard holds only the services that fit; please report it"
            elif output.path in services:
                hint = (f'the plain `env` and `config` values of service "{services[output.path]}" are written '
                        "into it: keep large ones in SSM or Secrets Manager and name them under `secrets:`")
            else:
                hint = ("every container-image artifact adds an ECR repository to it: share images between "
                        "services, or split the repository")
            found.append(Diagnostic("PC308", f"this template would take {size:,} bytes; CloudFormation accepts at "
                                    f"most {TEMPLATE_BODY_BYTES:,} in a request", output.path, hint=hint))
    if found:
        raise PipecError(found)


def _cloudformation(plan: Plan) -> list[Output]:
    files = [Output(f"{CLOUDFORMATION}/bootstrap.yaml", template("cloudformation/bootstrap.yaml.j2", plan=plan))]
    if any(env.network for env in plan.environments):  # a network only where a service runs in a VPC
        files.append(Output(f"{CLOUDFORMATION}/network.yaml", template("cloudformation/network.yaml.j2", plan=plan)))
    for service in plan.services:
        name = "lambda" if service.kind == "lambda" else "ecs"
        files.append(Output(service.template, template(f"cloudformation/{name}.yaml.j2", plan=plan,
                                                         service=service)))
    files += [Output(d.template, template("cloudformation/dashboard.yaml.j2", plan=plan, dashboard=d))
              for d in plan.dashboards]
    stacks = [s for env in plan.environments for s in (*env.bootstrap, *env.network, *env.dashboards)]
    stacks += [s for service in plan.services for s in service.stacks]
    files += [Output(s.parameter_file, parameter_file(s)) for s in stacks]
    return files


def parameter_file(stack: Stack) -> str:
    """A parameter file in the AWS CLI format: [{"ParameterKey": ..., "ParameterValue": ...}]."""
    items = [{"ParameterKey": key, "ParameterValue": value} for key, value in stack.values]
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


def _workflows(plan: Plan) -> list[Output]:
    folder = plan.workflows_dir
    names = ["release", "rollback", "sanity", "pull-request"]
    if plan.sanity is None:
        names.remove("sanity")
    files = [Output(f"{folder}/{name}.yml", template(f"github/{name}.yml.j2", plan=plan)) for name in names]
    files += [Output(f"{folder}/{env.stage_workflow}", template("github/stage.yml.j2", plan=plan, env=env))
              for env in plan.environments]
    return files


def _docs(plan: Plan) -> list[Output]:
    files = [Output(f"{GENERATED}/README.md", template("docs/README.md.j2", plan=plan, diagram=mermaid(plan)))]
    files += [Output(names.runbook_path(GENERATED, env.name), template("docs/runbook.md.j2", plan=plan, env=env))
              for env in plan.environments]
    return files


def mermaid(plan: Plan) -> str:
    """A Mermaid flowchart of the pipeline, made from the plan (GitHub renders it in the README)."""
    lines = ["flowchart LR", f'  push(["push to {plan.branch}"]) --> version["version and tag"]']
    for artifact in plan.artifacts:
        node = _node("build", artifact.name)
        lines += [f'  version --> {node}["build {artifact.name}"]', f"  {node} --> bundle"]
    lines.append('  bundle["release bundle"]')
    previous = "bundle"
    services = ", ".join(service.name for service in plan.services)
    for env in plan.environments:
        deploy, e2e = _node("deploy", env.name), _node("e2e", env.name)
        if env.approval:
            gate = _node("approve", env.name)
            lines.append(f'  {previous} --> {gate}{{"approval {env.name}"}}')
            previous = gate
        lines.append(f'  {previous} --> {deploy}["deploy {env.name}<br/>{", ".join(env.regions)}<br/>{services}"]')
        previous = deploy
        if plan.e2e:
            lines.append(f'  {deploy} --> {e2e}["e2e {env.name}"]')
            previous = e2e
    lines.append('  rollback(["rollback workflow"])')
    lines += [f"  rollback -.-> {_node('deploy', env.name)}" for env in plan.environments]
    if plan.sanity:
        lines.append(f'  sanity(["sanity checks {plan.sanity["schedule"]}"])')
        lines += [f"  sanity -.-> {_node('deploy', env.name)}" for env in plan.environments]
    return "\n".join(lines)


def _node(kind: str, name: str) -> str:
    return f"{kind}_{name.replace('-', '_')}"


# ---------------------------------------------------------------- Jinja


def template(name: str, **context: Any) -> str:
    return _environment().get_template(name).render(**context)


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("pipec.templates"))),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["y"] = yaml_value
    env.filters["sub"] = lambda text: "!Sub " + yaml_value(text)
    env.filters["sub_json"] = sub_json
    env.filters["sub_block"] = sub_block
    env.filters["camel"] = camel
    env.filters["gy"] = workflow_value
    env.filters["cf"] = cloudformation_value
    env.globals["gh"] = github_expression
    env.globals["oidc_host"] = OIDC_HOST
    env.globals["build_environment"] = names.BUILD_ENVIRONMENT
    env.globals["uses"] = uses
    env.globals["concurrency_group"] = names.concurrency_group
    env.globals["workflow_group"] = names.workflow_group
    env.globals["tag"] = names.tag
    env.globals["sanity_check_name"] = names.sanity_check_name
    env.globals["rollback_version"] = ROLLBACK_VERSION
    env.globals["version_variable"] = contract.VERSION_VARIABLE
    env.globals["environment_variable"] = contract.ENVIRONMENT_VARIABLE
    env.globals["telemetry_variable"] = contract.TELEMETRY_VARIABLE
    env.globals["secret_variable"] = contract.secret_variable
    env.globals["python_version"] = PYTHON_VERSION
    env.globals["release_logs_query"] = lambda kind, version: names.logs_query(names.release_streams(kind, version))
    env.globals["in_region"] = names.in_region
    env.globals["ecs_log_stream"] = names.ecs_log_stream
    env.globals["example_version"] = "1.4.2"
    env.globals["dashboard_url"] = dashboard.console_url
    return env


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates cached per user and pipec version (like __pycache__), when a cache folder is usable."""
    import jinja2

    if os.environ.get("PIPEC_NO_CACHE"):
        return None
    base = os.environ.get("PIPEC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pipec")
    folder = os.path.join(base, f"jinja-{__version__}")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(folder) if os.access(folder, os.W_OK) else None


# Characters that YAML refuses or reads as line breaks even inside quotes; JSON leaves them unescaped.
_NOT_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def yaml_value(value: Any) -> str:
    """Any spec value as a YAML scalar that cannot break or inject into its document (JSON is YAML)."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    text = json.dumps(value, ensure_ascii=False)
    return _NOT_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def sub_json(value: Any, indent: int) -> str:
    """A document (a policy) as JSON text inside `Fn::Sub`, for the properties that take a string; a literal
    block indented below a key at `indent`. ASCII only, so nothing in it can break the block."""
    return _literal(json.dumps(value, indent=2), indent, "|")


def sub_block(text: str, indent: int) -> str:
    """Text made by the plan as JSON (ASCII, no control characters: nothing in it can break the block) inside
    `Fn::Sub`, as a literal block indented below a key at `indent`."""
    return _literal(text, indent, "|-")


def _literal(text: str, indent: int, style: str) -> str:
    if not text.isascii() or any(ord(c) < 32 and c != "\n" for c in text):
        raise ValueError("a literal block holds printable ASCII only")
    return f"!Sub {style}\n" + "\n".join(" " * (indent + 2) + line for line in text.splitlines())


def cloudformation_value(value: str) -> str:
    """A literal string inside a template. `${` would read as a substitution, so such a string is joined from
    parts that split every `$` from its `{` (Fn::Join of literals is exactly the text)."""
    if "${" in value:
        return "!Join " + yaml_value(["", value.replace("${", "$\0{").split("\0")])
    return yaml_value(value)


def workflow_value(value: Any) -> str:
    """A spec value inside a workflow: YAML-safe, and `${{` can no longer start a GitHub expression."""
    if isinstance(value, str):
        value = value.replace("${{", "${{ '${{' }}")
    return yaml_value(value)


def uses(action: str) -> str:
    """`owner/repo@sha # vX.Y.Z` for an action pipec's workflows use."""
    repository, sha, version = ACTIONS[action]
    return f"{repository}@{sha} # {version}"


def github_expression(expression: str) -> str:
    """A GitHub Actions expression, e.g. gh("github.sha") -> ${{ github.sha }}."""
    return "${{ " + expression + " }}"
