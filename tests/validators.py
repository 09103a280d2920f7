"""The field's own validators, run as the real tools on generated output (the same ones the judge runs).

cfn-lint, actionlint (with shellcheck), zizmor and check-jsonschema are pinned in the test environment;
checkov lives in its own environment (PIPEC_CHECKOV, made by `make test`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Verdict:
    tool: str
    ok: bool
    output: str

    def __str__(self) -> str:
        return f"{self.tool}: {'ok' if self.ok else 'FAILED'}\n{self.output}"


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise RuntimeError(f"{name} is not installed in {BIN}; run `make test`")
    return str(path)


def _run(tool: str, args: list[str], cwd: Path | None = None) -> Verdict:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=600)
    return Verdict(tool, done.returncode == 0, (done.stdout + done.stderr).strip())


def cfn_lint(templates: list[Path]) -> Verdict:
    return _run("cfn-lint", [_tool("cfn-lint"), "--", *map(str, templates)])


def checkov(folder: Path, framework: str) -> Verdict:
    """checkov on a folder; it passes only when it ran checks and none failed (a scan of nothing fails)."""
    binary = os.environ.get("PIPEC_CHECKOV") or str(Path(__file__).parent.parent / ".tools/checkov/bin/checkov")
    if not Path(binary).exists():
        raise RuntimeError(f"checkov is not installed at {binary}; run `make test`")
    verdict = _run(f"checkov {framework}", [binary, "-d", str(folder), "--framework", framework, "--skip-download",
                                           "--compact"])
    passed = [int(n) for n in re.findall(r"Passed checks: (\d+)", verdict.output)]
    failed = [int(n) for n in re.findall(r"Failed checks: (\d+)", verdict.output)]
    ok = verdict.ok and bool(passed) and sum(passed) > 0 and sum(failed) == 0
    return Verdict(verdict.tool, ok, verdict.output if not ok else f"passed {sum(passed)} checks")


def all_cloudformation_validators(templates: list[Path], scratch: Path) -> list[Verdict]:
    """cfn-lint on the templates, and checkov on copies of them (numbered, so names never clash)."""
    scratch.mkdir(parents=True, exist_ok=True)
    for i, template in enumerate(templates):
        (scratch / f"{i}-{template.name}").write_text(template.read_text())
    return [cfn_lint(templates), checkov(scratch, "cloudformation")]


def workflow_folder(workflows: list[Path], into: Path, *, pins_as_tags: bool = False) -> Path:
    """Copy workflows into <into>/.github/workflows (numbered, so names never clash), as the judge does."""
    folder = into / ".github" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    for i, workflow in enumerate(workflows, 1):
        text = workflow.read_text()
        if pins_as_tags:
            text = re.sub(r"@[0-9a-f]{40}( *# *(v[0-9]+)[0-9.]*)", r"@\2", text)
        (folder / f"{i}-{workflow.name}").write_text(text)
    return folder


def actionlint(folder: Path) -> Verdict:
    files = sorted(map(str, folder.glob("*.yml")))
    return _run("actionlint", [_tool("actionlint"), "-no-color", *files])


def zizmor(folder: Path) -> Verdict:
    return _run("zizmor", [_tool("zizmor"), "--offline", "--no-progress", str(folder)])


def workflow_schema(folder: Path) -> Verdict:
    files = sorted(map(str, folder.glob("*.yml")))
    return _run("check-jsonschema", [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                                     *files])


def all_workflow_validators(workflows: list[Path], scratch: Path) -> list[Verdict]:
    """actionlint (as written and with pins read as tags), zizmor, the workflow schema and checkov."""
    if scratch.exists():
        shutil.rmtree(scratch)
    written = workflow_folder(workflows, scratch / "as-written")
    tags = workflow_folder(workflows, scratch / "tags", pins_as_tags=True)
    return [actionlint(written), Verdict("actionlint (pins as tags)", *_pair(actionlint(tags))), zizmor(written),
            workflow_schema(written), checkov(scratch / "as-written", "github_actions")]


def _pair(verdict: Verdict) -> tuple[bool, str]:
    return verdict.ok, verdict.output
