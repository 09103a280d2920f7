"""Stage 1, load: pipeline.yaml text -> Document (plain data plus the position of every key and value).

Strict YAML: YAML 1.2 core scalars (so `on`, `yes`, `no` stay text), duplicate keys, custom tags, merge keys
and multiple documents are errors; size, nesting and alias expansion are bounded. Knows nothing of the schema.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pipec.diagnostics import Diagnostic, PipecError, Severity

MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000

SpecPath = tuple[str | int, ...]

_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
MOST_DIGITS = 100  # Python refuses to read integers of over 4,300 digits; no setting needs more than a few
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_YAML_TAG = "tag:yaml.org,2002:"
_BINARY_MAGIC = (b"\x89PNG", b"\x7fELF", b"PK\x03\x04", b"%PDF", b"\x1f\x8b", b"GIF8", b"\xff\xd8\xff")
_TAGGED_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "null": type(None)}


class Span(NamedTuple):
    """Where a key or value sits in the file; lines and columns count from 1."""

    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def width(self) -> int:
        return max(1, self.end_column - self.column) if self.end_line == self.line else 1


class Document(NamedTuple):
    """What the user wrote: plain data, and for each path the spans of its key and value."""

    filename: str
    text: str
    data: dict[str, Any]
    values: dict[SpecPath, Span]
    keys: dict[SpecPath, Span]
    plain: dict[SpecPath, str]

    def span(self, path: SpecPath, *, key: bool = False) -> Span:
        """The span of a path's key (or value), falling back to its nearest ancestor."""
        for i in range(len(path), -1, -1):
            prefix = path[:i]
            table = self.keys if key and i == len(path) else self.values
            if prefix in table:
                return table[prefix]
        return Span(1, 1, 1, 1)

    def diagnostic(self, code: str, path: SpecPath, message: str, hint: str | None = None, *,
                   key: bool = False, severity: Severity = Severity.ERROR, redact: bool = False) -> Diagnostic:
        """A diagnostic at a path; `redact` masks the value in the snippet (it may be a secret)."""
        span = self.span(path, key=key)
        found = located(self.filename, self.text, span, code, message, hint, severity)
        if redact and found.source_line is not None and span.end_line == span.line:
            line = found.source_line
            masked = line[: span.column - 1] + "*" * (span.end_column - span.column) + line[span.end_column - 1:]
            return found._replace(source_line=masked)
        return found


def located(filename: str, text: str, span: Span, code: str, message: str, hint: str | None = None,
            severity: Severity = Severity.ERROR) -> Diagnostic:
    """A diagnostic at a span of a text, carrying its source line for the snippet."""
    lines = text.split("\n")
    source = lines[span.line - 1] if 0 < span.line <= len(lines) else None
    return Diagnostic(code, message, filename, span.line, span.column, hint, severity, source, span.width)


def load(path: Path, display: str | None = None) -> Document:
    """Read and parse a spec file; every problem raises PipecError with located diagnostics."""
    name = display or str(path)
    return load_bytes(_read(path, name), name)


def _read(path: Path, name: str) -> bytes:
    """The file's bytes. Opened without blocking and checked to be a regular file before it is read, so a FIFO or
    a device is refused instead of waiting forever."""
    import errno
    import stat

    from pipec.diagnostics import fail

    if len(name) > 200:
        name = f"...{name[-80:]}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise fail("PC001", "the file does not exist",
                   hint="run `pipec init` to write a starter pipeline.yaml", file=name) from None
    except PermissionError:
        raise fail("PC001", "the file cannot be read: permission denied", file=name) from None
    except OSError as exc:
        reason = "the path is too long" if exc.errno == errno.ENAMETOOLONG else exc.strerror or str(exc)
        raise fail("PC001", f"the file cannot be read: {reason}", file=name) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise fail("PC001", "this is a directory, not a file",
                       hint="pass the path of pipeline.yaml, e.g. `pipec validate pipeline.yaml`", file=name)
        raise fail("PC001", "this is not a regular file (a pipe, socket or device)",
                   hint="pass the path of pipeline.yaml; to check text from a pipe, write it to a file first",
                   file=name)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(fd).st_size
        if size > MAX_BYTES:
            raise fail("PC002", f"the file is {size / 1024 / 1024:.1f} MiB; a spec may be at most "
                       f"{MAX_BYTES // 1024 // 1024} MiB", hint="is this the right file?", file=name)
        try:
            data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise fail("PC001", f"the file cannot be read: {exc.strerror or exc}", file=name) from None
    if len(data) > MAX_BYTES:
        raise fail("PC002", f"the file is larger than {MAX_BYTES // 1024 // 1024} MiB", file=name)
    return data


def load_bytes(raw: bytes, filename: str) -> Document:
    """Parse the bytes of a spec (UTF-8, an optional BOM, LF or CRLF line endings)."""
    text = _decode(raw, filename)
    _reject_control_characters(text, filename)
    if not text.strip() or all(line.lstrip().startswith("#") or not line.strip() for line in text.split("\n")):
        raise PipecError([located(filename, text, Span(1, 1, 1, 1), "PC013", "the file is empty",
                                  "run `pipec init` to write a commented starter pipeline.yaml")])
    root = _Composer(text, filename).compose()
    return _Builder(filename, text).build(root)


def _decode(raw: bytes, filename: str) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line_end = raw.find(b"\n", exc.start)
        line = raw.count(b"\n", 0, exc.start) + 1
        column = len(raw[line_start: exc.start].decode("utf-8", errors="replace")) + 1
        binary = b"\x00" in raw[:1024] or raw.startswith(_BINARY_MAGIC)
        shown = None if binary else raw[line_start: None if line_end < 0 else line_end].decode("utf-8", "replace")
        hint = ("the file looks binary" if binary
                else "save the file as UTF-8 (most editors have an 'encoding' setting)")
        raise PipecError([Diagnostic("PC003", f"the file is not valid UTF-8: byte 0x{raw[exc.start]:02x} "
                                     f"cannot start a character", filename, line, column, hint,
                                     source_line=shown)]) from None
    return text.replace("\r\n", "\n")


def _reject_control_characters(text: str, filename: str) -> None:
    match = _CONTROL.search(text)
    if match is None:
        return
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    char = match.group()
    message = ("binary data: a NUL byte" if char == "\x00"
               else f"control character U+{ord(char):04X} is not allowed in YAML")
    hint = "pipeline.yaml must be a text file" if char == "\x00" else "delete the invisible character"
    raise PipecError([located(filename, text, Span(line, column, line, column + 1), "PC004",
                              f"the file contains {message}", hint)])


# ---------------------------------------------------------------- composing events into nodes


@dataclass
class _Node:
    kind: str  # "scalar", "mapping", "sequence"
    span: Span
    value: str = ""
    style: str = ""
    tag: str | None = None
    children: list[Any] = field(default_factory=list)  # mapping: [(key, value)], sequence: [node]
    size: int = 1
    open: bool = False


def _span(event: Any) -> Span:
    start, end = event.start_mark, event.end_mark
    return Span(start.line + 1, start.column + 1, end.line + 1, end.column + 1)


class _Composer:
    """Build a node tree from YAML events without recursion, so depth and aliases stay bounded."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.anchors: dict[str, _Node] = {}
        self.total = 0

    def compose(self) -> _Node:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            return self._compose(yaml.parse(self.text, Loader=loader))
        except yaml.MarkedYAMLError as exc:
            raise PipecError([self._syntax_error(exc)]) from None
        except yaml.YAMLError as exc:  # pragma: no cover - reader errors are caught before parsing
            raise PipecError([Diagnostic("PC005", f"invalid YAML: {exc}", self.filename)]) from None

    def _compose(self, events: Iterator[Any]) -> _Node:
        import yaml

        stack: list[_Node] = []
        pending_key: list[_Node | None] = []
        root: _Node | None = None
        documents = 0
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self._error(_span(event), "PC012", "more than one YAML document in the file",
                                      "a spec is one document: remove the `---` line and what follows it")
                continue
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                node = stack.pop()
                pending_key.pop()
                node.open = False
                node.span = Span(node.span.line, node.span.column, *_end(event))
                continue
            made = self._node(event, len(stack))
            if made is None:
                continue
            node = made
            if not stack:
                root = node
            else:
                self._attach(stack[-1], pending_key, node)
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                stack.append(node)
                pending_key.append(None)
        if root is None:  # pragma: no cover - an empty file is rejected before parsing
            raise self._error(Span(1, 1, 1, 1), "PC013", "the file is empty")
        return root

    def _node(self, event: Any, depth: int) -> _Node | None:
        import yaml

        if isinstance(event, yaml.AliasEvent):
            return self._alias(event)
        if isinstance(event, yaml.ScalarEvent):
            node = _Node("scalar", _span(event), event.value, event.style or "", event.tag)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if depth >= MAX_DEPTH:
                raise self._error(_span(event), "PC010", f"nesting deeper than {MAX_DEPTH} levels",
                                  "a pipeline spec is a few levels deep; is this the right file?")
            kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "sequence"
            node = _Node(kind, _span(event), tag=event.tag, open=True)
        else:
            return None
        if event.anchor is not None:
            self.anchors[event.anchor] = node
        return node

    def _alias(self, event: Any) -> _Node:
        node = self.anchors.get(event.anchor)
        if node is None:  # pragma: no cover - the YAML parser reports undefined aliases first
            raise self._error(_span(event), "PC009", f"alias *{event.anchor} has no anchor")
        if node.open:
            raise self._error(_span(event), "PC009", f"alias *{event.anchor} refers to itself",
                              "a recursive alias would expand forever")
        self.total += node.size
        if self.total > MAX_NODES:
            raise self._error(_span(event), "PC009",
                              f"aliases expand to more than {MAX_NODES:,} values",
                              "this looks like a 'billion laughs' file; pipec refuses to expand it")
        return node

    def _attach(self, parent: _Node, pending_key: list[_Node | None], node: _Node) -> None:
        if parent.kind == "sequence":
            parent.children.append(node)
        elif pending_key[-1] is None:
            pending_key[-1] = node
            return
        else:
            parent.children.append((pending_key[-1], node))
            pending_key[-1] = None
        parent.size += node.size
        self.total += 1
        if self.total > MAX_NODES:
            raise self._error(node.span, "PC009", f"the file expands to more than {MAX_NODES:,} values")

    def _error(self, span: Span, code: str, message: str, hint: str | None = None) -> PipecError:
        return PipecError([located(self.filename, self.text, span, code, message, hint)])

    def _syntax_error(self, exc: Any) -> Diagnostic:
        problem = str(exc.problem or "invalid YAML")
        mark = exc.problem_mark
        code, message, hint = "PC005", f"invalid YAML: {problem}", None
        context = str(exc.context or "")
        quoted = self._runaway_quote(mark.line + 1)
        if "tab" in problem or ("cannot start any token" in problem and self._char_at(mark) == "\t"):
            code, message = "PC006", "a tab character is used for indentation"
            hint = "YAML indents with spaces; replace the tab with spaces"
        elif "maximum nesting depth" in problem:
            code, message = "PC010", "nesting deeper than the YAML parser allows"
            hint = "a pipeline spec is a few levels deep; is this the right file?"
        elif quoted is not None:
            line, column = quoted
            return located(self.filename, self.text, Span(line, column, line, column + 1), "PC007",
                           "unterminated string: this quote is never closed on its line",
                           "add the closing quote at the end of the value; YAML kept reading the next lines "
                           "as part of the string")
        elif "while scanning a quoted scalar" in context:
            code, message, mark = "PC007", "unterminated string: the closing quote is missing", exc.context_mark
            hint = "add the closing quote at the end of the value"
        elif "mapping values are not allowed" in problem:
            hint = 'a value that contains ": " must be quoted, e.g. run: "echo a: b"'
        elif "found undefined alias" in problem:
            code, hint = "PC009", "define the anchor (&name) before using the alias (*name)"
        elif "expected <block end>" in problem or "did not find expected key" in problem:
            hint = "check the indentation of this line against the lines above it"
        elif context:
            message = f"invalid YAML: {problem} ({context})"
        line, column = mark.line + 1, mark.column + 1
        return located(self.filename, self.text, Span(line, column, line, column + 1), code, message, hint)

    def _runaway_quote(self, error_line: int) -> tuple[int, int] | None:
        """Where a quoted string that swallowed the lines up to error_line starts, if one did."""
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        found: tuple[int, int] | None = None
        try:
            for token in yaml.scan(self.text, Loader=loader):
                if isinstance(token, yaml.ScalarToken) and token.style in ('"', "'"):
                    start, end = token.start_mark.line + 1, token.end_mark.line + 1
                    if start < end and error_line - 1 <= end <= error_line:
                        found = (start, token.start_mark.column + 1)
        except yaml.YAMLError:
            pass
        return found

    def _char_at(self, mark: Any) -> str:
        lines = self.text.split("\n")
        line: int = mark.line
        column: int = mark.column
        if line < len(lines) and column < len(lines[line]):
            return lines[line][column]
        return ""


def _end(event: Any) -> tuple[int, int]:
    return event.end_mark.line + 1, event.end_mark.column + 1


# ---------------------------------------------------------------- nodes -> data with positions


class _Builder:
    """Turn the node tree into plain data, recording each path's spans and each plain scalar's text."""

    def __init__(self, filename: str, text: str) -> None:
        self.filename = filename
        self.text = text
        self.values: dict[SpecPath, Span] = {}
        self.keys: dict[SpecPath, Span] = {}
        self.plain: dict[SpecPath, str] = {}
        self.problems: list[Diagnostic] = []

    def build(self, root: _Node) -> Document:
        if root.kind != "mapping":
            what = "a list" if root.kind == "sequence" else "a single value"
            raise PipecError([self._at(root.span, "PC014", f"the top of the spec must be a mapping of keys, "
                                       f"found {what}", "start with keys such as `pipec: 1` and `project: ...`")])
        data = self._value(root, ())
        if self.problems:
            raise PipecError(self.problems)
        return Document(self.filename, self.text, data, self.values, self.keys, self.plain)

    def _value(self, node: _Node, path: SpecPath) -> Any:
        self.values[path] = node.span
        if node.kind == "mapping":
            return self._mapping(node, path)
        if node.kind == "sequence":
            self._check_tag(node, "seq")
            return [self._value(child, (*path, i)) for i, child in enumerate(node.children)]
        value = self._scalar(node)
        if node.style == "" and not isinstance(value, str) and node.tag is None:
            self.plain[path] = node.value
        return value

    def _mapping(self, node: _Node, path: SpecPath) -> dict[str, Any]:
        self._check_tag(node, "map")
        result: dict[str, Any] = {}
        first_seen: dict[str, Span] = {}
        for key_node, value_node in node.children:
            key = self._key(key_node)
            if key is None:
                continue
            if key in first_seen:
                first = first_seen[key]
                self.problems.append(self._at(key_node.span, "PC008", f'duplicate key "{key}" (first defined on '
                                              f"line {first.line})", f"remove one of the two; YAML would "
                                              f"silently keep only the value on line {key_node.span.line}"))
                continue
            first_seen[key] = key_node.span
            child = (*path, key)
            self.keys[child] = key_node.span
            result[key] = self._value(value_node, child)
        return result

    def _key(self, node: _Node) -> str | None:
        if node.kind != "scalar":
            self.problems.append(self._at(node.span, "PC015", "a key must be plain text, not a list or mapping"))
            return None
        if node.value == "<<" and node.style == "":
            self.problems.append(self._at(node.span, "PC016", "merge keys (<<) are not supported",
                                          "write the keys out; per-environment `scaling` and `config` "
                                          "blocks already avoid most repetition"))
            return None
        self._check_tag(node, "str")
        return node.value

    def _scalar(self, node: _Node) -> Any:
        tag = node.tag
        if len(node.value) > MOST_DIGITS and not (node.style and tag is None) and _is_number(node.value):
            self.problems.append(self._at(node.span, "PC017", f"a number of {len(node.value)} characters is longer "
                                          f"than pipec reads ({MOST_DIGITS})",
                                          "no setting of a pipeline needs such a number; quote it if it is text"))
            return node.value
        if tag is None:
            return node.value if node.style else resolve_plain(node.value)
        if tag in ("!", _YAML_TAG + "str"):
            return node.value
        expected = _TAGGED_TYPES.get(tag.removeprefix(_YAML_TAG)) if tag.startswith(_YAML_TAG) else None
        if expected is None:
            self._check_tag(node, "str")
            return node.value
        value = resolve_plain(node.value)
        if expected is float and type(value) is int:
            return float(value)
        if type(value) is not expected:
            shown = tag.replace(_YAML_TAG, "!!")
            self.problems.append(self._at(node.span, "PC011", f'"{node.value}" is not a valid {shown}'))
        return value

    def _check_tag(self, node: _Node, allowed: str) -> None:
        tag = node.tag
        if tag is None or tag == "!" or tag == _YAML_TAG + allowed:
            return
        shown = tag.replace(_YAML_TAG, "!!")
        hint = ("pipec writes CloudFormation for you; intrinsic functions have no place in pipeline.yaml"
                if shown.startswith(("!Ref", "!Sub", "!GetAtt", "!If", "!Join")) else
                "remove the tag; pipeline.yaml uses plain YAML values")
        self.problems.append(self._at(node.span, "PC011", f"the tag {shown} is not supported", hint))

    def _at(self, span: Span, code: str, message: str, hint: str | None = None) -> Diagnostic:
        return located(self.filename, self.text, span, code, message, hint)


_MAYBE_NOT_TEXT = frozenset("0123456789+-.~nNtTfF")


def _is_number(text: str) -> bool:
    return any(p.fullmatch(text) for p in (_INT, _OCT, _HEX, _FLOAT))


def resolve_plain(text: str) -> Any:
    """Resolve an unquoted scalar by the YAML 1.2 core schema: `on`, `yes` and `no` remain text."""
    if text and text[0] not in _MAYBE_NOT_TEXT:
        return text  # the common case, decided without a regular expression
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        return int(text)
    if _OCT.fullmatch(text):
        return int(text[2:], 8)
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text
