"""The wheel works on its own: built, installed into a fresh environment outside the repository, and run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, REPO


@pytest.mark.slow
def test_installed_wheel_validates_and_builds(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(dist), str(REPO)], check=True, capture_output=True)
    [wheel] = dist.glob("pipec-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # The fresh environment borrows the already-installed dependencies, but not pipec itself.
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "--no-deps", "--no-index", "--quiet", str(wheel)], check=True, capture_output=True)

    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(EXAMPLE, work / "pipeline.yaml")
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import pipec, pipec.templates; print(pipec.__file__); print(pipec.templates.__file__)"],
                           cwd=work, capture_output=True, text=True, check=True).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where

    validate = subprocess.run([str(venv / "bin" / "pipec"), "validate", "pipeline.yaml"], cwd=work,
                              capture_output=True, text=True, check=False)
    assert (validate.returncode, validate.stdout) == (0, "pipeline.yaml: ok\n"), validate.stderr
    build = subprocess.run([str(venv / "bin" / "pipec"), "build", "pipeline.yaml"], cwd=work,
                           capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    built = sorted(p.relative_to(work / "generated").as_posix() for p in (work / "generated").rglob("*")
                   if p.is_file())
    committed = sorted(p.relative_to(REPO / "generated").as_posix() for p in (REPO / "generated").rglob("*")
                       if p.is_file())
    assert built == committed
    for name in built:
        assert (work / "generated" / name).read_bytes() == (REPO / "generated" / name).read_bytes(), name
