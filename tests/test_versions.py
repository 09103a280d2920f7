"""`pipec version next|current` on temporary git repositories: tags and conventional commits."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, cli


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


def _commit(repo: Path, message: str) -> None:
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    shutil.copy(EXAMPLE, tmp_path / "pipeline.yaml")
    _git(tmp_path, "add", "pipeline.yaml")
    _commit(tmp_path, "chore: start")
    return tmp_path


def _next(repo: Path) -> str:
    result = cli("version", "next", cwd=repo)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_no_tag_gives_the_initial_version(repo: Path) -> None:
    assert _next(repo) == "0.1.0"
    current = cli("version", "current", cwd=repo)
    assert current.exit_code == 1
    assert "error[PC703]: no release tag yet" in current.stderr


@pytest.mark.parametrize(("messages", "expected"), [
    (["fix: a crash"], "1.4.3"),
    (["docs: typo", "chore: deps"], "1.4.3"),
    (["fix: a", "feat(api): plans endpoint", "fix: b"], "1.5.0"),
    (["feat!: drop v1 endpoints"], "2.0.0"),
    (["refactor(core)!: new storage"], "2.0.0"),
    (["fix: rename\n\nBREAKING CHANGE: the config key changed"], "2.0.0"),
    (["feat: x\n\nBREAKING-CHANGE: y"], "2.0.0"),
])
def test_the_next_version_follows_conventional_commits(repo: Path, messages: list[str], expected: str) -> None:
    _git(repo, "tag", "v1.4.2")
    for message in messages:
        _commit(repo, message)
    assert _next(repo) == expected
    assert cli("version", "current", cwd=repo).stdout == "1.4.2\n"


def test_pre_release_and_non_semver_tags_are_not_releases(repo: Path) -> None:
    _git(repo, "tag", "v1.0.0")
    _commit(repo, "feat: a")
    _git(repo, "tag", "v1.1.0-rc.1")
    _git(repo, "tag", "vnext")
    _git(repo, "tag", "v1.2")
    _git(repo, "tag", "release-9.0.0")
    _commit(repo, "fix: b")
    assert cli("version", "current", cwd=repo).stdout == "1.0.0\n"
    assert _next(repo) == "1.1.0"


def test_only_commits_since_the_last_release_count(repo: Path) -> None:
    _commit(repo, "feat!: old breaking change")
    _git(repo, "tag", "v2.0.0")
    _commit(repo, "fix: small")
    assert _next(repo) == "2.0.1"


def test_a_commit_a_release_already_names_is_that_release(repo: Path) -> None:
    """A rerun of a release workflow on its own commit gets its version again, never the next one."""
    _git(repo, "tag", "v1.0.0")
    _commit(repo, "feat: a")
    _git(repo, "tag", "v1.1.0")
    _git(repo, "tag", "v1.1.0-rc.1")  # not a release
    _git(repo, "tag", "w9.0.0")  # not this prefix
    assert _next(repo) == "1.1.0"
    _git(repo, "tag", "v1.0.1")  # two releases name one commit: the highest
    assert _next(repo) == "1.1.0"
    _git(repo, "checkout", "-q", "v1.0.0")
    assert _next(repo) == "1.0.0"  # an older release's own commit is that release, not a new one
    _git(repo, "checkout", "-q", "main")
    _commit(repo, "fix: b")
    assert _next(repo) == "1.1.1"


def test_the_spec_prefix_and_initial_version_are_used(repo: Path) -> None:
    spec = repo / "pipeline.yaml"
    spec.write_text(spec.read_text().replace("tag_prefix: v ", "tag_prefix: release- ").replace(
        "initial_version: 0.1.0", "initial_version: 1.0.0"))
    assert _next(repo) == "1.0.0"
    _git(repo, "tag", "v5.0.0")  # not this spec's prefix
    assert _next(repo) == "1.0.0"
    _git(repo, "tag", "release-1.0.0")
    _commit(repo, "feat: y")
    assert _next(repo) == "1.1.0"


def test_outside_a_repository(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "pipeline.yaml")
    result = cli("version", "next", cwd=tmp_path)
    assert result.exit_code == 1
    assert "error[PC701]" in result.stderr
