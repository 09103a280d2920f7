"""The compiler's pipeline, read top to bottom: load -> validate -> plan -> render -> emit.

`build`, `check` and `validate_only` are what the CLI calls; each is a few lines over the stages. The stages
are imported where they are used, so `pipec validate` never loads the renderer or the writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pipec.diagnostics import Diagnostic, fail
from pipec.load.load import Document, load, load_bytes
from pipec.plan.model import GENERATED
from pipec.validate.validate import Validated, validate

if TYPE_CHECKING:
    from pipec.emit import emit
    from pipec.emit.diff import Report
    from pipec.plan.model import Plan
    from pipec.render.output import Output


class Compiled(NamedTuple):
    """Everything a build produces before it touches the disk."""

    validated: Validated
    plan: Plan
    outputs: list[Output]
    layout: emit.Layout

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return self.validated.warnings


class BuildResult(NamedTuple):
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
    return _compile(load(spec_path), spec_path, output)


def _compile(document: Document, spec_path: Path, output: Path | None) -> Compiled:
    from pipec.emit import emit
    from pipec.plan.plan import make_plan
    from pipec.render.render import render

    validated = validate(document)
    plan = make_plan(validated, emit.sha256(document.text.encode("utf-8")))
    outputs = render(plan)
    # With --output, everything a build writes goes there: the tree, and the files that would go beside it (the
    # workflows in .github/workflows) under their own paths, so a preview never touches the repository.
    layout = emit.Layout(spec_path.parent, spec_path.parent / GENERATED if output is None else output,
                         preview=output is not None)
    return Compiled(validated, plan, outputs, layout)


def build(spec_path: Path, output: Path | None = None) -> BuildResult:
    """Compile a spec and write the generated tree atomically."""
    from pipec.emit import emit

    compiled = compile_spec(spec_path, output)
    written = emit.write(compiled.outputs, compiled.layout, compiled.plan.spec_sha)
    return BuildResult(compiled.warnings, written, compiled.layout.output)


def check(spec_path: Path, output: Path | None = None) -> emit.CheckOutcome:
    """Compare what a build would write with the disk, writing nothing."""
    from pipec.emit import emit

    compiled = compile_spec(spec_path, output)
    return emit.check(compiled.outputs, compiled.layout, compiled.plan.spec_sha)


def diff(spec_path: Path, against: str | None = None, output: Path | None = None) -> Report:
    """What building this spec changes: against generated/ on disk, or against the spec at a git ref."""
    from pipec.emit import emit
    from pipec.emit.diff import compare
    from pipec.release import git as gitrepo

    new = compile_spec(spec_path, output)
    if against is None:
        old_tree = emit.read_tree(new.layout, frozenset(a.path for a in new.outputs if not a.in_tree))
    else:
        document = load_bytes(gitrepo.show(against, spec_path), f"{against}:{spec_path.name}")
        old_tree = {a.path: a.text for a in _compile(document, spec_path, output).outputs}
    return compare(old_tree, {a.path: a.text for a in new.outputs})


def compile_checked(spec_path: Path) -> Compiled:
    """Compile a spec and insist that the committed generated/ matches it (releases must be consistent)."""
    from pipec.emit import emit

    compiled = compile_spec(spec_path)
    outcome = emit.check(compiled.outputs, compiled.layout, compiled.plan.spec_sha)
    if not outcome.ok:
        raise fail("PC505", f"{len(outcome.findings)} generated file(s) do not match {spec_path.name}",
                   hint="run `pipec build` and commit generated/ first; `pipec check` lists the files")
    return compiled


def validated(spec_path: Path) -> Validated:
    return validate(load(spec_path))


def validated_plan(spec_path: Path) -> Plan:
    """The plan of a spec, without rendering (what the AWS commands need)."""
    from pipec.plan.plan import make_plan

    return make_plan(validated(spec_path))


def validate_only(spec_path: Path) -> tuple[Diagnostic, ...]:
    """Load, validate and plan (which checks the names it makes); return the warnings (errors raise PipecError)."""
    from pipec.plan.plan import make_plan

    checked = validate(load(spec_path))
    make_plan(checked)
    return checked.warnings
