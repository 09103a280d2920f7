"""Render stage: every rendered YAML and JSON file parsed back before it leaves, so a template bug fails the build
instead of reaching AWS or GitHub. Also reads generated files back for `pipec diff` and the tests.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pipec.diagnostics import fail
from pipec.load.load import resolve_plain
from pipec.render.output import Output


def parse(output: Output) -> Any:
    """Parse a rendered file; a template bug fails the build here instead of reaching AWS or GitHub."""
    import yaml

    try:
        if output.path.endswith(".json"):
            return json.loads(output.text)
        if output.path.endswith((".yaml", ".yml")):
            return _data(output.text)
    except (ValueError, yaml.YAMLError) as exc:
        raise fail("PC307", f"{output.path} does not parse back: {exc}",
                   hint="this is a bug in pipec's templates") from None
    return None


def check_syntax(output: Output) -> None:
    """Parse a rendered file only as far as its syntax (faster than building its data); fail like parse()."""
    import yaml

    try:
        if output.path.endswith(".json"):
            json.loads(output.text)
        elif output.path.endswith((".yaml", ".yml")):
            for _ in yaml.parse(output.text, Loader=_LOADER()):
                pass
    except (ValueError, yaml.YAMLError) as exc:
        raise fail("PC307", f"{output.path} does not parse back: {exc}",
                   hint="this is a bug in pipec's templates") from None


@cache
def _LOADER() -> Any:  # noqa: N802 - a cached class
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _data(text: str) -> Any:
    """Plain data from YAML events (YAML 1.2 scalars, so GitHub's `on:` stays a key), with CloudFormation's short
    tags read as their long form: !Ref X -> {"Ref": "X"}, !Sub s -> {"Fn::Sub": "s"}, !GetAtt A.B -> [A, B]."""
    import yaml


    stack: list[tuple[Any, str | None]] = []  # (container, tag)
    pending: list[Any] = []  # per mapping: the key waiting for its value (a sentinel when none)
    root: list[Any] = []
    none = object()

    def add(value: Any) -> None:
        if not stack:
            root.append(value)
            return
        container = stack[-1][0]
        if isinstance(container, list):
            container.append(value)
        elif pending[-1] is none:
            if value in container:  # YAML forbids it, and parsers disagree on which one wins
                raise ValueError(f"duplicate key {value!r}")
            pending[-1] = value
        else:
            container[pending[-1]] = value
            pending[-1] = none

    event: Any
    for event in yaml.parse(text, Loader=_LOADER()):
        kind = type(event)
        if kind is yaml.ScalarEvent:
            value = event.value if event.style or event.tag else resolve_plain(event.value)
            add(_tagged(event.tag, value))
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            stack.append(({} if kind is yaml.MappingStartEvent else [], event.tag))
            pending.append(none)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            container, tag = stack.pop()
            pending.pop()
            add(_tagged(tag, container))
        elif kind is yaml.AliasEvent:
            raise ValueError("pipec never writes YAML aliases")
    return root[0] if root else None


def template_body(text: str) -> str:
    """A CloudFormation template as CloudFormation receives it: compact JSON, without the comments and the
    indentation that make the committed YAML readable (a request takes at most 51,200 bytes of it)."""
    return json.dumps(_data(text), separators=(",", ":"), ensure_ascii=False)


def _tagged(tag: str | None, value: Any) -> Any:
    if tag is None or tag == "!" or tag.startswith("tag:yaml.org,2002:"):
        return value
    suffix = tag[1:]
    if suffix in ("Ref", "Condition"):  # the two functions without the Fn:: prefix
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}
