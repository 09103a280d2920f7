"""Release versions from git: the last release tag and the next version from conventional commits.

fix (and anything else) -> patch, feat -> minor, `!` or a BREAKING CHANGE footer -> major; the spec's
initial version when no release tag exists yet. Pre-release and non-semver tags are not releases. A commit that a
release tag already names is that release (a rerun of its workflow gets the same version, not the next one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipec.plan import names
from pipec.release.git import git

_SUBJECT = re.compile(r"^(?P<type>[a-zA-Z]+)(\([^)]*\))?(?P<bang>!)?: ")
_BREAKING = re.compile(r"^BREAKING[ -]CHANGE: ", re.MULTILINE)


@dataclass(frozen=True)
class Versions:
    current: str | None  # the last release, without the tag prefix
    next: str
    bump: str  # initial | major | minor | patch | released (HEAD is already that release)
    commits: int


def releases(prefix: str, repo: Path) -> list[str]:
    """Release versions (semver, no pre-release) found in tags with the prefix, highest first."""
    import semver

    found = []
    for tag in git("tag", "--list", f"{prefix}*", cwd=repo).split():
        text = tag[len(prefix):]
        if not semver.Version.is_valid(text):
            continue
        version = semver.Version.parse(text)
        if version.prerelease is None and version.build is None:
            found.append(version)
    return [str(v) for v in sorted(found, reverse=True)]


def compute(prefix: str, initial: str, repo: Path) -> Versions:
    """The current release and the next version of the repository at HEAD."""
    import semver

    git("rev-parse", "--verify", "HEAD", cwd=repo)  # a clear error in a repository without commits
    tags = releases(prefix, repo)
    if not tags:
        return Versions(None, initial, "initial", _count(repo))
    at_head = set(git("tag", "--points-at", "HEAD", "--list", f"{prefix}*", cwd=repo).split())
    released = [v for v in tags if names.tag(prefix, v) in at_head]  # highest first
    if released:
        return Versions(released[0], released[0], "released", 0)
    current = tags[0]
    messages = git("log", f"{names.tag(prefix, current)}..HEAD", "--format=%B%x00", cwd=repo).split("\x00")
    messages = [m.strip() for m in messages if m.strip()]
    bump = _bump(messages)
    version = semver.Version.parse(current)
    bumped = {"major": version.bump_major, "minor": version.bump_minor, "patch": version.bump_patch}[bump]()
    return Versions(current, str(bumped), bump, len(messages))


def _bump(messages: list[str]) -> str:
    level = "patch"
    for message in messages:
        match = _SUBJECT.match(message)
        if (match and match.group("bang")) or _BREAKING.search(message):
            return "major"
        if match and match.group("type").lower() == "feat":
            level = "minor"
    return level


def _count(repo: Path) -> int:
    """Commits up to HEAD."""
    return int(git("rev-list", "--count", "HEAD", cwd=repo).strip() or 0)
