"""Tests that kill what mutation testing (`make mutation`) showed surviving in the code that protects users: the
guards clause by clause, a build killed at every step of its swap, concurrent builds, rollback's `previous` over
a real ledger, and AWS retries against a server that really throttles."""

from __future__ import annotations

import copy
import ctypes
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipec.aws import deploy, ledger, verified
from pipec.aws.session import Aws
from pipec.build import compile_spec
from pipec.diagnostics import PipecError
from pipec.emit import emit
from pipec.plan.model import Target
from pipec.render import guards
from pipec.render.parse import parse
from tests.aws_world import World, aws_in
from tests.conftest import EXAMPLE, snapshot
from tests.local_server import Quiet, serve

# ---------------------------------------------------------------- guards, one failing case per clause

COMPILED = compile_spec(EXAMPLE)
PARSED = {o.path: parse(o) for o in COMPILED.outputs if o.path in guards.reads(COMPILED.plan)}
WEBHOOKS = "generated/cloudformation/services/webhooks.yaml"
API = "generated/cloudformation/services/api.yaml"
WORKER = "generated/cloudformation/services/worker.yaml"
BOOTSTRAP = COMPILED.plan.bootstrap_template
_AUD = "token.actions.githubusercontent.com:aud"
_SUB = "token.actions.githubusercontent.com:sub"
_EXACT = {"Fn::Sub": "repo:stiggio/pricing-api:environment:${Environment}"}


def _at(path: str, *keys: str | int) -> Callable[[dict[str, Any]], Any]:
    def get(parsed: dict[str, Any]) -> Any:
        node: Any = parsed[path]
        for key in keys:
            node = node[key]
        return node
    return get


_props = {name: _at(WEBHOOKS, "Resources", name, "Properties") for name in ("LiveAlias", "FunctionVersion",
                                                                               "DeploymentGroup")}
_deploy_trust = _at(BOOTSTRAP, "Resources", "DeployRole", "Properties", "AssumeRolePolicyDocument", "Statement", 0)


def _set(get: Callable[[dict[str, Any]], Any], key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda parsed: get(parsed).__setitem__(key, value)


def _drop(get: Callable[[dict[str, Any]], Any], key: str) -> Callable[[dict[str, Any]], None]:
    return lambda parsed: get(parsed).pop(key)


_ecs = {path: _at(path, "Resources", "Service", "Properties") for path in (API, WORKER)}


def _remove_groups(parsed: dict[str, Any]) -> None:
    del parsed[WEBHOOKS]["Resources"]["DeploymentGroup"]


_VERSION = ("alias LiveAlias must point at an AWS::Lambda::Version whose description carries ${Version} and that "
            "is retained")
_GROUP = "deployment group DeploymentGroup must be BLUE_GREEN with traffic control and roll back when an alarm fires"
_CONTROLLER = ("ECS service Service must use the ECS deployment controller, or its circuit breaker and alarms are "
               "ignored")
_ROLLBACK = "ECS service Service must roll back on its circuit breaker and on its alarms"
_TRUST = "role DeployRole must trust GitHub only with aud=sts.amazonaws.com and exact subs"
EXPECTED = {  # what each guard says, by the first words of the case
    "alias on": _VERSION, "version": _VERSION, "alias not shifted": "alias LiveAlias is not shifted by CodeDeploy",
    "no deployment group": "a Lambda service has no CodeDeploy deployment group", "PC302": _GROUP,
    "not on the ECS controller": _CONTROLLER, "PC303": _ROLLBACK, "PC305": _TRUST,
    "conditions in": "condition IsProduction must only test whether a parameter is empty: environments may differ "
                     "only in parameter values",
    "a condition on": "condition Set must only test whether a parameter is empty: environments may differ only in "
                      "parameter values",
    "a conditional resource": "a service template must not create resources conditionally: environments may "
                              "differ only in parameter values",
    "an Fn::If": "a service template may only use Fn::If to leave out an unset value: environments may differ only "
                 "in parameter values",
}


def _expected(case: str, code: str) -> str:
    return next((m for key, m in EXPECTED.items() if case.startswith(key) or key in case), EXPECTED.get(code, ""))


def _is_set(key: str) -> dict[str, Any]:
    return {"Fn::Not": [{"Fn::Equals": [{"Ref": key}, ""]}]}


def _branch(parsed: dict[str, Any], branch: Any) -> None:
    """The API's desired count given through an Fn::If on the condition that its MinCount is set."""
    parsed[API]["Conditions"] = {"Set": _is_set("MinCount")}
    parsed[API]["Resources"]["Service"]["Properties"]["DesiredCount"] = {"Fn::If": branch}


GUARD_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # PC301: the alias points at a per-release, retained version and is shifted by CodeDeploy
    ("alias on $LATEST", _set(_props["LiveAlias"], "FunctionVersion", "$LATEST"), "PC301"),
    ("alias on another attribute", _set(_props["LiveAlias"], "FunctionVersion",
                                        {"Fn::GetAtt": ["FunctionVersion", "Arn"]}), "PC301"),
    ("version without ${Version}", _set(_props["FunctionVersion"], "Description", {"Fn::Sub": "release"}), "PC301"),
    ("version described by a plain string", _set(_props["FunctionVersion"], "Description", "release ${Version}"),
     "PC301"),
    ("version not retained", _drop(_at(WEBHOOKS, "Resources", "FunctionVersion"), "DeletionPolicy"), "PC301"),
    ("alias not shifted by CodeDeploy", _drop(_at(WEBHOOKS, "Resources", "LiveAlias"), "UpdatePolicy"), "PC301"),
    # PC302: the CodeDeploy group
    ("no deployment group", _remove_groups, "PC302"),
    ("in-place deployments", _set(_at(WEBHOOKS, "Resources", "DeploymentGroup", "Properties", "DeploymentStyle"),
                                  "DeploymentType", "IN_PLACE"), "PC302"),
    ("no traffic control", _set(_at(WEBHOOKS, "Resources", "DeploymentGroup", "Properties", "DeploymentStyle"),
                                "DeploymentOption", "WITHOUT_TRAFFIC_CONTROL"), "PC302"),
    ("automatic rollback off", _set(_at(WEBHOOKS, "Resources", "DeploymentGroup", "Properties",
                                        "AutoRollbackConfiguration"), "Enabled", False), "PC302"),
    ("no rollback on alarm", _set(_at(WEBHOOKS, "Resources", "DeploymentGroup", "Properties",
                                      "AutoRollbackConfiguration"), "Events", ["DEPLOYMENT_FAILURE"]), "PC302"),
    ("alarms off", _set(_at(WEBHOOKS, "Resources", "DeploymentGroup", "Properties", "AlarmConfiguration"),
                        "Enabled", False), "PC302"),
    ("no alarms", _set(_at(WEBHOOKS, "Resources", "DeploymentGroup", "Properties", "AlarmConfiguration"),
                       "Alarms", []), "PC302"),
    # PC303: ECS deployments, for the web service and the worker
    *[(f"{path} not on the ECS controller", _set(_ecs[path], "DeploymentController", {"Type": "CODE_DEPLOY"}),
       "PC303") for path in (API, WORKER)],
    *[(f"{path} {part}.{key} off", _set(_at(path, "Resources", "Service", "Properties", "DeploymentConfiguration",
                                            part), key, False), "PC303")
      for path in (API, WORKER) for part, key in (("DeploymentCircuitBreaker", "Enable"),
                                                  ("DeploymentCircuitBreaker", "Rollback"),
                                                  ("Alarms", "Enable"), ("Alarms", "Rollback"))],
    ("ECS deployment without alarms", _set(_at(API, "Resources", "Service", "Properties", "DeploymentConfiguration",
                                               "Alarms"), "AlarmNames", []), "PC303"),
    # PC305: the OIDC trust, one clause at a time
    ("audience not pinned", _set(_deploy_trust, "Condition", {"StringEquals": {_SUB: _EXACT}}), "PC305"),
    ("another audience", _set(_deploy_trust, "Condition", {"StringEquals": {_AUD: "example.com", _SUB: _EXACT}}),
     "PC305"),
    ("no subject", _set(_deploy_trust, "Condition", {"StringEquals": {_AUD: "sts.amazonaws.com"}}), "PC305"),
    ("a wildcard in the subject", _set(_deploy_trust, "Condition", {"StringEquals": {
        _AUD: "sts.amazonaws.com", _SUB: "repo:stiggio/pricing-api:environment:*"}}), "PC305"),
    ("a wildcard in one of the subjects", _set(_deploy_trust, "Condition", {"StringEquals": {
        _AUD: "sts.amazonaws.com", _SUB: [_EXACT, "repo:stiggio/pricing-api:ref:*"]}}), "PC305"),
    ("an empty list of subjects", _set(_deploy_trust, "Condition", {"StringEquals": {
        _AUD: "sts.amazonaws.com", _SUB: []}}), "PC305"),
    ("another repository among the subjects", _set(_deploy_trust, "Condition", {"StringEquals": {
        _AUD: "sts.amazonaws.com", _SUB: [_EXACT, "repo:other/repo:ref:refs/heads/main"]}}), "PC305"),
    ("another repository", _set(_deploy_trust, "Condition", {"StringEquals": {
        _AUD: "sts.amazonaws.com", _SUB: {"Fn::Sub": "repo:other/repo:environment:${Environment}"}}}), "PC305"),
    ("an operator besides StringEquals", _set(_deploy_trust, "Condition", {
        "StringEquals": {_AUD: "sts.amazonaws.com", _SUB: _EXACT}, "StringLike": {_SUB: "repo:*"}}), "PC305"),
    # PC306: a service template that branches
    ("conditions in a service template", lambda parsed: parsed[API].__setitem__(
        "Conditions", {"IsProduction": {"Fn::Equals": ["a", "b"]}}), "PC306"),
    ("a condition on an undeclared parameter", _set(_at(API), "Conditions", {"Set": _is_set("Nothing")}), "PC306"),
    ("a condition on a release's own parameter", _set(_at(API), "Conditions", {"Set": _is_set("Version")}),
     "PC306"),
    ("a condition on a parameter compared with a value", _set(_at(API), "Conditions", {"Set": {"Fn::Not": [
        {"Fn::Equals": [{"Ref": "Cpu"}, "256"]}]}}), "PC306"),
    ("a conditional resource", _set(_at(API, "Resources", "Service"), "Condition", "Set"), "PC306"),
    ("an Fn::If that picks between two values", lambda parsed: _branch(parsed, [
        "Set", {"Ref": "MinCount"}, 1]), "PC306"),
    ("an Fn::If that leaves out another parameter", lambda parsed: _branch(parsed, [
        "Set", {"Ref": "MaxCount"}, {"Ref": "AWS::NoValue"}]), "PC306"),
    ("an Fn::If on an unknown condition", lambda parsed: _branch(parsed, [
        "Other", {"Ref": "MinCount"}, {"Ref": "AWS::NoValue"}]), "PC306"),
    ("an Fn::If of two items", lambda parsed: _branch(parsed, ["Set", {"Ref": "MinCount"}]), "PC306"),
    ("an Fn::If that is no list", lambda parsed: _branch(parsed, "Set"), "PC306"),
]


@pytest.mark.parametrize(("case", "mutate", "code"), GUARD_CASES, ids=[c[0] for c in GUARD_CASES])
def test_every_clause_of_every_guard_fails_alone(case: str, mutate: Callable[[dict[str, Any]], None],
                                                 code: str) -> None:
    parsed = copy.deepcopy(PARSED)
    mutate(parsed)
    with pytest.raises(PipecError) as caught:
        guards.check(COMPILED.plan, parsed)
    file = BOOTSTRAP if code == "PC305" else next(
        (path for path in (API, WORKER) if path in case), API if code in ("PC303", "PC306") else WEBHOOKS)
    assert [(d.code, d.file, d.message, d.hint) for d in caught.value.diagnostics] == [
        (code, file, _expected(case, code), "this is a bug in pipec's templates; please report it")]
    assert caught.value.exit_code == 70


def test_the_guards_pass_the_real_output() -> None:
    guards.check(COMPILED.plan, copy.deepcopy(PARSED))


def test_a_service_template_may_leave_out_an_unset_scaling_value() -> None:
    parsed = copy.deepcopy(PARSED)
    _branch(parsed, ["Set", {"Ref": "MinCount"}, {"Ref": "AWS::NoValue"}])
    guards.check(COMPILED.plan, parsed)


def _with_stack_values(service: str, index: int, change: Callable[[tuple[tuple[str, str], ...]],
                                                                   tuple[tuple[str, str], ...]]) -> Any:
    plan = COMPILED.plan
    found = plan.service(service)
    stacks = list(found.stacks)
    stacks[index] = stacks[index]._replace(values=change(stacks[index].values))
    return plan._replace(services=tuple(s._replace(stacks=tuple(stacks)) if s.name == service else s
                                        for s in plan.services))


@pytest.mark.parametrize(("case", "change"), [
    ("one environment lacks a key", lambda values: values[:-1]),
    ("one environment has a key the template does not declare", lambda values: (*values, ("Extra", "1"))),
    ("every environment lacks the same declared key", None),
])
def test_parameter_files_that_differ_in_keys_are_refused(case: str, change: Any) -> None:
    if change is None:
        plan = COMPILED.plan
        api = plan.service("api")
        stacks = tuple(s._replace(values=s.values[:-1]) for s in api.stacks)
        plan = plan._replace(services=tuple(s._replace(stacks=stacks) if s.name == "api" else s
                                            for s in plan.services))
    else:
        plan = _with_stack_values("api", 1, change)
    with pytest.raises(PipecError) as caught:
        guards.check(plan, copy.deepcopy(PARSED))
    assert [(d.code, d.file, d.message) for d in caught.value.diagnostics] == [
        ("PC306", API, "the parameter files of api differ in keys")]


# ---------------------------------------------------------------- the swap, killed at every step


_MOST_STEPS = 400


class Killed(BaseException):
    """What a SIGKILL does to a build: it stops between two system calls, and no cleanup code runs."""


_MUTATING = [(os, "mkdir"), (os, "link"), (os, "symlink"), (os, "rename"), (os, "replace"), (os, "unlink"),
             (os, "rmdir"), (Path, "write_bytes")]


def _libc_with(renameat2: Callable[..., int] | None) -> type:
    """ctypes.CDLL as emit sees it, with renameat2 replaced (None: a system that lacks it)."""
    real = ctypes.CDLL

    class Library:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._library = real(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            if name != "renameat2":
                return getattr(self._library, name)
            if renameat2 is None:
                raise AttributeError(name)
            return renameat2

    return Library


class Steps:
    """Counts the build's changes to the file system and stops it before the chosen one."""

    def __init__(self, stop_at: int | None, *, renameat2: bool) -> None:
        self.stop_at = stop_at
        self.count = 0
        self.renameat2 = renameat2

    def step(self) -> None:
        self.count += 1
        if self.count == self.stop_at:
            raise Killed

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for owner, name in _MUTATING:
            monkeypatch.setattr(owner, name, self._counted(getattr(owner, name)))
        real = ctypes.CDLL(None, use_errno=True).renameat2

        def counted(*args: Any) -> int:
            self.step()
            return int(real(*args))
        # Without renameat2, as on a system that lacks it: the two-rename path with recovery.
        monkeypatch.setattr(ctypes, "CDLL", _libc_with(counted if self.renameat2 else None))

    def _counted(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.step()
            return function(*args, **kwargs)
        return counted


def _outputs(text: str) -> tuple[list[Any], str]:
    folder = Path(os.environ["PIPEC_TEST_SCRATCH"])
    spec = folder / "pipeline.yaml"
    spec.write_text(text)
    compiled = compile_spec(spec)
    return compiled.outputs, compiled.plan.spec_sha


@pytest.fixture
def trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The outputs of two versions of the example, and the old tree on disk in a pristine folder."""
    (tmp_path / "scratch").mkdir()
    monkeypatch.setenv("PIPEC_TEST_SCRATCH", str(tmp_path / "scratch"))
    old_text = EXAMPLE.read_text()
    new_text = old_text.replace("min: 3, max: 12", "min: 4, max: 16").replace('BATCH_SIZE: "2000"',
                                                                             'BATCH_SIZE: "4000"')
    old, old_sha = _outputs(old_text)
    new, new_sha = _outputs(new_text)
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    emit.write(old, emit.Layout(pristine, pristine / "generated"), old_sha)
    clean = tmp_path / "clean"
    clean.mkdir()
    emit.write(new, emit.Layout(clean, clean / "generated"), new_sha)
    yield {"old": (old, old_sha), "new": (new, new_sha), "pristine": pristine,
           "old_tree": snapshot(pristine / "generated"), "new_tree": snapshot(clean / "generated"),
           "tmp": tmp_path}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".pipec-" in p.name)


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "two-renames"])
def test_a_build_killed_at_any_step_leaves_the_old_or_the_new_tree(trees: dict[str, Any], renameat2: bool,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    new, new_sha = trees["new"]
    states: set[str] = set()
    renames: list[tuple[Any, ...]] = []
    for stop_at in range(1, _MOST_STEPS):
        repo = trees["tmp"] / f"run-{stop_at}"
        shutil.copytree(trees["pristine"], repo)
        layout = emit.Layout(repo, repo / "generated")
        steps = Steps(stop_at, renameat2=renameat2)
        with monkeypatch.context() as patch:
            steps.install(patch)
            patch.setattr(os, "rename", _recording(renames, os.rename))
            try:
                emit.write(new, layout, new_sha)
                finished = True
            except Killed:
                finished = False
        states.add(_state_after_kill(repo, trees) if not finished else "finished")
        # The next build repairs whatever the killed one left, and leaves nothing else behind.
        emit.write(new, layout, new_sha)
        assert snapshot(repo / "generated") == trees["new_tree"], f"killed before step {stop_at}"
        assert _leftovers(repo) == [], f"killed before step {stop_at}"
        shutil.rmtree(repo)
        if finished:
            break
    else:
        raise AssertionError(f"the build took more than {_MOST_STEPS} steps")
    assert stop_at > 10  # the build was really stopped at many places
    assert {"old", "new"} <= states
    if renameat2:  # one atomic exchange: never a moment without the tree, never a plain rename
        assert ("moved away" not in states, renames) == (True, [])
    else:
        assert "moved away" in states  # the window between the two renames was hit, and recovered from


def _recording(calls: list[tuple[Any, ...]], function: Callable[..., Any]) -> Callable[..., Any]:
    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return function(*args, **kwargs)
    return recorded


def _state_after_kill(repo: Path, trees: dict[str, Any]) -> str:
    """What a kill left: the old tree, the new tree, or (two-rename path only) the old tree moved aside."""
    output = repo / "generated"
    if output.exists():
        found = snapshot(output)
        assert found in (trees["old_tree"], trees["new_tree"]), "a killed build left a mixed tree"
        return "old" if found == trees["old_tree"] else "new"
    moved = [p for p in repo.iterdir() if ".pipec-old-" in p.name]
    assert len(moved) == 1 and snapshot(moved[0]) == trees["old_tree"], "a killed build lost the tree"
    return "moved away"


def test_what_pipec_does_not_own_survives_every_rebuild(trees: dict[str, Any]) -> None:
    """A team's own files in generated/ stay as they are: nested, empty folders, links, beside pipec's files."""
    repo = trees["pristine"]
    output = repo / "generated"
    (output / "notes" / "deep").mkdir(parents=True)
    (output / "notes" / "deep" / "todo.txt").write_text("ours")
    (output / "empty" / "inner").mkdir(parents=True)
    (output / "runbooks" / "extra.md").write_text("ours too")
    (output / "link").symlink_to("runbooks/extra.md")
    (output / "dangling").symlink_to("nowhere")
    new, new_sha = trees["new"]
    emit.write(new, emit.Layout(repo, output), new_sha)
    assert (output / "notes" / "deep" / "todo.txt").read_text() == "ours"
    assert (output / "empty" / "inner").is_dir() and list((output / "empty" / "inner").iterdir()) == []
    assert (output / "runbooks" / "extra.md").read_text() == "ours too"
    assert os.readlink(output / "link") == "runbooks/extra.md" and os.readlink(output / "dangling") == "nowhere"
    owned = {k: v for k, v in snapshot(output).items() if k not in ("notes/deep/todo.txt", "runbooks/extra.md",
                                                                        "link")}
    assert owned == trees["new_tree"]


@pytest.mark.parametrize(("error", "code"), [(22, None), (13, "PC508")], ids=["EINVAL: fall back", "EACCES: refuse"])
def test_an_exchange_the_file_system_refuses(trees: dict[str, Any], monkeypatch: pytest.MonkeyPatch, error: int,
                                            code: str | None) -> None:
    """renameat2 that the file system does not support falls back to two renames; any other refusal fails the
    build with the old tree in place."""
    def refuse(*args: Any) -> int:
        ctypes.set_errno(error)
        return -1

    monkeypatch.setattr(ctypes, "CDLL", _libc_with(refuse))
    repo = trees["pristine"]
    new, new_sha = trees["new"]
    if code is None:
        emit.write(new, emit.Layout(repo, repo / "generated"), new_sha)
        assert snapshot(repo / "generated") == trees["new_tree"]
    else:
        with pytest.raises(PipecError) as caught:
            emit.write(new, emit.Layout(repo, repo / "generated"), new_sha)
        assert [(d.code, d.message) for d in caught.value.diagnostics] == [
            (code, f"{repo / 'generated'} cannot be written: Permission denied")]
        assert snapshot(repo / "generated") == trees["old_tree"]
    assert _leftovers(repo) == []


# ---------------------------------------------------------------- two builds at once


def test_concurrent_builds_with_different_content_take_turns(trees: dict[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A holds the lock and pauses inside its swap; B, started then, must wait for A and write last."""
    repo = trees["pristine"]
    layout = emit.Layout(repo, repo / "generated")
    paused, resume = threading.Event(), threading.Event()
    real_link = os.link

    def link(*args: Any, **kwargs: Any) -> None:
        if threading.current_thread().name == "A" and not paused.is_set():
            paused.set()
            resume.wait(10)
        real_link(*args, **kwargs)

    monkeypatch.setattr(os, "link", link)
    errors: list[BaseException] = []

    def build(outputs: tuple[list[Any], str]) -> None:
        try:
            emit.write(outputs[0], layout, outputs[1])
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=build, args=(trees["new"],), name="A")
    second = threading.Thread(target=build, args=(trees["old"],), name="B")
    first.start()
    assert paused.wait(10)
    second.start()
    second.join(1.0)  # without the lock B would finish here, and A's swap would then win
    resume.set()
    first.join(10)
    second.join(10)
    assert errors == []
    assert snapshot(repo / "generated") == trees["old_tree"]  # B's content: it ran after A, not beside it


# ---------------------------------------------------------------- rollback's previous


@pytest.mark.parametrize(("case", "history", "expected"), [
    ("the release before", ["1.0.0", "1.1.0", "1.2.0"], "1.1.0"),
    ("a redeploy is not previous", ["1.0.0", "1.1.0", "1.2.0", "1.2.0"], "1.1.0"),
    ("after a rollback, further back, never forward", ["1.0.0", "1.1.0", "1.2.0", "1.1.0"], "1.0.0"),
    ("a ledger out of order", ["1.3.0", "1.0.0", "1.2.0"], "1.0.0"),
    ("pre-releases are older than their release", ["1.1.0", "1.2.0-rc.1", "1.2.0"], "1.2.0-rc.1"),
])
def test_previous_over_a_ledger_of_several_releases(world: World, monkeypatch: pytest.MonkeyPatch, case: str,
                                                    history: list[str], expected: str) -> None:
    aws = aws_in(world, "111111111111", monkeypatch)
    service = COMPILED.plan.service("worker")._replace(name=f"svc{abs(hash(case)) % 10**8}")  # a ledger of its own
    target = Target("staging", "us-east-1", "111111111111")
    for version in history:
        ledger.record(aws, service, target, ledger.Entry(version, "c" * 40, "sha256:" + "0" * 64, "t", "me",
                                                         "deploy"))
    request = deploy.Request("staging", deploy.PREVIOUS, action="rollback")
    assert deploy._target_version(aws, COMPILED.plan, service, target, request) == expected


@pytest.mark.parametrize(("history", "message", "hint"), [
    ([], "worker0 was never deployed to staging us-east-1, so there is no previous version", None),
    (["1.0.0"], "worker1 has run no version older than 1.0.0 in staging us-east-1, so there is no previous version "
     "there", "versions that ran there: 1.0.0; to deploy another release, name it with --to"),
    # releases older than the one running were published, but never ran here: they are not "previous"
    (["1.2.0", "1.2.0"], "worker2 has run no version older than 1.2.0 in staging us-east-1",
     "versions that ran there: 1.2.0; to deploy another release, name it with --to"),
    (["1.0.0", "1.1.0", "1.0.0"], "worker3 has run no version older than 1.0.0 in staging us-east-1",
     "versions that ran there: 1.0.0, 1.1.0; to deploy another release, name it with --to"),
])
def test_previous_without_an_earlier_version_here_is_refused(world: World, monkeypatch: pytest.MonkeyPatch,
                                                             history: list[str], message: str,
                                                             hint: str | None) -> None:
    aws = aws_in(world, "111111111111", monkeypatch)
    plan = COMPILED.plan
    service = plan.service("worker")._replace(name=f"worker{len(history)}")
    target = Target("staging", "us-east-1", "111111111111")
    s3 = aws.client("s3", "us-east-1")
    s3.create_bucket(Bucket=plan.release_bucket)
    for version in ("1.0.0", "1.1.0", "1.2.0"):  # published, whatever ran
        s3.put_object(Bucket=plan.release_bucket, Key=f"releases/{version}/release.json", Body=b"{}")
    for version in history:
        ledger.record(aws, service, target, ledger.Entry(version, "c" * 40, "d", "t", "me", "deploy"))
    with pytest.raises(PipecError) as caught:
        deploy._target_version(aws, plan, service, target,
                               deploy.Request("staging", deploy.PREVIOUS, action="rollback"))
    [found] = caught.value.diagnostics
    assert (found.code, found.hint) == ("PC609", hint) and found.message.startswith(message), found.message
    assert caught.value.exit_code == 4


@pytest.mark.parametrize(("case", "history", "checked", "elsewhere", "expected"), [
    ("the newest older release that passed", ["1.0.0", "1.1.0", "1.2.0"], ["1.0.0", "1.1.0"], [], "1.1.0"),
    ("one that never passed here is skipped", ["1.0.0", "1.1.0", "1.2.0"], ["1.0.0", "1.2.0"], [], "1.0.0"),
    ("the running one is never the target", ["1.0.0", "1.1.0"], ["1.0.0", "1.1.0"], [], "1.0.0"),
    ("after a rollback, further back", ["1.0.0", "1.1.0", "1.2.0", "1.1.0"], ["1.0.0", "1.1.0", "1.2.0"], [],
     "1.0.0"),
    ("none passed", ["1.0.0", "1.1.0"], ["1.1.0"], [], None),
    ("passed elsewhere is not passed here", ["1.0.0", "1.1.0"], [], ["1.0.0"], None),
])
def test_verified_is_the_newest_older_release_that_passed_here(world: World, monkeypatch: pytest.MonkeyPatch,
                                                               case: str, history: list[str], checked: list[str],
                                                               elsewhere: list[str], expected: str | None) -> None:
    aws = aws_in(world, "111111111111", monkeypatch)
    plan = COMPILED.plan
    service = plan.service("worker")._replace(name=f"v{abs(hash(case)) % 10**8}")
    target = Target("staging", "us-east-1", "111111111111")
    s3 = aws.client("s3", "us-east-1")
    bucket = plan.release_bucket
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    for version in history:
        ledger.record(aws, service, target, ledger.Entry(version, "c" * 40, "d", "t", "me", "deploy"))
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        s3.delete_object(Bucket=bucket, Key=f"releases/{version}/verified/staging.json")
        s3.delete_object(Bucket=bucket, Key=f"releases/{version}/verified/production.json")
    for env, versions in (("staging", checked), ("production", elsewhere)):
        for version in versions:
            body = verified.Verification(version, env, ("us-east-1",), "e2e", "", "t", "me").to_json()
            s3.put_object(Bucket=bucket, Key=f"releases/{version}/verified/{env}.json", Body=body.encode())
    request = deploy.Request("staging", deploy.VERIFIED, action="rollback")
    if expected is not None:
        assert deploy._target_version(aws, plan, service, target, request) == expected
        return
    with pytest.raises(PipecError) as caught:
        deploy._target_version(aws, plan, service, target, request)
    [found] = caught.value.diagnostics
    assert found.code == "PC609"
    assert f"has run no version verified in staging and older than {history[-1]} in staging us-east-1" in found.message


@pytest.mark.parametrize(("service", "region", "expected"), [
    (None, None, (["us-east-1", "eu-west-1"], ["api", "worker", "usage-report", "webhooks"])),
    ("webhooks", "eu-west-1", (["eu-west-1"], ["webhooks"])),
])
def test_a_request_acts_on_what_it_names(service: str | None, region: str | None,
                                         expected: tuple[list[str], list[str]]) -> None:
    env, regions, services = deploy._select(COMPILED.plan, deploy.Request("production", "1.0.0", service, region))
    assert (env.name, regions, [s.name for s in services]) == ("production", *expected)


# ---------------------------------------------------------------- retries against a server that throttles


AMZ_JSON = "application/x-amz-json-1.1"


class Throttling(Quiet):
    """An SSM endpoint that throttles the first `throttles` requests, then answers."""

    throttles = 0
    seen = 0

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen += 1
        if type(self).seen <= type(self).throttles:
            self.send_json(400, {"__type": "ThrottlingException", "message": "Rate exceeded"}, AMZ_JSON)
        else:
            value = json.dumps({"version": "1.2.0", "commit": "c", "digest": "d", "at": "t", "by": "b",
                                "action": "deploy"})
            self.send_json(200, {"Parameter": {"Name": "/pipec/x", "Value": value, "Version": 3, "Type": "String"}},
                           AMZ_JSON)


@pytest.fixture
def throttling(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Throttling]]:
    """The server on 127.0.0.1, and botocore's own retry handler in the path, only without its sleeps."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    with serve(Throttling) as url:
        for key, value in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test",
                           "AWS_SECRET_ACCESS_KEY": "test"}.items():
            monkeypatch.setenv(key, value)
        Throttling.seen = 0
        yield Throttling


def test_throttled_requests_are_retried(throttling: type[Throttling]) -> None:
    throttling.throttles = 3
    entry = ledger.current(Aws(), COMPILED.plan.service("api"), Target("staging", "us-east-1", "111111111111"))
    assert entry is not None and entry.version == "1.2.0"
    assert throttling.seen == 4


def test_throttling_that_outlasts_the_retries_is_reported(throttling: type[Throttling]) -> None:
    throttling.throttles = 100
    with pytest.raises(PipecError) as caught:
        ledger.current(Aws(), COMPILED.plan.service("api"), Target("staging", "us-east-1", "111111111111"))
    [found] = caught.value.diagnostics
    assert found.code == "PC608"
    assert found.message == ("reading /pipec/stigg/staging/api: AWS is throttling the requests "
                             "(ThrottlingException), even after retries")
    assert throttling.seen == 9  # the first try and the eight retries pipec's clients allow


# ---------------------------------------------------------------- what check and a failed write say


def test_check_reports_each_finding_with_its_reason_and_a_diff(trees: dict[str, Any]) -> None:
    repo = trees["pristine"]
    layout = emit.Layout(repo, repo / "generated")
    new, new_sha = trees["new"]
    (repo / "generated" / "runbooks" / "staging.md").unlink()
    edited = repo / "generated" / "README.md"
    edited.write_text(edited.read_text().replace("# Delivery pipeline", "# Our pipeline"))
    (repo / "generated" / "cloudformation" / "services" / "api.yaml").rename(repo / "generated" / "gone.yaml")
    manifest = json.loads((repo / "generated" / "manifest.json").read_text())
    manifest["files"]["gone.yaml"] = "0" * 64
    (repo / "generated" / "manifest.json").write_text(json.dumps(manifest))
    outcome = emit.check(new, layout, new_sha)
    assert not outcome.ok
    found = {(f.status, Path(f.path).name) for f in outcome.findings}
    assert found == {("missing", "staging.md"), ("edited", "README.md"), ("missing", "api.yaml"),
                     ("extra", "gone.yaml"), ("stale", "api.json"), ("stale", "worker.json")}
    report = outcome.report()
    lines = report.splitlines()
    assert lines[0] == f"pipec: {len(outcome.findings)} generated file(s) do not match pipeline.yaml:"
    assert any(line.startswith("  edited   ") and line.endswith("README.md  (someone edited it by hand)")
               for line in lines)
    assert any(line.endswith("staging.md  (pipec generates it, but it is not there)") for line in lines)
    assert any(line.endswith("gone.yaml  (pipec no longer generates it)") for line in lines)
    assert any(line.endswith("api.json  (pipeline.yaml changed since it was generated)") for line in lines)
    assert "-# Our pipeline of stigg\n+# Delivery pipeline of stigg\n" in report
    assert lines[-1] == "Edit pipeline.yaml (never the generated files) and run `pipec build`."
    assert outcome.checked == len(new) + 1


def test_a_long_difference_is_cut_after_forty_lines(trees: dict[str, Any]) -> None:
    repo = trees["pristine"]
    new, new_sha = trees["new"]
    target = repo / "generated" / "cloudformation" / "bootstrap.yaml"
    target.write_text("".join(f"line {i}\n" for i in range(200)))
    finding = next(f for f in emit.check(new, emit.Layout(repo, repo / "generated"), new_sha).findings
                   if f.path.endswith("bootstrap.yaml"))
    lines = finding.diff.splitlines()
    assert len(lines) == 41 and lines[-1].startswith("... ") and lines[-1].endswith(" more diff lines")
    assert lines[0].endswith("bootstrap.yaml (on disk)") and lines[1].endswith("bootstrap.yaml (from pipeline.yaml)")


def test_an_up_to_date_tree_checks_clean(trees: dict[str, Any]) -> None:
    repo = trees["pristine"]
    old, old_sha = trees["old"]
    outcome = emit.check(old, emit.Layout(repo, repo / "generated"), old_sha)
    assert (outcome.ok, outcome.findings) == (True, [])
    assert outcome.report() == f"pipec: {len(old) + 1} generated files match pipeline.yaml\n"


_PERMISSIONS = "check the folder's permissions; nothing was changed"


@pytest.mark.parametrize(("error", "filename", "code", "message", "hint"), [
    (28, "/w/f", "PC503", "the disk is full while writing /w; nothing was changed",
     "free some space and run `pipec build` again"),
    (13, "/w/f", "PC508", "/w/f cannot be written: Permission denied", _PERMISSIONS),
    (1, "/w/f", "PC508", "/w/f cannot be written: Operation not permitted", _PERMISSIONS),
    (30, "/w/f", "PC508", "/w/f cannot be written: Read-only file system", _PERMISSIONS),
    (13, None, "PC508", "/w cannot be written: Permission denied", _PERMISSIONS),  # no file named: the folder
    (36, "/w/f", "PC508", "/w/f: File name too long; nothing was changed", None),
    (36, None, "PC508", "/w: File name too long; nothing was changed", None),
])
def test_each_write_failure_says_what_happened(error: int, filename: str | None, code: str, message: str,
                                                hint: str | None) -> None:
    found = emit._os_error(OSError(error, os.strerror(error), filename), Path("/w"))
    [diagnostic] = found.diagnostics
    assert (diagnostic.code, diagnostic.message, diagnostic.hint) == (code, message, hint)
    assert found.exit_code == 1


def test_a_write_failure_without_a_reason_still_says_where() -> None:
    [diagnostic] = emit._os_error(OSError("it broke"), Path("/w")).diagnostics
    assert diagnostic.message == "/w: it broke; nothing was changed"


def test_read_tree_gives_the_text_of_every_owned_file(trees: dict[str, Any]) -> None:
    repo = trees["pristine"]
    old, _ = trees["old"]
    (repo / "generated" / "keep.txt").write_text("not pipec's")
    tree = emit.read_tree(emit.Layout(repo, repo / "generated"))
    assert tree == {o.path: o.text for o in old}


# ---------------------------------------------------------------- guards on output that lacks what they read


def _without(path: str, *keys: str) -> Callable[[dict[str, Any]], None]:
    def drop(parsed: dict[str, Any]) -> None:
        node = parsed[path]
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
    return drop


def _prepend_service_statement(parsed: dict[str, Any]) -> None:
    """A service statement first, then a federated one with a wildcard: the guard must not stop at the first."""
    statements = _deploy_trust(parsed)
    document = parsed[BOOTSTRAP]["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]
    bad = copy.deepcopy(statements)
    bad["Condition"]["StringEquals"][_SUB] = "repo:stiggio/pricing-api:*"
    document["Statement"] = [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                              "Action": "sts:AssumeRole"}, bad]


@pytest.mark.parametrize(("case", "mutate", "expected"), [
    ("a service template without resources", _without(WEBHOOKS, "Resources"),
     [("PC302", WEBHOOKS, "a Lambda service has no CodeDeploy deployment group")]),
    ("a rollback configuration without events", _without(WEBHOOKS, "Resources", "DeploymentGroup", "Properties",
                                                          "AutoRollbackConfiguration", "Events"),
     [("PC302", WEBHOOKS, _GROUP)]),
    ("a role without a trust policy", _without(BOOTSTRAP, "Resources", "DeployRole", "Properties",
                                               "AssumeRolePolicyDocument"), []),
    ("a trust policy without statements", _without(BOOTSTRAP, "Resources", "DeployRole", "Properties",
                                                   "AssumeRolePolicyDocument", "Statement"), []),
    ("a bad federated statement after a service one", _prepend_service_statement, [("PC305", BOOTSTRAP, _TRUST)]),
])
def test_guards_read_incomplete_output_without_failing_themselves(case: str, mutate: Callable[[dict[str, Any]], None],
                                                                 expected: list[tuple[str, str, str]]) -> None:
    parsed = copy.deepcopy(PARSED)
    mutate(parsed)
    if not expected:
        guards.check(COMPILED.plan, parsed)
        return
    with pytest.raises(PipecError) as caught:
        guards.check(COMPILED.plan, parsed)
    assert [(d.code, d.file, d.message) for d in caught.value.diagnostics] == expected


@pytest.mark.parametrize(("cpu", "memory"), [("256", "4096"), ("3", "512")], ids=["a pair Fargate lacks",
                                                                                 "a cpu Fargate lacks"])
def test_the_fargate_guard_names_the_parameter_file(cpu: str, memory: str) -> None:
    plan = _with_stack_values("api", 0, lambda values: tuple(
        (k, cpu if k == "Cpu" else memory if k == "Memory" else v) for k, v in values))
    with pytest.raises(PipecError) as caught:
        guards.check(plan, copy.deepcopy(PARSED))
    assert [(d.code, d.file, d.message) for d in caught.value.diagnostics] == [
        ("PC304", "generated/cloudformation/parameters/staging/us-east-1/api.json",
         f"cpu {cpu} with memory {memory} is not a valid Fargate size")]


@pytest.mark.parametrize("path", ["/etc/passwd", "generated/../../x", "generated/./x", "", "generated//x"])
def test_an_output_path_that_could_escape_is_a_bug_caught_before_writing(path: str, tmp_path: Path) -> None:
    from pipec.render.output import Output

    with pytest.raises(PipecError) as caught:
        emit.write([Output(path, "x")], emit.Layout(tmp_path, tmp_path / "generated"), "sha")
    [found] = caught.value.diagnostics
    assert (found.code, found.message) == ("PC501", f"the output path {path!r} would escape its folder")
    assert caught.value.exit_code == 70
    assert list(tmp_path.iterdir()) == []


def test_the_manifest_lists_every_file_with_its_sha256(trees: dict[str, Any]) -> None:
    import hashlib

    from pipec import __version__

    repo = trees["pristine"]
    old, old_sha = trees["old"]
    manifest = json.loads((repo / "generated" / "manifest.json").read_text())
    assert manifest == {
        "comment": "Generated by `pipec build` from pipeline.yaml. Do not edit: change pipeline.yaml and run "
                   "`pipec build`.",
        "generator": f"pipec {__version__}",
        "spec": {"path": "pipeline.yaml", "sha256": old_sha},
        "files": {o.path.removeprefix("generated/"): hashlib.sha256(o.text.encode()).hexdigest() for o in old},
        "external": {},
    }


@pytest.mark.parametrize("broken", ["not json", "[1, 2]", '{"files": 3}', '{"files": {"a": 1}}', '{"external": []}'])
def test_a_broken_manifest_owns_nothing_but_itself(trees: dict[str, Any], broken: str) -> None:
    repo = trees["pristine"]
    (repo / "generated" / "manifest.json").write_text(broken)
    owned = emit.read_owned(emit.Layout(repo, repo / "generated"))
    assert owned == emit.Owned({}, {}, True)
    (repo / "generated" / "manifest.json").unlink()
    assert emit.read_owned(emit.Layout(repo, repo / "generated")) == emit.Owned({}, {}, False)


# ---------------------------------------------------------------- exactly what a write and a check report


def _shown(output: Path, path: str) -> str:
    return (output / path).as_posix()


def test_a_write_reports_exactly_what_it_changed_removed_and_kept(trees: dict[str, Any]) -> None:
    repo = trees["pristine"]
    output = repo / "generated"
    old, _ = trees["old"]
    new, new_sha = trees["new"]
    before = {o.path: o.text for o in old}
    kept = [o for o in new if not o.path.endswith("runbooks/staging.md")]
    written = emit.write(kept, emit.Layout(repo, output), new_sha)
    changed = sorted(o.path for o in kept if before.get(o.path) != o.text)
    # the manifest is a file the build wrote too, and is counted as one
    assert written.changed == [_shown(output, p.removeprefix("generated/")) for p in changed] + [
        _shown(output, "manifest.json")]
    assert written.removed == [_shown(output, "runbooks/staging.md")]
    assert written.unchanged == len(kept) - len(changed)
    again = emit.write(kept, emit.Layout(repo, output), new_sha)
    assert (again.changed, again.removed, again.unchanged) == ([], [], len(kept) + 1)


def test_the_whole_report_of_one_stale_file(trees: dict[str, Any]) -> None:
    repo = trees["pristine"]
    old, old_sha = trees["old"]
    target = repo / "generated" / "cloudformation" / "network.yaml"
    target.write_text(target.read_text().replace("Environment name.", "Environment."))
    outcome = emit.check(old, emit.Layout(repo, repo / "generated"), old_sha)
    [finding] = outcome.findings
    assert finding.status == "edited"
    assert outcome.report() == "\n".join([
        "pipec: 1 generated file(s) do not match pipeline.yaml:",
        f"  edited   {finding.path}  (someone edited it by hand)",
        "",
        finding.diff.rstrip("\n"),
        "",
        "Edit pipeline.yaml (never the generated files) and run `pipec build`.",
    ]) + "\n"
    assert finding.diff.splitlines()[2:] == [  # two lines of context around a change
        "@@ -6,5 +6,5 @@", "   Environment:", "     Type: String", "-    Description: Environment.",
        "+    Description: Environment name.", '     AllowedPattern: "^[a-z][a-z0-9-]*$"', "   VpcCidr:"]


def test_bytes_that_are_not_utf8_on_disk_are_shown_not_fatal(trees: dict[str, Any]) -> None:
    repo = trees["pristine"]
    old, old_sha = trees["old"]
    (repo / "generated" / "README.md").write_bytes(b"\xff\xfe broken\n")
    layout = emit.Layout(repo, repo / "generated")
    [finding] = emit.check(old, layout, old_sha).findings
    assert "-\ufffd\ufffd broken" in finding.diff
    assert emit.read_tree(layout)["generated/README.md"] == "\ufffd\ufffd broken\n"


def test_a_file_without_a_final_newline_still_diffs_line_by_line(trees: dict[str, Any]) -> None:
    repo = trees["pristine"]
    old, old_sha = trees["old"]
    (repo / "generated" / "cloudformation" / "network.yaml").write_text("only line")
    [finding] = emit.check(old, emit.Layout(repo, repo / "generated"), old_sha).findings
    assert all(line.endswith("\n") for line in finding.diff.splitlines(keepends=True))
    assert "-only line\n" in finding.diff


def test_only_the_manifest_out_of_date_is_a_stale_manifest(trees: dict[str, Any]) -> None:
    repo = trees["pristine"]
    old, _ = trees["old"]
    outcome = emit.check(old, emit.Layout(repo, repo / "generated"), "another spec")
    assert [(f.status, f.path) for f in outcome.findings] == [("stale", _shown(repo / "generated", "manifest.json"))]


def test_outputs_outside_the_tree_are_owned_checked_and_never_take_a_foreign_file(tmp_path: Path) -> None:
    from pipec.render.output import Output

    layout = emit.Layout(tmp_path, tmp_path / "generated")
    outputs = [Output("generated/a.txt", "a\n"), *(Output(f".github/workflows/w{i}.yml", f"w{i}\n") for i in range(4))]
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "w0.yml").write_text("w0\n")  # the same bytes: taken over quietly
    for i in range(1, 5):
        (tmp_path / ".github" / "workflows" / f"w{i}.yml").write_text("the team's own\n")
    with pytest.raises(PipecError) as caught:
        emit.write(outputs, layout, "sha")
    [found] = caught.value.diagnostics
    shown = ", ".join(str(tmp_path / ".github" / "workflows" / f"w{i}.yml") for i in (1, 2, 3))
    assert (found.code, found.message) == ("PC507", f"pipec would overwrite file(s) it did not write: {shown}")
    (tmp_path / ".github" / "workflows" / "w3.yml").unlink()
    with pytest.raises(PipecError) as caught:
        emit.write(outputs, layout, "sha")
    assert caught.value.diagnostics[0].message.endswith("w2.yml")  # three or fewer: no "..."
    for i in (1, 2):
        (tmp_path / ".github" / "workflows" / f"w{i}.yml").unlink()
    emit.write(outputs, layout, "sha")
    outcome = emit.check(outputs, layout, "sha")
    assert (outcome.ok, outcome.checked) == (True, 6)  # the tree's file and manifest, and four outside it
    assert emit.read_tree(layout) == {o.path: o.text for o in outputs}
