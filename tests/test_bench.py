"""`make bench` keeps working: one quick pass prints its whole table and writes nothing into the repository.

The timings themselves are not judged here (a test suite is no place for them); `make bench` prints them against
the targets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                          check=False).stdout


@pytest.mark.slow
def test_the_benchmark_runs_and_writes_nothing_into_the_repository(tmp_path: Path) -> None:
    before = _status()
    done = subprocess.run([sys.executable, str(REPO / "bench" / "run.py")], capture_output=True, text=True,
                          timeout=600, check=False, env={**os.environ, "PIPEC_BENCH_RUNS": "1",
                                                         "PIPEC_BENCH_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split()[0:2] for line in done.stdout.splitlines() if line.endswith("MiB")]
    assert rows == [["example", "39"], ["1", "services"], ["5", "services"], ["20", "services"], ["50", "services"],
                    ["100", "services"], ["200", "services"]]
    assert "build from 50 to 200 services:" in done.stdout
    for target in ("pipec build      example", "pipec build      50 services", "pipec --version  example"):
        assert target in done.stdout
    assert list(tmp_path.iterdir()) == []  # its scratch folder is gone too
    assert _status() == before
