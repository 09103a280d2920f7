"""The layout keeps its promises: each stage imports only earlier stages, no import cycle exists, and the templates
print names the plan made instead of building them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "compiler" / "pipec"
TEMPLATES = REPO / "templates"

# The stages in the order data flows through them; a module may import its own stage and earlier ones only.
STAGES = ["pipec.codes", "pipec.diagnostics", "pipec.load", "pipec.validate", "pipec.plan", "pipec.render",
          "pipec.emit", "pipec.release", "pipec.build", "pipec.aws", "pipec.cli", "pipec.__main__"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _stage(module: str) -> int:
    """The rank of a module's stage (the package's own __init__ counts with the first)."""
    if module == "pipec":
        return 0
    found = [i for i, stage in enumerate(STAGES) if module == stage or module.startswith(stage + ".")]
    assert found, f"{module} belongs to no stage; add its folder to STAGES in the right place"
    return found[0]


def imports_of(module: str, source: str) -> set[str]:
    """Every pipec module a module imports, at the top, inside functions or for type checking alone."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "pipec"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pipec":
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return {name for name in found if name != module}


GRAPH = {module: imports_of(module, path.read_text()) for module, path in MODULES.items()}


def backward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if _stage(target) > _stage(module))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_belongs_to_a_stage() -> None:
    assert len(MODULES) > 30
    for module in MODULES:
        _stage(module)


def test_no_module_imports_a_later_stage() -> None:
    assert backward_imports(GRAPH) == []


def test_no_import_cycle_anywhere() -> None:
    assert cycles(GRAPH) == []


def test_the_import_checks_catch_what_they_are_for() -> None:
    assert backward_imports({"pipec.plan.plan": {"pipec.render.output"}}) == ["pipec.plan.plan -> pipec.render.output"]
    assert cycles({"pipec.validate.rules": {"pipec.validate.validate"},
                   "pipec.validate.validate": {"pipec.validate.rules"}}) == [
        ["pipec.validate.rules", "pipec.validate.validate"]]
    assert imports_of("pipec.x", "def f():\n    from pipec.plan import names\n") == {"pipec.plan.names"}


# ---------------------------------------------------------------- templates print names, never build them

# Values that are (parts of) names: a template that glues them to punctuation is spelling a name itself.
NAME_ATTRIBUTES = {"project", "name", "repository", "branch", "tag_prefix", "account", "home_region", "sub_name",
                   "release_bucket"}
NAME_VARIABLES = {"p", "project"}
GLUE = set("-_/:.@${}")


def _is_name(node: Any) -> bool:
    import jinja2.nodes as n

    while isinstance(node, n.Filter):
        node = node.node
    if isinstance(node, n.Getattr):
        return node.attr in NAME_ATTRIBUTES
    return isinstance(node, n.Name) and node.name in NAME_VARIABLES


def _text(node: Any) -> str | None:
    import jinja2.nodes as n

    if isinstance(node, n.Const) and isinstance(node.value, str):
        return node.value
    if isinstance(node, n.TemplateData):
        return node.data
    return None


def _glued(parts: list[Any]) -> Iterator[str]:
    """Places where a name value touches punctuation (or another value) with no space between."""
    for i, part in enumerate(parts):
        if not _is_name(part):
            continue
        before, after = (parts[i - 1] if i else None), (parts[i + 1] if i + 1 < len(parts) else None)
        for neighbour, edge in ((before, -1), (after, 0)):
            if neighbour is None:
                continue
            text = _text(neighbour)
            if text is None or (text and text[edge] in GLUE and not _key_or_prose(text, edge)):
                yield f"{part} next to {neighbour}"


def _key_or_prose(text: str, edge: int) -> bool:
    """A colon followed by white space ends a YAML key or a phrase (`api: errors`), it does not join a name."""
    return edge == 0 and text[0] == ":" and (len(text) == 1 or text[1].isspace())


def built_names(source: str) -> list[str]:
    """Every place a template source concatenates a name value with name punctuation."""
    import jinja2.nodes as n

    from pipec.render.render import _environment

    tree = _environment().parse(source)
    found = []
    for node in tree.find_all((n.Concat, n.Output)):
        parts = list(node.nodes)
        found += list(_glued(parts))
    return found


@pytest.mark.parametrize("template", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.j2")))
def test_templates_never_build_a_name(template: str) -> None:
    assert built_names((TEMPLATES / template).read_text()) == []


@pytest.mark.parametrize("source", [
    '{{ (p ~ "-${Environment}-alerts") | y }}',
    "`{{ p }}-{{ env.name }}-alerts`",
    '{{ ("repo:" ~ plan.repository ~ ":environment:x") | y }}',
    '{{ (plan.tag_prefix ~ gh("x")) | y }}',
    "deploy-{{ env.name }}:",
])
def test_the_name_check_sees_a_name_built_in_a_template(source: str) -> None:
    assert built_names(source) != []


def test_the_name_check_leaves_prose_alone() -> None:
    assert built_names('{{ ("pipec service " ~ service.name ~ " of " ~ p) | y }} and `{{ env.name }}`') == []
