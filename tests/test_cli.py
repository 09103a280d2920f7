"""The command line: exit codes, output streams, formats, and no traceback ever."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pipec import __version__
from tests.conftest import BIN, REPO, cli


def test_version() -> None:
    result = cli("--version")
    assert (result.exit_code, result.stdout) == (0, f"pipec {__version__}\n")


def test_help_lists_commands_and_exit_codes() -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for word in ("validate", "build", "check", "schema", "init", "Exit codes: 0 ok; 1", "70 internal error"):
        assert word in result.stdout


def test_usage_error_exits_2() -> None:
    result = cli("validate", "--no-such-flag")
    assert result.exit_code == 2
    assert "No such option" in result.stderr


def test_validate_the_example(workdir: Path) -> None:
    result = cli("validate", "pipeline.yaml", cwd=workdir)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "pipeline.yaml: ok\n", "")


def test_errors_go_to_stderr_and_json_to_stdout(workdir: Path) -> None:
    spec = workdir / "pipeline.yaml"
    spec.write_text(spec.read_text().replace("    port: 8080", "    port: eighty"))
    text = cli("validate", "pipeline.yaml", cwd=workdir)
    assert text.exit_code == 1
    assert text.stdout == ""
    assert "pipeline.yaml:71:11: error[PC103]" in text.stderr

    machine = cli("validate", "pipeline.yaml", "--format", "json", cwd=workdir)
    assert machine.exit_code == 1
    payload = json.loads(machine.stdout)
    assert payload["ok"] is False
    assert payload["diagnostics"][0] | {"message": ""} == {
        "code": "PC103", "message": "", "file": "pipeline.yaml", "line": 71, "column": 11, "hint": None,
        "severity": "error"}


def test_github_annotations_inside_actions(workdir: Path) -> None:
    spec = workdir / "pipeline.yaml"
    spec.write_text(spec.read_text().replace("    artifact: api-image", "    artifact: api-img"))
    result = cli("validate", "pipeline.yaml", cwd=workdir, env={"GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1
    assert ("::error file=pipeline.yaml,line=70,col=15,title=pipec PC201::service \"api\" uses unknown "
            "artifact \"api-img\"%0Ahint: did you mean \"api-image\"?") in result.stderr


def test_explain() -> None:
    found = cli("explain", "pc008")
    assert (found.exit_code, found.stdout) == (0, "PC008: a key appears twice in the same mapping\n"
                                                  "  stage: load; exit code 1\n"
                                                  "  example: port: 80 ... port: 8080\n"
                                                  "  fix: keep one of the two; YAML would silently keep the last\n")
    assert cli("explain", "PC201").stdout.startswith("PC201: every service's artifact exists")
    unknown = cli("explain", "PC999")
    assert (unknown.exit_code, unknown.stdout) == (1, "")
    assert "error[PC407]: unknown diagnostic code PC999" in unknown.stderr


def test_explain_alone_lists_every_code_once() -> None:
    from pipec.codes import CODES

    listed = cli("explain")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(CODES)
    assert "PC615  exit 130 a deployment was interrupted" in listed.stdout


def test_the_packaged_schema_is_what_the_models_make() -> None:
    from pipec.validate.schema import json_schema, packaged_schema

    assert packaged_schema() == json_schema(), "run `make golden` after changing the models"


def test_schema_is_the_committed_one() -> None:
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["required"]) == {"pipec", "project", "repository", "artifacts", "environments",
                                       "services", "alerts"}
    assert result.stdout in (REPO / "generated" / "pipeline.schema.json").read_text()


def test_init_writes_a_valid_spec_and_never_overwrites(tmp_path: Path) -> None:
    first = cli("init", cwd=tmp_path)
    assert first.exit_code == 0
    assert cli("validate", cwd=tmp_path).exit_code == 0
    again = cli("init", cwd=tmp_path)
    assert again.exit_code == 1
    assert "already exists" in again.stderr
    assert cli("init", "--force", cwd=tmp_path).exit_code == 0


def test_a_bug_is_reported_without_a_traceback(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipec.build

    def broken(*args: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(pipec.build, "validate_only", broken)
    result = cli("validate", "pipeline.yaml", cwd=workdir)
    assert (result.exit_code, result.stdout, result.stderr) == (
        70, "", "pipec: internal error: ValueError: boom\n"
                "This is a bug in pipec; rerun with PIPEC_DEBUG=1 for details and report it.\n")


def test_interrupt_exits_130(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipec.build

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipec.build, "validate_only", interrupted)
    result = cli("validate", "pipeline.yaml", cwd=workdir)
    assert (result.exit_code, result.stdout, result.stderr) == (130, "", "\npipec: interrupted\n")


def test_the_committed_generated_tree_matches_the_example() -> None:
    result = cli("check", "pipeline.yaml", cwd=REPO)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("pipec: 39 generated files match pipeline.yaml")


COMMANDS = {"console script": [str(BIN / "pipec")], "python -m": [str(BIN / "python"), "-m", "pipec"]}


@pytest.mark.parametrize(("command", "unbuffered"), [("console script", ""), ("console script", "1"),
                                                     ("python -m", "")])
def test_the_installed_command_keeps_its_exit_codes_and_whole_output(workdir: Path, command: str,
                                                                      unbuffered: str) -> None:
    """The installed command ends without the interpreter's tear-down; its exit codes and every byte it printed
    must survive that, with buffered and unbuffered streams alike."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*COMMANDS[command], *args], cwd=workdir, capture_output=True, text=True, check=False,
                              env={**os.environ, "PYTHONUNBUFFERED": unbuffered}, timeout=120)

    built = run("build", "pipeline.yaml")
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith("pipec: wrote 39 file(s)") and built.stdout.endswith("generated/manifest.json\n")
    schema = run("schema")
    assert (schema.returncode, schema.stdout) == (0, (REPO / "generated" / "pipeline.schema.json").read_text())
    fresh = run("check", "pipeline.yaml")  # printed without a flush of its own
    assert (fresh.returncode, fresh.stdout) == (0, "pipec: 39 generated files match pipeline.yaml\n")
    (workdir / "generated" / "README.md").write_text("edited\n")
    stale = run("check", "pipeline.yaml")
    assert stale.returncode == 3 and "generated/README.md" in stale.stderr
    spec = workdir / "pipeline.yaml"
    spec.write_text(spec.read_text().replace("    port: 8080", "    port: eighty"))
    wrong = run("validate", "pipeline.yaml")
    assert wrong.returncode == 1 and wrong.stderr.endswith("pipec: 1 error\n")
    usage = run("validate", "--no-such-flag")
    assert usage.returncode == 2 and "No such option" in usage.stderr


def test_a_closed_output_pipe_ends_quietly(workdir: Path) -> None:
    """`pipec schema | head -1`: once the reader is gone, pipec stops like other Unix tools, without a report."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before pipec writes a byte
    try:
        done = subprocess.run([str(BIN / "pipec"), "schema"], cwd=workdir, stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=60, check=False)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")


def test_ctrl_c_while_starting_up_exits_130_without_a_traceback(tmp_path: Path) -> None:
    starting = "import pipec.cli.cli\ndef run():\n    raise KeyboardInterrupt\npipec.cli.cli.run = run\n" \
               "from pipec.__main__ import main\nmain()\n"
    done = subprocess.run([str(BIN / "python"), "-c", starting], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "\npipec: interrupted\n")


IMPORTS = """
import sys
from pipec.__main__ import main
sys.argv = ["pipec", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
finally:
    roots = {name.partition(".")[0] for name in sys.modules}
    sys.stderr.write("IMPORTED " + " ".join(sorted(roots)) + "\\n")
    sys.stderr.flush()
"""


@pytest.mark.parametrize(("args", "absent"), [
    (["--version"], {"pydantic", "typer", "yaml", "jinja2", "boto3", "botocore", "cfnlint"}),
    (["validate", "pipeline.yaml"], {"jinja2", "boto3", "botocore", "cfnlint", "semver"}),
    (["build", "pipeline.yaml"], {"boto3", "botocore", "cfnlint", "semver"}),
    (["check", "pipeline.yaml"], {"boto3", "botocore", "cfnlint", "semver"}),
])
def test_commands_import_only_what_they_need(workdir: Path, args: list[str], absent: set[str]) -> None:
    """Start-up stays lean: boto3, cfn-lint and the renderer are loaded only by the commands that use them."""
    done = subprocess.run([str(BIN / "python"), "-c", IMPORTS, *args], cwd=workdir, capture_output=True, text=True,
                          timeout=60, check=False)
    imported = set(done.stderr.rpartition("IMPORTED ")[2].split())
    assert "pipec" in imported, done.stderr
    assert imported & absent == set()
