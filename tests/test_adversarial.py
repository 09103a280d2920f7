"""Adversarial inputs beyond the error catalogue: look-alike names, names at AWS's limits, output paths that try
to leave the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import cli


def _spec(workdir: Path, old: str, new: str) -> None:
    spec = workdir / "pipeline.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))


@pytest.mark.parametrize("name", ["аpi", "api\u200b", "Api", "api_v2", "api--v2", "-api", "1api", "api-"])
def test_look_alike_and_invalid_names_are_refused_at_the_key(workdir: Path, name: str) -> None:
    _spec(workdir, "\n  api:", f"\n  {name}:")
    result = cli("validate", "pipeline.yaml", cwd=workdir)
    assert result.exit_code == 1
    assert "error[PC104]" in result.stderr and f'the name "{name}" must be a lowercase name' in result.stderr


def test_names_at_the_limit_build_and_one_past_it_does_not(workdir: Path) -> None:
    # project (20) + environment (10) + service (32) + 2 hyphens = 64: the longest Lambda function name allowed.
    _spec(workdir, "project: stigg", "project: " + "p" * 20)
    _spec(workdir, "\n  webhooks:", "\n  " + "w" * 32 + ":")
    result = cli("build", "pipeline.yaml", cwd=workdir)
    assert result.exit_code == 0, result.stderr
    spec = workdir / "pipeline.yaml"
    spec.write_text(spec.read_text().replace("production", "productionx"))  # one character more
    result = cli("validate", "pipeline.yaml", cwd=workdir)
    assert result.exit_code == 1
    assert "error[PC211]: the function name" in result.stderr
    assert "would have 65 characters; AWS allows 64" in result.stderr


@pytest.mark.parametrize("folder", ["../outside", "/etc/pipec", "generated/../../x", "a/./b"])
def test_a_workflows_folder_outside_the_repository_is_refused(workdir: Path, folder: str) -> None:
    _spec(workdir, "workflows_dir: generated/workflows", f"workflows_dir: {folder}")
    result = cli("build", "pipeline.yaml", cwd=workdir)
    assert result.exit_code == 1
    assert "error[PC104]: `github.workflows_dir`" in result.stderr
    assert not (workdir / "generated").exists()


def test_a_symbolic_link_out_of_the_repository_is_refused(workdir: Path,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (workdir / ".github").symlink_to(outside)
    _spec(workdir, "workflows_dir: generated/workflows", "workflows_dir: .github/workflows")
    result = cli("build", "pipeline.yaml", cwd=workdir)
    assert result.exit_code == 1
    assert "error[PC506]: .github/workflows/deploy-production.yml would be written to" in result.stderr
    assert list(outside.iterdir()) == []
    assert not (workdir / "generated").exists()


def _listing(folder: Path) -> dict[str, bytes]:
    """Every file and folder under a folder (unlike conftest.snapshot, a new empty folder shows too)."""
    return {p.relative_to(folder).as_posix(): b"" if p.is_dir() else p.read_bytes() for p in folder.rglob("*")}


@pytest.mark.parametrize(("output", "message"), [
    ("pipeline.yaml", "pipeline.yaml is a file; pipec writes the generated tree into a folder of its own"),
    (".", ". holds pipeline.yaml itself; pipec replaces its output folder as a whole"),
    ("..", ".. holds pipeline.yaml itself"),
    ("/", "/ holds pipeline.yaml itself"),
    ("src", "src already holds files, and no pipec build made it (it has no manifest.json)"),
])
def test_an_output_folder_that_is_not_pipecs_own_is_refused(workdir: Path, output: str, message: str) -> None:
    """pipec replaces its output folder as a whole: the spec, the repository and a team's folder are never it."""
    (workdir / "src").mkdir()
    (workdir / "src" / "main.py").write_text("print('ours')\n")
    before = _listing(workdir)
    result = cli("build", "pipeline.yaml", "--output", output, cwd=workdir)
    assert result.exit_code == 1
    assert f"error[PC502]: {message}" in result.stderr
    assert _listing(workdir) == before


@pytest.mark.parametrize("prefix", ["-v", "--output", ".v", "/v"])
def test_a_tag_prefix_git_would_misread_is_refused_at_its_line(workdir: Path, prefix: str) -> None:
    _spec(workdir, "  tag_prefix: v ", f'  tag_prefix: "{prefix}" ')
    result = cli("validate", "pipeline.yaml", cwd=workdir)
    assert result.exit_code == 1
    assert (f'pipeline.yaml:11:15: error[PC104]: `release.tag_prefix` ("{prefix}") must be a short tag prefix '
            "such as v (letters, digits, . _ / and -, not first: -, . or /)") in result.stderr, result.stderr


def _generated_spec(workdir: Path, services: int, images: int, env: dict[str, str]) -> None:
    """A spec of generated services, the first `images` ECS services each with an image of its own."""
    from tests.specgen import spec, text

    data = spec(services)
    ecs = [name for name, s in data["services"].items() if s["kind"] == "ecs-fargate"][:images]
    for name in ecs:
        data["artifacts"][f"{name}-image"] = {"type": "container-image"}
        data["services"][name]["artifact"] = f"{name}-image"
    data["services"][ecs[0]]["env"] = env
    (workdir / "pipeline.yaml").write_text(text(data))


@pytest.mark.parametrize(("images", "env", "template", "hint"), [
    (1, {f"BLOB_{i}": "x" * 4000 for i in range(12)}, "services/svc0.yaml", 'values of service "svc0" are written'),
    (45, {}, "bootstrap.yaml", "every container-image artifact adds an ECR repository"),
])
def test_a_template_too_big_for_one_cloudformation_request_is_refused(
        workdir: Path, images: int, env: dict[str, str], template: str, hint: str) -> None:
    _generated_spec(workdir, 90, images, env)
    result = cli("build", "pipeline.yaml", cwd=workdir)
    assert result.exit_code == 1
    assert re.search(rf"generated/cloudformation/{template}: error\[PC308\]: this template would take [0-9,]+ bytes; "
                     "CloudFormation accepts at most 51,200 in a request", result.stderr), result.stderr
    assert hint in result.stderr
    assert not (workdir / "generated").exists()
