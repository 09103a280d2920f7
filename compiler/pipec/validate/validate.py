"""Stage 2, validate: Document -> Spec, or every problem as a located Diagnostic.

Runs the pydantic models (shape and types), then the semantic rules (references, policies). Text the user
wrote where the schema wants a string (`account: 012345678901`, `version: 1.10`) is kept as written.
Must not render or write anything.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, Literal, NamedTuple, Union

from pydantic import BaseModel, ValidationError

from pipec.diagnostics import Diagnostic, PipecError, Severity, errors, quote
from pipec.load.load import Document, SpecPath
from pipec.validate.spec import NAME, PATTERN_NAMES, REPOSITORY, Spec, whole
from pipec.validate.suggest import did_you_mean

_TEXT_COERCIONS = 3


class Validated(NamedTuple):
    """A valid spec, the document it came from (for positions) and any warnings."""

    spec: Spec
    document: Document
    warnings: tuple[Diagnostic, ...]


def validate(document: Document) -> Validated:
    """Check the document against the models and the rules; raise PipecError listing every problem.

    Where the models find errors, the rules still run on the rest of the spec (see `_recover`), so one run
    reports every independent problem, as a compiler does."""
    from pipec.validate import rules

    parsed = _parse(document, document.data)
    if isinstance(parsed, Spec):
        found = rules.check(parsed, document)
        if errors(found):
            raise PipecError(found)
        return Validated(parsed, document, tuple(found))
    kept = _without_follow_ons(_matching_arms(parsed), document)
    found = [_diagnostic(issue, document) for issue in kept]
    recovered = _recover(document, parsed)
    if recovered is not None:
        spec, pruned = recovered
        found += rules.check(spec, document, pruned=pruned)
    raise PipecError(found)


_SECTIONS = ("services", "artifacts", "environments")  # named entries, which recovery removes one at a time
# What stands in for a required top-level value the models refused; no rule reads one, except the project's
# length in PC218, which says so (`rules.RULES`).
_STAND_INS: dict[str, Any] = {"pipec": 1, "project": "myapp", "repository": "acme/myapp",
                              "alerts": {"email": ["alerts@example.com"]}}
_RECOVERY_ROUNDS = 4


def _recover(document: Document, issues: list[Any]) -> tuple[Spec, frozenset[SpecPath]] | None:
    """The spec without the parts the models refused, and which parts those were; None if no valid rest is left.

    The unit removed is the smallest one the rules can do without: a whole service, artifact or environment
    (`services.api`), else a whole top-level key (a required one gets a stand-in). A section that loses all its
    entries, or is itself refused, leaves nothing to check. A rule that looks entries up by name in a section
    that lost one must not speak (`rules.check`): "unknown artifact web" is not true of a misspelt artifact."""
    pruned: set[SpecPath] = set()
    for _ in range(_RECOVERY_ROUNDS):
        units = {_unit(data_path(document.data, issue["loc"])[0]) for issue in issues}
        if units <= pruned or any(len(u) < 2 and (not u or u[0] in _SECTIONS) for u in units):
            return None
        pruned |= units
        parsed = _parse(document, _without(document.data, pruned))
        if isinstance(parsed, Spec):
            return parsed, frozenset(pruned)
        issues = parsed
    return None


def _unit(path: SpecPath) -> SpecPath:
    return path[:2] if path and path[0] in _SECTIONS else path[:1]


def _without(data: dict[str, Any], paths: set[SpecPath]) -> dict[str, Any]:
    """A copy of the data without the given entries and top-level keys (the required ones stood in for)."""
    result: dict[str, Any] = _deep_copy(data)
    for path in paths:
        parent: Any = result[str(path[0])] if len(path) > 1 else result
        parent.pop(path[-1], None)
        if len(path) == 1 and path[0] in _STAND_INS:
            result[path[0]] = _deep_copy(_STAND_INS[path[0]])
    return result


def _parse(document: Document, data: Any) -> Spec | list[Any]:
    """The Spec the data describes, or pydantic's issues with it (text YAML read as numbers kept as text)."""
    for _ in range(_TEXT_COERCIONS):
        try:
            return Spec.model_validate(data)
        except ValidationError as exc:
            issues = exc.errors(include_url=False)
            coerced = _keep_text(data, issues, document)
            if coerced is None:
                return issues
            data = coerced
    raise PipecError([Diagnostic("PC103", "the spec could not be read", document.filename)])  # pragma: no cover


def _in_their_words(text: str, data: Any) -> str:
    """An example in a message, with the user's own project and repository owner (not the example's)."""
    top = data if isinstance(data, dict) else {}
    project, repository = top.get("project"), top.get("repository")
    mine = project if isinstance(project, str) and re.match(whole(NAME), project) else "myapp"
    owner = repository.split("/")[0] if isinstance(repository, str) and re.match(whole(REPOSITORY), repository) \
        else "acme"
    return text.replace("PROJECT", mine).replace("OWNER", owner)


_ARM_TYPES = ("string_type", "list_type")


def _matching_arms(issues: list[Any]) -> list[Any]:
    """For a value that may be text or a list (github.runner): only the errors of the arm that matches what was
    written, not "must be text" for a list whose one label is wrong."""
    def beside(issue: Any, other: Any) -> bool:
        return other is not issue and other["loc"][:len(issue["loc"]) - 1] == issue["loc"][:-1]
    return [i for i in issues if not (i["type"] in _ARM_TYPES and any(
        beside(i, o) and o["type"] not in _ARM_TYPES for o in issues))]


def _without_follow_ons(issues: list[Any], document: Document) -> list[Any]:
    """Drop "missing key K" where an unknown key beside it is a misspelling of K: one mistake, one error."""
    misspelt = set()
    for issue in issues:
        if issue["type"] == "extra_forbidden":
            path, _ = data_path(document.data, issue["loc"])
            close = difflib.get_close_matches(str(path[-1]), allowed_keys(document.data, path[:-1]), 1, 0.6)
            misspelt |= {(path[:-1], key) for key in close}
    result = []
    for issue in issues:
        if issue["type"] == "missing":
            path, _ = data_path(document.data, issue["loc"])
            if (path[:-1], path[-1]) in misspelt:
                continue
        result.append(issue)
    return result


def _keep_text(data: dict[str, Any], issues: list[Any], document: Document) -> dict[str, Any] | None:
    """Where a string was wanted but YAML read a number or boolean, use the text as written, or None."""
    fixes = {}
    for issue in issues:
        path, _ = data_path(document.data, issue["loc"])
        if issue["type"] == "string_type" and path in document.plain and document.plain[path] != "":
            fixes[path] = document.plain[path]
    if not fixes:
        return None
    result: dict[str, Any] = _deep_copy(data)
    for path, text in fixes.items():
        parent: Any = result
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = text
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def data_path(data: Any, loc: tuple[Any, ...]) -> tuple[SpecPath, bool]:
    """Map a pydantic error location to a path in the data (dropping union tags); True if it names a key."""
    path: list[str | int] = []
    node = data
    for step in loc:
        if step == "[key]":
            return tuple(path), True
        in_list = isinstance(node, list) and isinstance(step, int) and step < len(node)
        if (isinstance(node, dict) and step in node) or in_list:
            path.append(step)
            node = node[step]
        elif isinstance(node, dict) and isinstance(step, str) and not _is_tag(step):
            path.append(step)  # a missing or unknown key
            node = None
    return tuple(path), False


def _is_tag(step: str) -> bool:
    return step in ("ecs-fargate", "lambda", "container-image", "lambda-zip") or "[" in step


# ---------------------------------------------------------------- pydantic errors -> diagnostics

_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "list_type": "a list",
}


def _diagnostic(issue: Any, document: Document) -> Diagnostic:
    path, is_key = data_path(document.data, issue["loc"])
    kind = issue["type"]
    value = issue.get("input")
    where: str = describe_path(path)
    if kind == "extra_forbidden":
        return _unknown_key(path, document)
    if kind in ("missing", "union_tag_not_found"):
        name = issue["loc"][-1] if kind == "missing" else issue["ctx"]["discriminator"].strip("'")
        options = _literals(annotation_at(document.data, path)) if kind != "missing" else []
        hint = f"add `{name}: ...`" + (f" ({' or '.join(options)})" if options else "")
        parent = path[:-1] if kind == "missing" else path
        what = describe_path(parent) or "the spec"
        return document.diagnostic("PC102", parent, f"{what} is missing the required key `{name}`", hint,
                                   key=bool(parent))
    if kind in _EXPECTED:
        return document.diagnostic("PC103", path, f"{where} must be {_EXPECTED[kind]}, found {describe(value)}",
                                   _type_hint(kind, value))
    if kind == "union_tag_invalid":
        options = _literals(annotation_at(document.data, path))
        tag = issue["ctx"]["discriminator"].strip("'")
        return document.diagnostic("PC104", (*path, tag), f"{describe_path((*path, tag))} must be one of "
                                   f"{', '.join(options)}; found {describe(issue['ctx']['tag'])}",
                                   did_you_mean(str(issue["ctx"]["tag"]), options))
    if kind in ("literal_error", "enum"):
        options = allowed_values(document.data, path)
        shown = value
        return document.diagnostic("PC104", path, f"{where} must be one of {', '.join(options)}; "
                                   f"found {describe(shown)}", did_you_mean(str(shown), options))
    if kind == "string_pattern_mismatch":
        pattern = str(issue["ctx"]["pattern"]).removesuffix(r"\Z") + "$"  # as the constants spell it (spec.whole)
        name = _in_their_words(PATTERN_NAMES.get(pattern, f"text matching {pattern}"), document.data)
        secret = "secrets" in path[:-1]
        what = f"the name {quote(str(path[-1]))}" if is_key else (where or "the value") if secret else (
            f"{where} ({describe(value)})")
        hidden = "the value is hidden here because it may be a secret" if secret else None
        return document.diagnostic("PC104", path, f"{what} must be {name}", hidden, key=is_key, redact=secret)
    return document.diagnostic("PC104", path, f"{where} {_bound_message(kind, issue)}", None, key=is_key)


def _bound_message(kind: str, issue: Any) -> str:
    ctx = issue.get("ctx") or {}
    value = describe(issue.get("input"))
    messages = {
        "greater_than_equal": f"must be at least {ctx.get('ge')}, found {value}",
        "greater_than": f"must be more than {ctx.get('gt')}, found {value}",
        "less_than_equal": f"must be at most {ctx.get('le')}, found {value}",
        "less_than": f"must be less than {ctx.get('lt')}, found {value}",
        "too_short": f"needs at least {ctx.get('min_length')} item(s)",
        "too_long": f"allows at most {ctx.get('max_length')} items",
        "string_too_short": f"must have at least {ctx.get('min_length')} character(s)",
        "string_too_long": f"must have at most {ctx.get('max_length')} characters",
    }
    return messages.get(kind, str(issue.get("msg", "is not valid")).lower())


def _type_hint(kind: str, value: Any) -> str | None:
    if kind == "bool_type" and isinstance(value, str):
        return f'YAML 1.2 booleans are true and false; "{value}" is text'
    if value is None:
        return "write a value after the colon, or remove the key"
    if kind in ("int_type", "int_from_float") and isinstance(value, float):
        return "write a whole number without a decimal point"
    if kind in ("int_type", "float_type") and isinstance(value, str) and _is_number(value):
        return "write the number without quotes"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unknown_key(path: SpecPath, document: Document) -> Diagnostic:
    key = str(path[-1])
    known = allowed_keys(document.data, path[:-1])
    hint = did_you_mean(key, known)
    if hint is None and known:
        hint = f"known keys here: {', '.join(sorted(known))}"
    where = f"in {describe_path(path[:-1])}" if path[:-1] else "at the top level"
    return document.diagnostic("PC101", path, f'unknown key "{key}" {where}', hint, key=True)


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return quote(value) if len(value) <= 40 else quote(value[:37])[:-1] + '..."'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def describe_path(path: SpecPath) -> str:
    """`services.api.port`-style text for a path."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return f"`{out}`" if out else ""


# ---------------------------------------------------------------- walking the models by a data path


def model_at(data: Any, path: SpecPath) -> Any:
    """The annotation that describes the value at a path, following dicts, lists and tagged unions."""
    return _choose(annotation_at(data, path), _get(data, path))


def annotation_at(data: Any, path: SpecPath) -> Any:
    """The declared annotation at a path, before a union arm is chosen."""
    annotation: Any = Spec
    node = data
    for step in path:
        annotation = _choose(annotation, node)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(step))
            if field is None:
                return None
            annotation = field.annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
        else:
            return None
        node = _get(node, (step,))
    return annotation


def _get(node: Any, path: SpecPath) -> Any:
    for step in path:
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return None
    return node


def _choose(annotation: Any, node: Any) -> Any:
    """Strip Annotated and Optional, and pick the arm of a tagged union that the data names."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            arms = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = _pick_arm(arms, node)
            continue
        return annotation


def _pick_arm(arms: list[Any], node: Any) -> Any:
    if len(arms) == 1:
        return arms[0]
    for arm in arms:
        if isinstance(arm, type) and issubclass(arm, BaseModel) and isinstance(node, dict):
            for tag_name in ("kind", "type"):
                tag_field = arm.model_fields.get(tag_name)
                if tag_field is not None and node.get(tag_name) in typing.get_args(tag_field.annotation):
                    return arm
    return arms[0]


def allowed_keys(data: Any, path: SpecPath) -> list[str]:
    model = model_at(data, path)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def allowed_values(data: Any, path: SpecPath) -> list[str]:
    """The literal choices at a path (for a tagged union: the tags)."""
    return _literals(annotation_at(data, path))


def _literals(annotation: Any) -> list[str]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _literals(typing.get_args(annotation)[0])
    if origin is Literal:
        return [str(a) for a in typing.get_args(annotation)]
    if origin in (Union, types.UnionType):
        found: list[str] = []
        for arm in typing.get_args(annotation):
            if isinstance(arm, type) and issubclass(arm, BaseModel):
                for tag_name in ("kind", "type"):
                    if tag_name in arm.model_fields:
                        found += _literals(arm.model_fields[tag_name].annotation)
            else:
                found += _literals(arm)
        return found
    return []


def warning(document: Document, code: str, path: SpecPath, message: str, hint: str | None = None) -> Diagnostic:
    return document.diagnostic(code, path, message, hint, severity=Severity.WARNING)
