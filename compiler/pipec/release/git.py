"""Reading a git repository (tags, commit messages, a file at a ref) for `pipec diff` and `pipec version`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipec.diagnostics import fail


def git(*args: str, cwd: Path) -> str:
    """Run git and return its stdout; any failure becomes a PipecError (PC606) that says what git said."""
    done = _run(list(args), cwd)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise fail("PC701", f"git {args[0]} failed: {said[-1] if said else 'exit ' + str(done.returncode)}",
                   hint="run pipec inside the repository that holds pipeline.yaml")
    return done.stdout.decode()


def show(ref: str, path: Path) -> bytes:
    """The bytes of a file at a ref (path is any path inside the work tree)."""
    if not ref or ref.startswith("-"):  # `--output=FILE` would be read by git as an option, not a ref
        raise fail("PC408", f'"{ref}" is not a git ref', hint="name a branch, a tag or a commit, e.g. --against main")
    top = Path(git("rev-parse", "--show-toplevel", cwd=path.parent).strip())
    relative = path.resolve().relative_to(top.resolve()).as_posix()
    done = _run(["show", "--end-of-options", f"{ref}:{relative}"], top)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise fail("PC702", f"cannot read {relative} at {ref}: {said[-1] if said else 'git show failed'}",
                   hint="is the ref fetched? In CI, check out with fetch-depth: 0")
    return done.stdout


def commits(since: str, until: str, repo: Path) -> list[tuple[str, str]]:
    """(sha, subject) of the commits reachable from `until` but not from `since`, newest first."""
    for ref in (since, until):
        if not ref or ref.startswith("-"):
            raise fail("PC408", f'"{ref}" is not a git ref', hint="name a branch, a tag or a commit")
    listed = git("log", "--format=%H%x09%s", "--end-of-options", f"{since}..{until}", cwd=repo)
    return [(sha, subject) for sha, _, subject in (line.partition("\t") for line in listed.splitlines() if line)]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise fail("PC701", "git is not installed", hint="install git, or run pipec outside this command") from None
