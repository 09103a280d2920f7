"""Every error case under tests/errors/ gives exactly the output in its .out file, and never a traceback.

Each case is one spec file (`<case>.yaml`) and one expected output (`<case>.out`: the exit code, then the
exact stderr). Cases whose input is too big or odd to commit are made by MADE below. Regenerate the .out
files after an intended message change with `make golden` and review the diff.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, cli, snapshot

CASES = REPO / "tests" / "errors"
UPDATE = os.environ.get("PIPEC_UPDATE_GOLDEN") == "1"


def _huge(path: Path) -> None:
    with path.open("w") as handle:
        handle.write("pipec: 1\nnotes: |\n")
        line = "  " + "x" * 1000 + "\n"
        for _ in range(30 * 1024):
            handle.write(line)


def _deep(path: Path) -> None:
    path.write_text("pipec: 1\nproject: " + "[" * 20000 + "]" * 20000 + "\n")


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # nobody writes to it: reading it would wait forever


def _long_number(path: Path) -> None:
    path.write_text((CASES / "bad-service-name.yaml").read_text() + "timeout: " + "9" * 5000 + "\n")


MADE: dict[str, Callable[[Path], None]] = {
    "fifo": _fifo,
    "number-of-5000-digits": _long_number,
    "huge-file": _huge,
    "deep-nesting": _deep,
    "directory": _directory,
    "missing-file": lambda path: None,
}


def _cases() -> list[str]:
    names = {p.stem for p in CASES.glob("*.yaml")} | set(MADE)
    return sorted(names)


def test_there_are_at_least_thirty_cases() -> None:
    assert len(_cases()) >= 30
    assert all((CASES / f"{name}.out").exists() or UPDATE for name in _cases())


@pytest.mark.parametrize("case", _cases())
def test_error_case(case: str, tmp_path: Path) -> None:
    spec = tmp_path / "pipeline.yaml"
    if case in MADE:
        MADE[case](spec)
    else:
        shutil.copy(CASES / f"{case}.yaml", spec)
    # An earlier build's tree (the example's committed one), plus a file of the team's own.
    shutil.copytree(REPO / "generated", tmp_path / "generated")
    (tmp_path / "generated" / "keep.txt").write_text("untouched")
    before = snapshot(tmp_path / "generated")

    result = cli("build", "pipeline.yaml", cwd=tmp_path)
    actual = f"exit: {result.exit_code}\n{result.stderr}"

    golden = CASES / f"{case}.out"
    if UPDATE:
        golden.write_text(actual)
    assert actual == golden.read_text()
    assert "Traceback" not in result.stderr + result.stdout
    if result.exit_code != 0:
        # A failed build never touches generated/.
        assert snapshot(tmp_path / "generated") == before


def test_the_golden_update_switch_is_refused_under_ci() -> None:
    import subprocess
    import sys

    env = {**os.environ, "CI": "true", "PIPEC_UPDATE_GOLDEN": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "--collect-only", "-q",
                           "tests/test_errors.py"], cwd=REPO, env=env, capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "PIPEC_UPDATE_GOLDEN is set under CI" in done.stderr
