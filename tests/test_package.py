"""The wheel works on its own: built, installed into a fresh environment outside the repository, and run."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from pipec.render.output import Output
from pipec.render.parse import parse
from tests.conftest import EXAMPLE, REPO, workflows_of
from tests.rehearsal.rehearse import build_wheel, served

LOCK = REPO / "compiler" / "pipec" / "runtime.lock"


def _steps() -> list[dict[str, Any]]:
    """Every step of every generated workflow of the example."""
    found = []
    for path in workflows_of(REPO / "generated"):
        jobs = parse(Output(path.name, path.read_text()))["jobs"]
        found += [step for job in jobs.values() for step in job.get("steps", [])]
    return found


def _locked() -> dict[str, tuple[str, list[str]]]:
    """The runtime lock: each distribution's version and its sha256 hashes."""
    found: dict[str, tuple[str, list[str]]] = {}
    text = "\n".join(line for line in LOCK.read_text().splitlines() if not line.startswith("#"))
    for block in re.split(r"\n(?=\S)", text):
        name, version = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block).groups()  # type: ignore[union-attr]
        found[canonicalize_name(name)] = (version, re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return found


def test_every_step_that_installs_pipec_takes_its_dependencies_from_the_lock_by_hash() -> None:
    installs = [s for s in _steps() if "pip install" in s.get("run", "")]
    assert installs
    for step in installs:
        lines = [line for line in step["run"].splitlines() if "pip install" in line]
        assert lines == ['python -m pip install --no-deps "$PIPEC_REQUIREMENT"',
                         'python -m pip install --no-deps --require-hashes --requirement "$(python -c "$FIND_LOCK")"']


def test_the_lock_pins_what_the_tests_ran_with_hashes_for_every_file() -> None:
    """Every runtime dependency, at the version requirements/dev.lock installs for the tests, with hashes."""
    import tomllib

    dev = {canonicalize_name(name): version for name, version in (
        line.split("==") for line in (REPO / "requirements" / "dev.lock").read_text().splitlines() if "==" in line)}
    locked = _locked()
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared:
        name = canonicalize_name(re.match(r"[A-Za-z0-9._-]+", requirement).group())  # type: ignore[union-attr]
        assert name in locked, name
    for name, (version, hashes) in locked.items():
        assert hashes, name
        if name in dev:
            assert dev[name] == version, name


@pytest.mark.slow
def test_the_lock_installs_on_the_runner_the_workflows_name(tmp_path: Path) -> None:
    """What the workflows' runner (CPython 3.12 on x86-64 Linux) would fetch: every file found and its hash
    matching, without installing anything."""
    from pipec.plan.model import PYTHON_VERSION

    platforms = [arg for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
                 for arg in ("--platform", tag)]
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--no-cache-dir", "--no-deps",
                              "--require-hashes", "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                              "--implementation", "cp", *platforms, "--requirement", str(LOCK),
                              "--dest", str(tmp_path)], capture_output=True, text=True, check=False)
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    got = {canonicalize_name(p.name.split("-")[0]) for p in tmp_path.glob("*.whl")}
    assert got == set(_locked()) - {"colorama"}  # (Windows only)


@pytest.mark.slow
def test_installed_wheel_validates_and_builds(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    wheel = build_wheel(dist)
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()

    # pipec installed as the generated workflows install it: their own step, run as written, with the requirement
    # a team pins (the wheel's URL and its sha256) and the dependencies exactly as pipec's runtime.lock names them.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    step = next(s for s in _steps() if s.get("name") == "Install pipec")
    env = {**os.environ, **step.get("env", {}), "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)

    def install(requirement: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path, capture_output=True,
                              text=True, check=False, env={**env, "PIPEC_REQUIREMENT": requirement})

    with served(dist) as base:
        pin = f"pipec @ {base}/{wheel.name}#sha256={sha256}"
        # pip checks the fragment: other bytes under the same URL are refused, and nothing is installed.
        refused = install(pin.replace(sha256, hashlib.sha256(b"other").hexdigest()))
        assert refused.returncode != 0 and "DO NOT MATCH THE HASHES" in refused.stderr, refused.stderr[-2000:]
        assert not list((venv / "lib").glob("python*/site-packages/pipec"))
        installed = install(pin)
    assert installed.returncode == 0, installed.stderr[-3000:]
    check = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stdout

    # `pipec init` of the installed pipec pins exactly it (pip recorded the URL and the hash), and that spec
    # validates without the PC222 warning.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    init = subprocess.run([str(venv / "bin" / "pipec"), "init"], cwd=fresh, capture_output=True, text=True,
                          check=False)
    assert (init.returncode, init.stderr) == (0, ""), init.stderr
    assert f"  pipec: {json.dumps(pin)}  # the pipec that wrote this file\n" in (fresh / "pipeline.yaml").read_text()
    validate = subprocess.run([str(venv / "bin" / "pipec"), "validate", "pipeline.yaml"], cwd=fresh,
                              capture_output=True, text=True, check=False)
    assert (validate.returncode, validate.stdout, validate.stderr) == (0, "pipeline.yaml: ok\n", "")

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
