"""Diagnostics: the one user-facing error type, and how problems are printed.

Every stage reports problems as Diagnostics (code, message, hint, file:line:col). The CLI prints them like a
compiler (text with a source snippet), as JSON for machines, or as GitHub annotations inside Actions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import NamedTuple, TextIO

from pipec.codes import EXIT_CODES_HELP, ExitCode, exit_code

__all__ = ["EXIT_CODES_HELP", "Diagnostic", "ExitCode", "PipecError", "Severity", "fail"]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Diagnostic(NamedTuple):
    """One problem, located in a file when it has a place."""

    code: str
    message: str
    file: str = ""
    line: int = 0
    column: int = 0
    hint: str | None = None
    severity: Severity = Severity.ERROR
    source_line: str | None = None
    width: int = 1

    @property
    def location(self) -> str:
        if not self.file:
            return "pipec"
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"

    def sort_key(self) -> tuple[str, int, int]:
        """By place; diagnostics at the same place keep the order they were found in (sorting is stable)."""
        return (self.file, self.line, self.column)


class PipecError(Exception):
    """The one error a user sees: a list of diagnostics, and the exit code their codes mean (`pipec.codes`)."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        self.exit_code = max((exit_code(d.code) for d in errors(self.diagnostics)), default=ExitCode.SPEC)
        super().__init__("; ".join(f"{d.location}: {d.message}" for d in self.diagnostics))


def fail(code: str, message: str, *, hint: str | None = None, file: str = "") -> PipecError:
    """Make a PipecError with one diagnostic that has no line in a spec."""
    return PipecError([Diagnostic(code, message, file=file, hint=hint)])


def quote(text: str) -> str:
    """A value a user gave, in double quotes, with newlines and other control characters shown escaped (\\n), so a
    message stays on its line and says exactly what was given."""
    return json.dumps(text, ensure_ascii=False)


def errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity is Severity.ERROR]


# ---------------------------------------------------------------- printing

_COLORS = {"error": "\033[1;31m", "warning": "\033[1;33m", "hint": "\033[1;36m", "bold": "\033[1m",
           "dim": "\033[2m", "reset": "\033[0m"}


def use_color(stream: TextIO) -> bool:
    """Colour only a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") is not None:
        return False
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


def format_text(diagnostic: Diagnostic, color: bool = False) -> str:
    """Format one diagnostic the way compilers do: location, code, snippet with a caret, hint."""
    c = _COLORS if color else dict.fromkeys(_COLORS, "")
    sev = diagnostic.severity.value
    lines = [f"{c['bold']}{_one_line(diagnostic.location)}:{c['reset']} "
             f"{c[sev]}{sev}[{diagnostic.code}]{c['reset']}{c['bold']}: {_one_line(diagnostic.message)}{c['reset']}"]
    if diagnostic.source_line is not None and diagnostic.line:
        number = str(diagnostic.line)
        pad = " " * len(number)
        text, column = _window(diagnostic.source_line.expandtabs(1).rstrip("\n"), diagnostic.column)
        caret = " " * (column - 1) + "^" * max(1, min(diagnostic.width, _SNIPPET_WIDTH))
        lines += [f"{c['dim']}{pad} |{c['reset']}",
                  f"{c['dim']}{number} |{c['reset']} {text}",
                  f"{c['dim']}{pad} |{c['reset']} {c[sev]}{caret}{c['reset']}"]
    if diagnostic.hint:
        lines.append(f"{c['hint']}hint{c['reset']}: {_one_line(diagnostic.hint)}")
    return "\n".join(lines)


_CONTROL = {n: json.dumps(chr(n))[1:-1] for n in (*range(0x20), 0x7F)}


def _one_line(text: str) -> str:
    """A message as one line: a newline or other control character a user gave is shown escaped (\\n)."""
    return text.translate(_CONTROL)


_SNIPPET_WIDTH = 100


def _window(text: str, column: int) -> tuple[str, int]:
    """At most _SNIPPET_WIDTH characters of a long line, around the column; the column within them."""
    if len(text) <= _SNIPPET_WIDTH:
        return text, column
    start = max(0, min(column - 1 - _SNIPPET_WIDTH // 2, len(text) - _SNIPPET_WIDTH))
    prefix = "..." if start else ""
    suffix = "..." if start + _SNIPPET_WIDTH < len(text) else ""
    return prefix + text[start:start + _SNIPPET_WIDTH] + suffix, column - start + len(prefix)


def summary(diagnostics: Sequence[Diagnostic]) -> str:
    n_errors = len(errors(diagnostics))
    n_warnings = len(diagnostics) - n_errors
    parts = []
    if n_errors:
        parts.append(f"{n_errors} error{'s' if n_errors != 1 else ''}")
    if n_warnings:
        parts.append(f"{n_warnings} warning{'s' if n_warnings != 1 else ''}")
    return ", ".join(parts)


def format_json(diagnostics: Sequence[Diagnostic], extra: dict[str, object] | None = None) -> str:
    items = []
    for d in sorted(diagnostics, key=Diagnostic.sort_key):
        item = d._asdict()
        item.pop("source_line")
        item.pop("width")
        item["severity"] = d.severity.value
        items.append(item)
    return json.dumps({"ok": not errors(diagnostics), "diagnostics": items, **(extra or {})}, indent=2)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(diagnostic: Diagnostic) -> str:
    """A GitHub Actions workflow command, so the problem shows on the pull request's line."""
    props = []
    if diagnostic.file:
        props.append(f"file={_escape_property(_workspace_relative(diagnostic.file))}")
    if diagnostic.line:
        props += [f"line={diagnostic.line}", f"col={diagnostic.column}"]
    props.append(f"title={_escape_property('pipec ' + diagnostic.code)}")
    message = diagnostic.message + (f"\nhint: {diagnostic.hint}" if diagnostic.hint else "")
    return f"::{diagnostic.severity.value} {','.join(props)}::{_escape_data(message)}"


def _workspace_relative(file: str) -> str:
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if not workspace:
        return file
    absolute = os.path.abspath(file)
    try:
        return os.path.relpath(absolute, workspace) if absolute.startswith(workspace) else file
    except ValueError:
        return file


def report(diagnostics: Sequence[Diagnostic], stream: TextIO, fmt: str = "text") -> None:
    """Print diagnostics in the chosen format, sorted, with a one-line summary for humans."""
    ordered = sorted(diagnostics, key=Diagnostic.sort_key)
    if fmt == "json":
        stream.write(format_json(ordered) + "\n")
        return
    color = use_color(stream)
    for d in ordered:
        stream.write(format_text(d, color) + "\n\n")
    if ordered:
        stream.write(f"pipec: {summary(ordered)}\n")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for d in ordered:
            stream.write(format_github(d) + "\n")
