"""The compiler's pipeline, read top to bottom: load -> validate -> plan -> render -> emit.

`build`, `check` and `validate_only` are what the CLI calls; each is a few lines over the stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipec import emit
from pipec.artifacts import GENERATED, Artifact
from pipec.diagnostics import Diagnostic
from pipec.load import load
from pipec.plan import Plan, make_plan
from pipec.render import render
from pipec.validate import Validated, validate


@dataclass(frozen=True)
class Compiled:
    """Everything a build produces before it touches the disk."""

    validated: Validated
    plan: Plan
    artifacts: list[Artifact]
    layout: emit.Layout

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return self.validated.warnings


@dataclass(frozen=True)
class BuildResult:
    warnings: tuple[Diagnostic, ...]
    written: emit.Written
    output: Path

    def summary(self) -> str:
        w = self.written
        if not w.changed and not w.removed:
            return f"pipec: {self.output} is up to date ({w.unchanged} files)"
        lines = [f"pipec: wrote {len(w.changed)} file(s), removed {len(w.removed)}, "
                 f"{w.unchanged} unchanged"]
        lines += [f"  wrote    {path}" for path in w.changed]
        lines += [f"  removed  {path}" for path in w.removed]
        return "\n".join(lines)


def compile_spec(spec_path: Path, output: Path | None = None) -> Compiled:
    """Load, validate, plan and render a spec, all in memory."""
    document = load(spec_path)
    validated = validate(document)
    plan = make_plan(validated, emit.sha256(document.text.encode("utf-8")))
    artifacts = render(plan)
    layout = emit.Layout(spec_path.parent, output if output is not None else spec_path.parent / GENERATED)
    return Compiled(validated, plan, artifacts, layout)


def build(spec_path: Path, output: Path | None = None) -> BuildResult:
    """Compile a spec and write the generated tree atomically."""
    compiled = compile_spec(spec_path, output)
    written = emit.write(compiled.artifacts, compiled.layout, compiled.plan.spec_sha)
    return BuildResult(compiled.warnings, written, compiled.layout.output)


def check(spec_path: Path, output: Path | None = None) -> emit.CheckOutcome:
    """Compare what a build would write with the disk, writing nothing."""
    compiled = compile_spec(spec_path, output)
    return emit.check(compiled.artifacts, compiled.layout, compiled.plan.spec_sha)


def validate_only(spec_path: Path) -> tuple[Diagnostic, ...]:
    """Load and validate; return the warnings (errors raise PipecError)."""
    return validate(load(spec_path)).warnings
