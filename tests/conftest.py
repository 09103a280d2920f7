"""Shared fixtures: paths, the CLI through typer's runner, and a clean environment for every test."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "pipeline.yaml"
SPECS = REPO / "tests" / "specs"
BIN = Path(sys.executable).parent
# pipec's template cache, for the tests and every pipec they start: inside the repository, never in ~/.cache
os.environ.setdefault("PIPEC_CACHE_DIR", str(REPO / "build" / "test-cache"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the caller's GitHub Actions, colour or AWS settings."""
    for name in ("GITHUB_ACTIONS", "GITHUB_WORKSPACE", "NO_COLOR", "PIPEC_DEBUG", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Run a pipec command in this process through typer's runner (fast), in a given folder."""
    from pipec.cli.cli import app

    previous = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner(env=env).invoke(app, list(args), catch_exceptions=False)
    finally:
        os.chdir(previous)
    return Run(result.exit_code, result.stdout, result.stderr)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under a folder with its sha256 (empty when the folder does not exist)."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def pipec_process(*args: str, cwd: Path, env: dict[str, str] | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed `pipec` as a whole process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(BIN / "pipec"), *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A folder holding a copy of the example spec as pipeline.yaml."""
    shutil.copy(EXAMPLE, tmp_path / "pipeline.yaml")
    yield tmp_path


SPEC_NAMES = ("example", "lambda-only", "ecs-only", "single-region", "three-environments", "hostile", "long-names",
              "saas-three-accounts", "ecs-fleet", "one-service", "every-option")


def spec_source(name: str) -> Path:
    return EXAMPLE if name == "example" else SPECS / f"{name}.yaml"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each spec (the example and tests/specs/*) built into a folder of its own; name -> folder."""
    folders = {}
    for name in SPEC_NAMES:
        folder = tmp_path_factory.mktemp(name)
        shutil.copy(spec_source(name), folder / "pipeline.yaml")
        result = cli("build", "pipeline.yaml", cwd=folder)
        assert result.exit_code == 0, f"{name}: {result.stderr}"
        folders[name] = folder
    return folders


def templates_of(folder: Path) -> list[Path]:
    return sorted((folder / "generated" / "cloudformation").rglob("*.yaml"))


def workflows_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.yml") if "workflows" in p.parts)


def bootstrap_of(folder: Path) -> dict[str, Any]:
    """The resources of a built spec's bootstrap template."""
    from pipec.render.output import Output
    from pipec.render.parse import parse

    resources: dict[str, Any] = parse(Output("b.yaml", (folder / "generated/cloudformation/bootstrap.yaml")
                                             .read_text()))["Resources"]
    return resources


def sub_text(value: Any) -> str:
    """The text of a template value, a `!Sub` unwrapped."""
    return str(value["Fn::Sub"] if isinstance(value, dict) else value)


Calls = list[tuple[str, dict[str, Any]]]  # AWS API calls: (operation, parameters)


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every AWS API call botocore makes in this process (operation, parameters), in order, each still made."""
    from botocore.client import BaseClient

    calls: Calls = []
    real = BaseClient._make_api_call

    def recorded(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append((operation, params))
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    return calls


@pytest.fixture(scope="module")
def world() -> Iterator[Any]:
    """A moto server on 127.0.0.1 for the tests of one module."""
    from tests.aws_world import World, moto_server

    with moto_server() as url:
        yield World(url)


def pytest_configure(config: pytest.Config) -> None:
    """The golden-update switch rewrites expected outputs instead of comparing them: never under CI."""
    if os.environ.get("PIPEC_UPDATE_GOLDEN") and os.environ.get("CI"):
        raise pytest.UsageError("PIPEC_UPDATE_GOLDEN is set under CI: the golden tests would rewrite their "
                                "expected outputs instead of checking them")
