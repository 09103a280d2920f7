"""The command line: parse arguments into a request, call one stage function, map errors to exit codes.

Holds no logic of its own. Errors go to stderr, results to stdout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipec import __version__
from pipec.diagnostics import EXIT_CODES_HELP, ExitCode, PipecError, fail, format_json, report

if TYPE_CHECKING:
    from pipec.release.versions import Versions

app = typer.Typer(
    name="pipec",
    help="Compile pipeline.yaml into CloudFormation, GitHub Actions workflows and rollback runbooks; deploy, "
         "report and roll back releases.",
    epilog=EXIT_CODES_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Format(StrEnum):
    text = "text"
    json = "json"


SpecArg = Annotated[Path, typer.Argument(help="The spec file.", show_default=True)]
FormatOption = Annotated[Format, typer.Option("--format", help="Output for humans (text) or machines (json).")]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="Folder of the generated tree "
                                                   "(default: generated/ beside the spec); the workflows that "
                                                   "would go beside it go there too, under their own paths.")]


def _execute(action: Callable[[], int | None], fmt: str = "text") -> None:
    """Run a command body; every failure becomes a report on stderr and a documented exit code."""
    try:
        code = action() or 0
    except PipecError as exc:
        report(exc.diagnostics, sys.stdout if fmt == "json" else sys.stderr, fmt)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        sys.stderr.write("\npipec: interrupted\n")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except (typer.Exit, BrokenPipeError):  # typer ends a run whose reader went away quietly, with status 1
        raise
    except Exception as exc:  # a bug: say so plainly, without a traceback unless asked
        if os.environ.get("PIPEC_DEBUG"):
            raise
        sys.stderr.write(f"pipec: internal error: {type(exc).__name__}: {exc}\n"
                         "This is a bug in pipec; rerun with PIPEC_DEBUG=1 for details and report it.\n")
        raise typer.Exit(int(ExitCode.INTERNAL)) from None
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pipec {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """pipec: a compiler for delivery pipelines."""


@app.command()
def validate(spec: SpecArg = Path("pipeline.yaml"), fmt: FormatOption = Format.text) -> None:
    """Check pipeline.yaml and report every problem at file:line:col."""
    from pipec import build

    def action() -> None:
        warnings = build.validate_only(spec)
        report(warnings, sys.stdout if fmt == "json" else sys.stderr, fmt)
        if fmt == "text":
            typer.echo(f"{spec}: ok")
    _execute(action, fmt)


@app.command("build")
def build_command(spec: SpecArg = Path("pipeline.yaml"), output: OutputOption = None,
                  fmt: FormatOption = Format.text) -> None:
    """Validate pipeline.yaml and write the generated tree (atomically; unchanged output writes nothing)."""
    from pipec import build

    def action() -> None:
        result = build.build(spec, output)
        if fmt == "json":  # what was written, for scripts: the same lists the text summary shows
            files = {"written": result.written.changed, "removed": result.written.removed,
                     "unchanged": result.written.unchanged}
            sys.stdout.write(format_json(result.warnings, {"output": str(result.output), "files": files}) + "\n")
            return
        report(result.warnings, sys.stderr, fmt)
        typer.echo(result.summary())
    _execute(action, fmt)


@app.command()
def check(spec: SpecArg = Path("pipeline.yaml"), output: OutputOption = None) -> None:
    """Exit 3 when the generated files do not match pipeline.yaml (stale, missing, edited or extra)."""
    from pipec import build

    def action() -> int:
        outcome = build.check(spec, output)
        stream = sys.stdout if outcome.ok else sys.stderr
        stream.write(outcome.report())
        return int(ExitCode.OK if outcome.ok else ExitCode.STALE)
    _execute(action)


@app.command("lint")
def lint_command(spec: SpecArg = Path("pipeline.yaml"), fmt: FormatOption = Format.text) -> None:
    """Run cfn-lint on every generated template, alone and with each parameter file."""
    from pipec import build
    from pipec.render.lint import lint

    def action() -> int:
        compiled = build.compile_spec(spec)
        found = lint(compiled.plan, compiled.outputs)
        report(found, sys.stdout if fmt == "json" else sys.stderr, fmt)
        if not found and fmt == "text":
            typer.echo("pipec lint: cfn-lint found nothing")
        return int(ExitCode.SPEC if found else ExitCode.OK)
    _execute(action, fmt)


class DiffFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


@app.command()
def diff(spec: SpecArg = Path("pipeline.yaml"),
         against: Annotated[str | None, typer.Option("--against", help="Compare with pipeline.yaml at this git "
                                                     "ref (e.g. main) instead of generated/ on disk.")] = None,
         fmt: Annotated[DiffFormat, typer.Option("--format", help="text, markdown (for a pull request's "
                                                 "summary) or json.")] = DiffFormat.text,
         output: OutputOption = None) -> None:
    """Show what a build would change, per environment, region and stack."""
    from pipec import build
    from pipec.emit import diff as diffs

    def action() -> None:
        report = build.diff(spec, against, output)
        printer = {"text": diffs.format_text, "markdown": diffs.format_markdown, "json": diffs.format_json}
        typer.echo(printer[fmt.value](report), nl=False)
    _execute(action)


@app.command()
def schema() -> None:
    """Print the JSON Schema of pipeline.yaml (editors use it for completion and checks)."""
    from pipec.validate.schema import packaged_schema

    _execute(lambda: typer.echo(packaged_schema(), nl=False))


@app.command()
def init(path: Annotated[Path, typer.Argument(help="Where to write the starter spec.")] = Path("pipeline.yaml"),
         force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False) -> None:
    """Write a commented starter pipeline.yaml that validates."""
    from pipec.cli import starter

    def action() -> None:
        pin = starter.installed_pin()
        starter.write(path, force=force, pin=pin)
        if pin is None:
            typer.echo("pipec: this pipec was not installed from a wheel URL with its sha256 or a git commit, so "
                       "github.pipec is left for you to set: `pipec explain PC222`", err=True)
        else:
            typer.echo(f"github.pipec: {pin}")
        typer.echo(f"wrote {path}; edit it, then run `pipec build`")
    _execute(action)


@app.command()
def explain(code: Annotated[str | None, typer.Argument(help="A diagnostic code such as PC201; none lists them "
                                                       "all.")] = None) -> None:
    """Explain a diagnostic code: what it means, an example of the mistake and the fix."""
    from pipec import codes

    def action() -> None:
        if code is None:
            typer.echo(codes.listing(), nl=False)
            return
        if code.upper() not in codes.CODES:
            raise fail("PC407", f"unknown diagnostic code {code}", hint="`pipec explain` lists every code")
        typer.echo(codes.explain(code.upper()), nl=False)
    _execute(action)


# ---------------------------------------------------------------- releases and AWS

version_app = typer.Typer(help="Release versions from git tags and conventional commits.", no_args_is_help=True)
app.add_typer(version_app, name="version")


@version_app.command("next")
def version_next(spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Print the next release version (without the tag prefix)."""
    _execute(lambda: typer.echo(_versions(spec).next))


@version_app.command("current")
def version_current(spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Print the last release version; exit 1 when there is none yet."""
    def action() -> None:
        current = _versions(spec).current
        if current is None:
            raise fail("PC703", "no release tag yet", hint="the first release will be the spec's initial_version")
        typer.echo(current)
    _execute(action)


github_app = typer.Typer(help="GitHub's repository settings that pipeline.yaml relies on.", no_args_is_help=True)
app.add_typer(github_app, name="github")


@github_app.command("check")
def github_check(env: Annotated[str | None, typer.Option("--env", "-e", help="One environment (default: all, "
                                                          "and the build's).")] = None,
                 spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Stop unless each GitHub environment exists, lets only the release branch deploy, and has the required
    reviewers pipeline.yaml names (GH_TOKEN with actions: read; GITHUB_API_URL for GitHub Enterprise)."""
    from pipec import build
    from pipec.aws import targets
    from pipec.release import github

    def action() -> None:
        plan = build.validated_plan(spec)
        if env is not None:
            targets.environment(plan, env)
        checked = github.check(plan, env)
        typer.echo(f"pipec: GitHub environments {', '.join(checked)} are protected as pipeline.yaml says")
    _execute(action)


def _versions(spec: Path) -> Versions:
    from pipec import build
    from pipec.release import versions

    release = build.validated(spec).spec.release
    return versions.compute(release.tag_prefix, release.initial_version, spec.resolve().parent)


EnvOption = Annotated[str, typer.Option("--env", "-e", help="Environment name.")]
ServiceOption = Annotated[str | None, typer.Option("--service", "-s", help="One service (default: all).")]
RegionOption = Annotated[str | None, typer.Option("--region", "-r", help="One region (default: all of the "
                                                  "environment's).")]


class Notice(StrEnum):
    waiting = "waiting"
    deployed = "deployed"
    failed = "failed"
    rolled_back = "rolled-back"
    sanity = "sanity"


class Outcome(StrEnum):
    success = "success"
    failure = "failure"
    cancelled = "cancelled"


@app.command()
def notify(event: Annotated[Notice, typer.Argument(help="What happened: waiting (for approval), deployed, failed, "
                                                   "rolled-back, or sanity (with --outcome: told only when it "
                                                   "changed).")],
           env: EnvOption, region: RegionOption = None,
           version: Annotated[str, typer.Option("--version", help="The release it is about (empty: unknown).")] = "",
           what: Annotated[str, typer.Option("--what", help="What failed, or why it was rolled back.")] = "",
           outcome: Annotated[Outcome, typer.Option("--outcome", help="A sanity check's job status.")] = (
               Outcome.success),
           spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Tell the alert channel (the webhook in PIPEC_WEBHOOK_URL; for sanity, GH_TOKEN to read the previous run and
    keep the issue). The workflows run it; a failure to tell never changes what was deployed."""
    from pipec import build
    from pipec.aws import targets
    from pipec.release import notify as notices

    def action() -> None:
        plan = build.validated_plan(spec)
        chosen = targets.environment(plan, env)
        regions = tuple(targets.regions(chosen, region))
        if version:
            targets.version(version)
        notices.notify(plan, event.value, chosen, regions, version, what, outcome.value, typer.echo)
    _execute(action)


class StatusFormat(StrEnum):
    table = "table"
    json = "json"
    version = "version"


@app.command()
def bundle(version: Annotated[str, typer.Option("--version", help="The release version, e.g. 1.4.2.")],
           commit: Annotated[str, typer.Option("--commit", help="The commit the release was built from.")],
           artifact: Annotated[list[str], typer.Option("--artifact", help="NAME=sha256:HEX, for every artifact.")],
           spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Publish the release bundle: the generated tree and a record of the artifacts' digests."""
    from pipec import build
    from pipec.aws import bundle as bundles
    from pipec.aws.session import Aws

    def action() -> None:
        digests = bundles.parse_digests(artifact)
        compiled = build.compile_checked(spec)
        bundles.publish(Aws(), compiled.plan, compiled.outputs, version, commit, digests, typer.echo)
    _execute(action)


@app.command()
def bootstrap(env: EnvOption, region: RegionOption = None, spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Create or update an environment's bootstrap and network stacks (with administrator credentials)."""
    from pipec import build
    from pipec.aws import deploy as deploys
    from pipec.aws.session import Aws

    def action() -> None:
        compiled = build.compile_checked(spec)
        deploys.bootstrap(Aws(), compiled.plan, compiled.outputs, env, region, typer.echo)
    _execute(action)


@app.command()
def deploy(env: EnvOption, version: Annotated[str, typer.Option("--version", help="The release to deploy.")],
           service: ServiceOption = None, region: RegionOption = None,
           break_glass: Annotated[str | None, typer.Option("--break-glass", metavar="REASON", help="Deploy a "
                                  "release the environment before this one did not verify; the ledger keeps the "
                                  "reason.")] = None,
           spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Deploy a release to an environment through change sets, and record it in the ledger. The environment before
    it in promotion order must have verified the release (its checks passed there)."""
    from pipec import build
    from pipec.aws import deploy as deploys
    from pipec.aws.session import Aws

    request = deploys.Request(env, version, service, region, break_glass=break_glass)
    _execute(lambda: deploys.deploy(Aws(), build.validated_plan(spec), request, typer.echo))


def _progress(line: str) -> None:
    """A line about a command's progress, on stderr, away from the result on stdout."""
    sys.stderr.write(line + "\n")


class PlanFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


@app.command("plan")
def plan_command(env: EnvOption,
                 version: Annotated[str, typer.Option("--version", help="The release to plan.")],
                 service: ServiceOption = None, region: RegionOption = None,
                 fmt: Annotated[PlanFormat, typer.Option("--format", help="text, markdown (a job summary) or "
                                                         "json.")] = PlanFormat.text,
                 spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Show what deploying a release would change in what is deployed (change sets, never executed), and the
    commits it brings."""
    from pipec import build
    from pipec.aws import preview
    from pipec.aws.session import Aws

    def action() -> None:
        plan = build.validated_plan(spec)
        found = preview.preview(Aws(), plan, env, version, service, region, spec.resolve().parent, _progress)
        if fmt == PlanFormat.markdown:
            server = os.environ.get("GITHUB_SERVER_URL") or "https://github.com"
            typer.echo(preview.markdown(found, plan.repository, server), nl=False)
        else:
            typer.echo(preview.as_json(found) if fmt == PlanFormat.json else preview.text(found), nl=False)
    _execute(action, fmt.value)


@app.command()
def changes(since: Annotated[str, typer.Option("--from", help="The older release, e.g. 1.4.1.")],
            until: Annotated[str, typer.Option("--to", help="The newer release, e.g. 1.5.0.")],
            fmt: FormatOption = Format.text, spec: SpecArg = Path("pipeline.yaml")) -> None:
    """List the commits between two releases (their tags), newest first."""
    import json

    from pipec import build
    from pipec.aws import targets
    from pipec.plan import names
    from pipec.release import git

    def action() -> None:
        prefix = build.validated(spec).spec.release.tag_prefix
        tags = [names.tag(prefix, targets.version(v, flag)) for v, flag in ((since, "--from"), (until, "--to"))]
        found = git.commits(tags[0], tags[1], spec.resolve().parent)
        if fmt == Format.json:
            typer.echo(json.dumps([{"sha": sha, "subject": subject} for sha, subject in found], indent=2))
        else:
            typer.echo("".join(f"{sha[:12]} {subject}\n" for sha, subject in found), nl=False)
    _execute(action, fmt.value)


@app.command()
def prune(env: EnvOption,
          region: Annotated[str | None, typer.Option("--region", "-r", help="One region (default: every region of the "
                                                     "spec); a region the spec no longer has may be named.")] = None,
          apply: Annotated[bool, typer.Option("--apply", help="Delete them (default: only list them).")] = False,
          spec: SpecArg = Path("pipeline.yaml")) -> None:
    """List the service stacks pipec made that pipeline.yaml no longer names, and with --apply delete them
    (administrator credentials; what their templates retain stays)."""
    from pipec import build
    from pipec.aws import prune as pruning
    from pipec.aws.session import Aws

    def action() -> None:
        pruning.prune(Aws(), build.validated_plan(spec), env, region, apply, typer.echo)
    _execute(action)


@app.command()
def verify(env: EnvOption, version: Annotated[str, typer.Option("--version", help="The release that passed.")],
           run: Annotated[str | None, typer.Option("--run", help="The URL of the run that checked it (default: this "
                                                   "GitHub Actions run).")] = None,
           spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Record that a release passed an environment's checks, so the next environment may receive it (with the build
    role's credentials; the release workflow runs it)."""
    from pipec import build
    from pipec.aws import verified
    from pipec.aws.session import Aws
    from pipec.release.github import this_run

    def action() -> None:
        verified.record(Aws(), build.validated_plan(spec), env, version, this_run() if run is None else run,
                        typer.echo)
    _execute(action)


@app.command()
def rollback(env: EnvOption,
             to: Annotated[str, typer.Option("--to", help="A version; previous (the newest version older than the "
                                             "running one that the ledger records); or verified (the newest such "
                                             "version that passed this environment's checks).")] = "previous",
             service: ServiceOption = None, region: RegionOption = None,
             reason: Annotated[str | None, typer.Option("--reason", help="Why, kept in the ledger (e.g. an "
                                                        "incident id).")] = None,
             spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Redeploy an earlier release exactly as it was recorded."""
    from pipec import build
    from pipec.aws import deploy as deploys
    from pipec.aws.session import Aws

    request = deploys.Request(env, to, service, region, action="rollback", reason=reason)
    _execute(lambda: deploys.deploy(Aws(), build.validated_plan(spec), request, typer.echo))


@app.command()
def status(env: Annotated[str | None, typer.Option("--env", "-e", help="One environment (default: all).")] = None,
           region: RegionOption = None,
           fmt: Annotated[StatusFormat, typer.Option("--format", help="table, json, or version (the newest "
                                                     "version running, for checks).")] = StatusFormat.table,
           spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Show which version of which service runs in which environment and region."""
    from pipec import build
    from pipec.aws import report
    from pipec.aws.session import Aws

    def action() -> None:
        notes: list[str] = []
        full = fmt != StatusFormat.version  # the checks' role reads versions only
        rows = report.status(Aws(), build.validated_plan(spec), env, region, notes, strays=full, artifacts=full)
        for note in notes:
            sys.stderr.write(f"pipec: {note}\n")
        if fmt == StatusFormat.version:
            typer.echo(report.newest_version(rows))
        elif fmt == StatusFormat.json:
            typer.echo(report.as_json(rows), nl=False)
        else:
            typer.echo(report.table(rows, ["env", "region", "service", "version", "commit", "artifact", "at", "by",
                                           "stack"]), nl=False)
    _execute(action)


@app.command()
def history(env: EnvOption, service: ServiceOption = None, region: RegionOption = None,
            fmt: Annotated[Format, typer.Option("--format", help="text (a table) or json.")] = Format.text,
            spec: SpecArg = Path("pipeline.yaml")) -> None:
    """List the recorded deployments of an environment, newest first."""
    from pipec import build
    from pipec.aws import report
    from pipec.aws.session import Aws

    def action() -> None:
        rows = report.history(Aws(), build.validated_plan(spec), env, service, region)
        if fmt == Format.json:
            typer.echo(report.as_json(rows), nl=False)
        else:
            typer.echo(report.table(rows, ["at", "region", "service", "action", "version", "commit", "by"]), nl=False)
    _execute(action)


@app.command()
def logs(env: EnvOption,
         service: Annotated[str, typer.Option("--service", "-s", help="The service whose logs to read.")],
         version: Annotated[str | None, typer.Option("--version", help="The release (default: the one running "
                                                     "there).")] = None,
         region: RegionOption = None,
         since: Annotated[int, typer.Option("--since", min=1, max=43200, help="How far back to look, in "
                                            "minutes.")] = 60,
         limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="At most this many lines per "
                                            "region.")] = 200,
         only_print: Annotated[bool, typer.Option("--print", help="Print each region's log group and Logs "
                                                  "Insights query (for the console) instead of running it.")] = False,
         spec: SpecArg = Path("pipeline.yaml")) -> None:
    """Show one release's logs of a service: a CloudWatch Logs Insights query over its log streams, per region."""
    from pipec import build
    from pipec.aws import logs as release_logs
    from pipec.aws.session import Aws

    def action() -> None:
        aws = Aws()
        for query in release_logs.queries(aws, build.validated_plan(spec), env, service, region, version, limit):
            typer.echo(f"# {query.region} {query.log_group}, release {query.version}")
            if only_print:
                typer.echo(query.text)
                continue
            for line in release_logs.run(aws, query, since * 60):
                typer.echo(line)
    _execute(action)


def run() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("\npipec: interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
