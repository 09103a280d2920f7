"""Emit stage: what a change of pipeline.yaml does, read the way a reviewer wants it (`pipec diff`).

Compares two generated trees (path -> text): per environment and region, per stack, the resources added,
removed and changed (a structural diff of the parsed templates), the parameter values changed; per workflow,
the jobs and triggers changed; and which other files changed. Decides no content.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pipec.render import conditions
from pipec.render.output import Output
from pipec.render.parse import parse

Tree = dict[str, str]
_PARAMETERS = "cloudformation/parameters/"
_ADMINISTERED = ("bootstrap", "network")  # the stacks only an administrator's `pipec bootstrap` changes


@dataclass(frozen=True)
class Change:
    kind: str  # added | removed | changed
    what: str
    detail: str = ""


@dataclass(frozen=True)
class StackDiff:
    env: str
    region: str
    stack: str
    status: str  # added | removed | changed
    template: list[Change] = field(default_factory=list)
    parameters: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class WorkflowDiff:
    file: str
    status: str
    triggers: list[Change] = field(default_factory=list)
    jobs: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    stacks: list[StackDiff]
    workflows: list[WorkflowDiff]
    files: list[Change]
    # environments whose bootstrap or network stack changes: an administrator's `pipec bootstrap` before merging
    bootstrap: list[str] = field(default_factory=list)
    # environments that lose a service stack: it keeps running until an administrator's `pipec prune --apply`
    prune: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.stacks or self.workflows or self.files)


def compare(old: Tree, new: Tree) -> Report:
    """The reviewer's view of the difference between two generated trees."""
    old_parsed = {path: _parse(path, text) for path, text in old.items()}
    new_parsed = {path: _parse(path, text) for path, text in new.items()}
    stacks = _stacks(old, new, old_parsed, new_parsed)
    workflows = _workflows(old_parsed, new_parsed)
    covered = {p for p in (*old, *new) if "cloudformation/" in p or _is_workflow(
        old_parsed.get(p) if p in old_parsed else new_parsed.get(p))}
    files = [Change(_status(old.get(p), new.get(p)), p) for p in sorted({*old, *new} - covered)
             if old.get(p) != new.get(p) and not p.endswith("manifest.json")]
    bootstrap = sorted({s.env for s in stacks if s.stack in _ADMINISTERED and s.status != "removed"})
    prune = sorted({s.env for s in stacks if s.stack not in _ADMINISTERED and s.status == "removed"})
    return Report(stacks, workflows, files, bootstrap, prune)


def _parse(path: str, text: str) -> Any:
    if not path.endswith((".yaml", ".yml", ".json")):
        return None
    try:
        return parse(Output(path, text))
    except Exception:  # a hand-broken file on disk still shows up as changed
        return None


def _status(old: object, new: object) -> str:
    return "added" if old is None else "removed" if new is None else "changed"


# ---------------------------------------------------------------- stacks


def _stacks(old: Tree, new: Tree, old_parsed: dict[str, Any], new_parsed: dict[str, Any]) -> list[StackDiff]:
    result = []
    files = sorted({p for p in (*old, *new) if _PARAMETERS in p and p.endswith(".json")})
    for path in files:
        env, region, unit = PurePosixPath(path.split(_PARAMETERS, 1)[1]).with_suffix("").parts
        # the shared stacks' templates (bootstrap, network, the dashboards) sit beside services/, whose names
        # no service may take (PC219)
        folder = path.split(_PARAMETERS, 1)[0] + "cloudformation/"
        shared = f"{folder}{unit}.yaml"
        template = shared if shared in old or shared in new else f"{folder}services/{unit}.yaml"
        before, after = old_parsed.get(path), new_parsed.get(path)
        status = _status(before, after)
        # an added (or removed) stack shows every resource and parameter it brings (or takes away)
        template_changes = _template(_made(old_parsed.get(template), before, region) if before is not None else None,
                                     _made(new_parsed.get(template), after, region) if after is not None else None)
        parameter_changes = _parameters(before, after)
        if status != "changed" or template_changes or parameter_changes:
            result.append(StackDiff(env, region, unit, status, template_changes, parameter_changes))
    return sorted(result, key=lambda s: (s.env, s.region, s.stack))


def _made(template: Any, parameters: Any, region: str) -> Any:
    """A stack's template with only the resources it makes with its parameter values in its region (a
    repository of the build registry is no change to another environment's bootstrap)."""
    if not isinstance(template, dict) or not isinstance(parameters, list):
        return template
    values = {str(p.get("ParameterKey")): str(p.get("ParameterValue")) for p in parameters if isinstance(p, dict)}
    return {**template, "Resources": conditions.Stack(template, values, region).resources()}


def _template(old: Any, new: Any) -> list[Change]:
    # a stack that comes or goes: its resources and outputs (its parameters show with their values)
    sections = ("Parameters", "Resources", "Outputs") if old is not None and new is not None else (
        "Resources", "Outputs")
    old, new = old or {}, new or {}
    changes = []
    for section in sections:
        before, after = old.get(section) or {}, new.get(section) or {}
        noun = section[:-1].lower()
        for name in sorted({*before, *after}):
            a, b = before.get(name), after.get(name)
            if a == b:
                continue
            present: dict[str, Any] = b if isinstance(b, dict) else a if isinstance(a, dict) else {}
            label = f"{noun} {name}" + (f" ({present.get('Type')})" if section == "Resources" else "")
            if a is None or b is None:
                changes.append(Change(_status(a, b), label))
            else:
                changes.append(Change("changed", label, ", ".join(_differing_keys(a, b))))
    return changes


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the (at most two levels deep) keys whose values differ."""
    if not (isinstance(a, dict) and isinstance(b, dict)) or prefix.count(".") >= 2:
        return [prefix.rstrip(".") or "value"]
    keys = []
    for key in sorted({*a, *b}):
        if a.get(key) != b.get(key):
            keys += _differing_keys(a.get(key), b.get(key), f"{prefix}{key}.")
    return keys


def _parameters(old: Any, new: Any) -> list[Change]:
    before = {p["ParameterKey"]: p["ParameterValue"] for p in old or []}
    after = {p["ParameterKey"]: p["ParameterValue"] for p in new or []}
    changes = []
    for key in sorted({*before, *after}):
        a, b = before.get(key), after.get(key)
        if a != b:
            shown = f"{'-' if a is None else a} -> {'-' if b is None else b}"
            changes.append(Change(_status(a, b), key, shown))
    return changes


# ---------------------------------------------------------------- workflows


def _is_workflow(data: Any) -> bool:
    return isinstance(data, dict) and "jobs" in data and "on" in data


def _workflows(old: dict[str, Any], new: dict[str, Any]) -> list[WorkflowDiff]:
    result = []
    for path in sorted({p for p, d in (*old.items(), *new.items()) if _is_workflow(d)}):
        a, b = old.get(path), new.get(path)
        status = _status(a, b)
        if a == b:
            continue
        triggers = _keyed((a or {}).get("on"), (b or {}).get("on"), "trigger") if status == "changed" else []
        jobs = _keyed((a or {}).get("jobs"), (b or {}).get("jobs"), "job") if status == "changed" else []
        result.append(WorkflowDiff(path, status, triggers, jobs))
    return result


def _keyed(a: Any, b: Any, noun: str) -> list[Change]:
    a = a if isinstance(a, dict) else {}
    b = b if isinstance(b, dict) else {}
    return [Change(_status(a.get(k), b.get(k)), f"{noun} {k}", "; ".join(_values(a.get(k), b.get(k))))
            for k in sorted({*a, *b}) if a.get(k) != b.get(k)]


def _values(a: Any, b: Any) -> list[str]:
    """What changed in a job or trigger, with the old and the new value: `timeout-minutes: 60 -> 90`."""
    if a is None or b is None:
        return []
    return [f"{key}: {_short(old)} -> {_short(new)}" for key, old, new in _leaves(a, b)]


def _leaves(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, old, new) of the innermost values that differ: mappings by key, lists of the same length
    by position (steps.2.run), anything else whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted({*a, *b})
        return [leaf for k in keys if a.get(k) != b.get(k) for leaf in _leaves(a.get(k), b.get(k), f"{prefix}{k}.")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [leaf for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y
                for leaf in _leaves(x, y, f"{prefix}{i}.")]
    return [(prefix.rstrip(".") or "value", a, b)]


def _short(value: Any, most: int = 200) -> str:
    text = "-" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= most else text[:most - 3] + "..."


# ---------------------------------------------------------------- formats

_MARK = {"added": "+", "removed": "-", "changed": "~"}


def _line(change: Change) -> str:
    return f"{_MARK[change.kind]} {change.what}" + (f": {change.detail}" if change.detail else "")


def format_text(report: Report) -> str:
    if report.empty:
        return "pipec diff: no changes\n"
    lines = [f"NEEDS AN ADMINISTRATOR: {_bootstrap_line(env)}" for env in report.bootstrap]
    lines += [f"AFTER MERGING: {_prune_line(env)}" for env in report.prune]
    for stack in report.stacks:
        lines.append(f"{stack.env} {stack.region} {stack.stack}: stack {stack.status}")
        lines += [f"    {_line(c)}" for c in [*stack.template, *stack.parameters]]
    for workflow in report.workflows:
        lines.append(f"workflow {workflow.file}: {workflow.status}")
        lines += [f"    {_line(c)}" for c in [*workflow.triggers, *workflow.jobs]]
    lines += [f"{_line(c)}" for c in report.files]
    return "\n".join(lines) + "\n"


def format_markdown(report: Report) -> str:
    lines = ["## What this change does to the pipeline", ""]
    if report.empty:
        return "\n".join([*lines, "No change to any environment, workflow or generated file.", ""])
    if report.bootstrap or report.prune:
        lines += ["> [!IMPORTANT]", *[f"> {_bootstrap_line(env)}" for env in report.bootstrap],
                  *[f"> {_prune_line(env)}" for env in report.prune], ""]
    by_env: dict[str, list[StackDiff]] = {}
    for stack in report.stacks:
        by_env.setdefault(stack.env, []).append(stack)
    for env, stacks in by_env.items():
        lines += [f"### {env}", "", "| region | stack | change |", "|---|---|---|"]
        for stack in stacks:
            details = [_line(c).replace("|", "\\|") for c in [*stack.template, *stack.parameters]]
            lines.append(f"| {stack.region} | {stack.stack} | {stack.status}"
                         + ("<br>" + "<br>".join(f"`{d}`" for d in details) if details else "") + " |")
        lines.append("")
    if report.workflows:
        lines += ["### Workflows", ""]
        for workflow in report.workflows:
            lines.append(f"- `{workflow.file}` {workflow.status}")
            lines += [f"  - `{_line(c)}`" for c in [*workflow.triggers, *workflow.jobs]]
        lines.append("")
    if report.files:
        lines += ["### Other generated files", ""] + [f"- `{_line(c)}`" for c in report.files] + [""]
    return "\n".join(lines)


def _bootstrap_line(env: str) -> str:
    return (f"{env}'s bootstrap or network stack changes: it needs `pipec bootstrap --env {env}` with administrator "
            "credentials before this is merged (the release's deploys cannot change those stacks, and refuse to "
            "start without what they need)")


def _prune_line(env: str) -> str:
    return (f"{env} loses a service stack: nothing deletes the live stack, which keeps running (and billing) until "
            f"an administrator runs `pipec prune --env {env} --apply` after this is merged")


def format_json(report: Report) -> str:
    return json.dumps(asdict(report), indent=2) + "\n"
