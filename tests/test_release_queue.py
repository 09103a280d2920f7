"""Many releases a day, against GitHub's concurrency rule: what act cannot show (it has no concurrency groups and no
approvals), played out on the generated release workflow as data.

GitHub's rule (docs: "Control the concurrency of workflows and jobs"): in a concurrency group at most one job or
run is running and one pending; a newly queued one takes the pending place and the one it replaces is cancelled.
A job calling a reusable workflow holds its group until the whole called workflow ends, a job waiting for its
environment's reviewers included (concurrency is taken before the approval: community discussion 17401).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipec.render.output import Output
from pipec.render.parse import parse
from tests.conftest import workflows_of

RUN = "(run)"  # the pseudo-job of a workflow-level concurrency group: every job of the run waits for it


@dataclass
class Run:
    number: int
    jobs: dict[str, str] = field(default_factory=dict)  # waiting, pending, running, done, cancelled or skipped
    ends: dict[str, int] = field(default_factory=dict)


@dataclass
class Queue:
    workflow: dict[str, Any]
    approval: set[str]  # environments whose stage waits for reviewers
    approve_at: dict[int, int]  # run number -> tick its reviewers approve (others: at once)
    runs: list[Run] = field(default_factory=list)
    holders: dict[str, tuple[Run, str]] = field(default_factory=dict)
    pending: dict[str, tuple[Run, str]] = field(default_factory=dict)
    deployed: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # env -> [(tick, run)]

    def group(self, job: str) -> str | None:
        if job == RUN:
            return str(self.workflow["concurrency"]["group"])
        concurrency = self.workflow["jobs"][job].get("concurrency")
        return None if concurrency is None else str(concurrency["group"])

    def needs(self, job: str) -> list[str]:
        if job == RUN:
            return []
        needs = self.workflow["jobs"][job].get("needs", [])
        needs = [needs] if isinstance(needs, str) else list(needs)
        return [*needs, RUN] if "concurrency" in self.workflow else needs

    def push(self, tick: int) -> None:
        run = Run(len(self.runs) + 1)
        run.jobs = dict.fromkeys([RUN] if "concurrency" in self.workflow else [], "waiting")
        run.jobs |= dict.fromkeys(self.workflow["jobs"], "waiting")
        self.runs.append(run)
        self.step(tick)

    def _env(self, job: str) -> str | None:
        """The environment a stage job deploys to, from the workflow it calls."""
        uses = self.workflow["jobs"].get(job, {}).get("uses", "")
        return uses.removeprefix("./.github/workflows/deploy-").removesuffix(".yml") if uses else None

    def _start(self, tick: int, run: Run, job: str) -> None:
        run.jobs[job] = "running"
        if job == RUN:  # held until every job of the run has ended
            run.ends[job] = 10**9
            return
        env = self._env(job)
        took = 2 if env else 1  # a stage deploys and checks; every other job takes one tick
        if env in self.approval:
            took += max(0, self.approve_at.get(run.number, tick) - tick)
        run.ends[job] = tick + took

    def _take(self, tick: int, run: Run, job: str) -> None:
        group = self.group(job)
        if group is None or group not in self.holders:
            if group is not None:
                self.holders[group] = (run, job)
            self._start(tick, run, job)
            return
        if group in self.pending:  # the newest waiting one takes the place
            older, older_job = self.pending[group]
            older.jobs[older_job] = "cancelled"
        self.pending[group] = (run, job)
        run.jobs[job] = "pending"

    def _release(self, tick: int, group: str | None) -> None:
        if group is None:
            return
        del self.holders[group]
        if group in self.pending:
            run, job = self.pending.pop(group)
            self.holders[group] = (run, job)
            self._start(tick, run, job)

    def step(self, tick: int) -> None:
        for _ in range(50):  # until nothing changes within the tick
            changed = False
            for run in self.runs:
                for job, state in list(run.jobs.items()):
                    if state == "running" and run.ends[job] <= tick:
                        run.jobs[job] = "done"
                        env = self._env(job)
                        if env:
                            self.deployed.setdefault(env, []).append((tick, run.number))
                        self._release(tick, self.group(job))
                        changed = True
                    elif state == "waiting" and run.jobs.get(RUN) == "cancelled":
                        run.jobs[job] = "cancelled"  # a run cancelled before it started runs no job at all
                        changed = True
                    elif state == "waiting":
                        # a job of a run holding its workflow-level group may start
                        needs = ["done" if n == RUN and run.jobs[n] == "running" else run.jobs[n]
                                 for n in self.needs(job)]
                        always = self.workflow["jobs"].get(job, {}).get("if") == "${{ always() }}"
                        if all(n == "done" for n in needs) or (always and all(
                                n in {"done", "cancelled", "skipped"} for n in needs)):
                            self._take(tick, run, job)
                            changed = True
                        elif any(n in {"cancelled", "skipped"} for n in needs) and not always:
                            run.jobs[job] = "skipped"
                            changed = True
                if RUN in run.jobs and run.jobs[RUN] == "running" and run.ends[RUN] > tick and all(
                        state in {"done", "cancelled", "skipped"} for j, state in run.jobs.items() if j != RUN):
                    run.ends[RUN] = tick
                    changed = True
            if not changed:
                return

    def latest(self, env: str, before: int) -> int | None:
        runs = [number for tick, number in self.deployed.get(env, []) if tick < before]
        return runs[-1] if runs else None


def _play(workflow: dict[str, Any], approval: set[str], pushes: list[int], approve_at: dict[int, int],
          until: int = 60) -> Queue:
    queue = Queue(workflow, approval, approve_at)
    for tick in range(until):
        for _ in range(pushes.count(tick)):
            queue.push(tick)
        queue.step(tick)
    return queue


def _release(folder: Path) -> dict[str, Any]:
    [path] = [p for p in workflows_of(folder) if p.name == "release.yml"]
    data = parse(Output(path.as_posix(), path.read_text()))
    assert isinstance(data, dict)
    return data


def _one_lock(workflow: dict[str, Any]) -> dict[str, Any]:
    """The release as it was before: the whole run in one group (what issue 16 reported)."""
    jobs = {name: {k: v for k, v in job.items() if k != "concurrency"} for name, job in workflow["jobs"].items()}
    return {**workflow, "concurrency": {"group": "release", "cancel-in-progress": False}, "jobs": jobs}


@pytest.mark.parametrize("name", ["example", "three-environments"])
def test_staging_takes_the_newest_release_while_production_waits_for_its_reviewers(
        name: str, built: dict[str, Path]) -> None:
    from pipec.build import compile_spec

    plan = compile_spec(built[name] / "pipeline.yaml").plan
    approval = {e.name for e in plan.environments if e.approval}
    first, last = plan.environments[0].name, plan.environments[-1].name
    assert last in approval
    workflow = _release(built[name])
    # Four pushes, one a tick; the reviewers of the last environment sit on release 1 until tick 30.
    queue = _play(workflow, approval, pushes=[0, 1, 2, 3], approve_at={1: 30})
    assert queue.latest(first, before=30) == 4  # the first environment got the newest release meanwhile
    assert [number for _, number in queue.deployed[first]] == [1, 2, 4]
    assert [number for _, number in queue.deployed[last]] == [1, 4]  # in order; 4 waited, 2 and 3 were superseded
    for run in queue.runs:
        assert run.jobs["summary"] == "done"  # every run says where it went, superseded or not
        assert all(state in {"done", "cancelled", "skipped"} for state in run.jobs.values()), run
    # Release 3 lost its place in the first environment's queue to 4 (the first environment takes two ticks), and
    # release 2 its place in the last environment's queue.
    superseded = {env.name: {run.number for run in queue.runs if run.jobs[f"promote-{env.name}"] == "cancelled"}
                  for env in plan.environments}
    assert superseded[first] == {3} and superseded[last] == {2}
    assert queue.runs[2].jobs[f"promote-{last}"] == "skipped"

    # The same pushes against one lock on the whole run: the first environment waits for the last one's reviewers.
    locked = _play(_one_lock(workflow), approval, pushes=[0, 1, 2, 3], approve_at={1: 30})
    assert locked.latest(first, before=30) == 1
    assert [run.jobs["summary"] for run in locked.runs] == ["done", "cancelled", "cancelled", "done"]  # silently


def test_a_burst_of_pushes_releases_the_newest_and_the_others_say_so(built: dict[str, Path]) -> None:
    workflow = _release(built["example"])
    queue = _play(workflow, {"production"}, pushes=[0, 0, 0], approve_at={})
    states = [(run.jobs["version"], run.jobs["summary"]) for run in queue.runs]
    # The middle push lost its place while the first was being tagged: it is not released, and its summary says so.
    assert states == [("done", "done"), ("cancelled", "done"), ("done", "done")]
    assert [number for _, number in queue.deployed["production"]] == [1, 3]
    assert "This push was not released" in workflow["jobs"]["summary"]["steps"][0]["run"]


@pytest.mark.parametrize(("results", "rows", "warnings"), [
    (("success", "success", "success"), ["deployed and checked", "deployed and checked"], []),
    (("success", "cancelled", "skipped"),
     ["**not deployed**: superseded by a newer release waiting for staging (GitHub keeps only the newest waiting "
      "one), or cancelled by hand", "not reached: an earlier step did not pass"],
     ["::warning::1.4.2 did not reach staging: superseded by a newer release, or cancelled by hand"]),
    (("success", "success", "failure"),
     ["deployed and checked", "**failed**: its job log says where; no later environment was deployed"], []),
])
def test_the_summary_says_where_a_release_went(results: tuple[str, str, str], rows: list[str], warnings: list[str],
                                               built: dict[str, Path], tmp_path: Path) -> None:
    """The summary step, run by bash as the runner would, for each way a release can end in an environment."""
    import subprocess

    job = _release(built["example"])["jobs"]["summary"]
    summary = tmp_path / "summary.md"
    env = {"PATH": "/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary), "VERSION": "1.4.2", "TAGGED": results[0],
           "RESULT_1": results[1], "RESULT_2": results[2]}
    assert set(job["env"]) == set(env) - {"PATH", "GITHUB_STEP_SUMMARY"}
    done = subprocess.run(["bash", "-e", "-c", job["steps"][0]["run"]], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == warnings
    assert summary.read_text().splitlines() == ["## Release 1.4.2", "| environment | result |", "| --- | --- |",
                                                f"| staging | {rows[0]} |", f"| production | {rows[1]} |"]


def test_a_push_that_was_not_released_says_so(built: dict[str, Path], tmp_path: Path) -> None:
    import subprocess

    job = _release(built["example"])["jobs"]["summary"]
    summary = tmp_path / "summary.md"
    env = {"PATH": "/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary), "VERSION": "", "TAGGED": "cancelled",
           "RESULT_1": "skipped", "RESULT_2": "skipped"}
    done = subprocess.run(["bash", "-e", "-c", job["steps"][0]["run"]], env=env, capture_output=True, text=True,
                          check=False)
    assert done.stdout.splitlines() == ["::warning::this push was not released (version: cancelled)"]
    assert summary.read_text().splitlines()[0] == (
        "## This push was not released (version: cancelled); when a newer push took its place, its commits ship "
        "with that release")
