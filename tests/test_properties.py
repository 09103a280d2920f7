"""Property-based tests: any valid spec builds, parses back, is deterministic and keeps parity; any invalid
one gives located diagnostics and exit 1, never a traceback. Runs are derandomized, so CI sees the same cases.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipec.build import compile_spec
from pipec.diagnostics import PipecError
from pipec.load.load import load_bytes
from pipec.validate.validate import validate
from tests import validators
from tests.conftest import EXAMPLE, cli, templates_of, workflows_of

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ENVIRONMENTS = ("dev", "staging", "qa", "production")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
FARGATE = ((256, 512), (256, 2048), (512, 1024), (1024, 3072), (2048, 16384), (4096, 30720), (8192, 61440))
RUNTIMES = ("python3.13", "python3.12", "nodejs22.x", "java21", "provided.al2023")


@st.composite
def specs(draw: Any, max_services: int = 50) -> dict[str, Any]:
    """Valid specs across the schema: 1-4 environments, 1-3 regions each, 1-max services of every kind."""
    count = draw(st.integers(1, 4))
    envs = list(ENVIRONMENTS[-count:])
    https = draw(st.booleans())
    checks = draw(st.booleans())
    spec: dict[str, Any] = {"pipec": 1, "project": draw(st.sampled_from(["shop", "a", "pay-core", "x1"])),
                            "repository": "acme/app", "artifacts": {}, "environments": {}, "services": {},
                            "alerts": {"email": ["ops@acme.example"]}}
    if draw(st.booleans()):
        spec["release"] = {"branch": draw(st.sampled_from(["main", "trunk", "release/x"])),
                           "tag_prefix": draw(st.sampled_from(["v", "", "release-"]))}
    if draw(st.booleans()):
        spec["github"] = {"workflows_dir": draw(st.sampled_from(["generated/workflows", ".github/workflows"]))}
    for i, env in enumerate(envs):
        regions = draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3, unique=True))
        body: dict[str, Any] = {"account": f"{draw(st.integers(10**11, 10**12 - 1))}", "regions": regions}
        if i == len(envs) - 1 or draw(st.booleans()):
            body["approval"] = draw(st.sampled_from(["manual", "none"]))
        if checks or draw(st.booleans()):
            body["url"] = draw(st.sampled_from(["https://{region}.{env}.acme.example", f"https://{env}.acme.example"]))
        if draw(st.booleans()):
            body["network"] = {"vpcs": {r: {"vpc": "vpc-0123456789abcdef0",
                                            "public_subnets": ["subnet-0000000a", "subnet-0000000b"],
                                            "private_subnets": ["subnet-0000000c", "subnet-0000000d"]}
                                        for r in regions}}
        elif draw(st.booleans()):
            body["network"] = {"cidr": draw(st.sampled_from(["10.0.0.0/16", "172.16.0.0/20", "10.9.8.0/24"]))}
        if https:
            body["certificates"] = {r: f"arn:aws:acm:{r}:{body['account']}:certificate/abc-{i}" for r in regions}
        spec["environments"][env] = body
    for n in range(draw(st.integers(1, max_services))):
        spec["services"][f"svc{n}"] = draw(_service(n, envs, spec["artifacts"]))
    if checks:
        spec["checks"] = {"e2e": {"run": "make e2e", "timeout_minutes": draw(st.integers(1, 60))}}
        if draw(st.booleans()):
            spec["checks"]["sanity"] = {"run": "make sanity", "schedule": draw(st.sampled_from(
                ["*/30 * * * *", "0 4 * * 1-5", "15 */2 * * *"]))}
    return spec


@st.composite
def _service(draw: Any, n: int, envs: list[str], artifacts: dict[str, Any]) -> dict[str, Any]:  # noqa: PLR0912
    kind = draw(st.sampled_from(["web", "worker", "lambda-zip", "lambda-image"]))
    # Services share a few artifacts, as in a real repository: each container image adds an ECR repository to the
    # bootstrap template, and some 40 of them exceed what CloudFormation accepts in a request (PC308).
    artifact = f"zip{n % 4}" if kind == "lambda-zip" else f"image{n % 12}"
    if kind == "lambda-zip":
        artifacts[artifact] = {"type": "lambda-zip", "path": f"dist/{artifact}.zip"}
    elif artifact not in artifacts:
        artifacts[artifact] = {"type": "container-image", "context": draw(st.sampled_from([".", "services/x"])),
                               "platform": draw(st.sampled_from(["linux/amd64", "linux/arm64"]))}
    service: dict[str, Any] = {"artifact": artifact}
    env_vars = draw(st.dictionaries(st.sampled_from(["LOG_LEVEL", "MODE", "WORKERS", "FEATURE"]),
                                    st.text(min_size=0, max_size=12), max_size=3))
    if env_vars:
        service["env"] = env_vars
    overrides = {e: {"LOG_LEVEL": "debug"} for e in envs if draw(st.booleans())}
    if overrides:
        service["config"] = overrides
    if draw(st.booleans()):
        references = ["ssm:/app/{env}/db", "secretsmanager:app/{env}/{region}"]
        service["secrets"] = {"DB_URL": draw(st.sampled_from(references))}
    if kind in ("web", "worker"):
        service["kind"] = "ecs-fargate"
        cpu, memory = draw(st.sampled_from(FARGATE))
        low = draw(st.integers(1, 3))
        service["scaling"] = {e: {"cpu": cpu, "memory": memory, "min": low, "max": low + draw(st.integers(0, 5))}
                              for e in envs}
        if kind == "web":
            service["port"] = draw(st.integers(1024, 65535))
            if draw(st.booleans()):
                service["health_check"] = "/health"
            if draw(st.booleans()):
                service["alarms"] = {"error_rate_percent": draw(st.floats(0.5, 50)), "p99_latency_ms": 900}
        elif draw(st.booleans()):
            service["alarms"] = {"cpu_percent": draw(st.integers(50, 99))}
        if draw(st.booleans()):
            service["command"] = ["run", f"--{n}"]
        return service
    service["kind"] = "lambda"
    if kind == "lambda-zip":
        service |= {"handler": "app.handler", "runtime": draw(st.sampled_from(RUNTIMES))}
        if draw(st.booleans()):
            service["architecture"] = "arm64"
    else:  # a function runs on what its image was built for
        service["architecture"] = "arm64" if artifacts[artifact]["platform"] == "linux/arm64" else "x86_64"
        if draw(st.booleans()):
            service["command"] = [f"h{n}.handler"]
    # Every optional per-environment field is drawn per environment: given in some, left out in others.
    service["scaling"] = {e: {"memory": draw(st.integers(128, 10240))} | (
        {"reserved_concurrency": draw(st.integers(1, 100))} if draw(st.booleans()) else {}) for e in envs}
    strategy = draw(st.sampled_from(["canary", "linear", "all-at-once"]))
    percent = draw(st.integers(1, 99))
    steps = -(-100 // percent) if strategy == "linear" else 1
    # valid: the traffic shifting fits a GitHub-hosted job (PC223: 10 to set up, 10 for the update, 340 shifting)
    service["rollout"] = {"strategy": strategy, "percent": percent,
                          "minutes": draw(st.integers(1, min(60, 340 // steps)))}
    for key, value in (("schedule", draw(st.sampled_from(["rate(5 minutes)", "0 3 * * *", "*/10 * * * 1-5"]))),
                       ("public_url", True), ("dead_letter_queue", False), ("vpc", True),
                       ("timeout", draw(st.integers(1, 900)))):
        if draw(st.booleans()):
            service[key] = value
    return service


def _write(folder: Path, spec: dict[str, Any]) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@SETTINGS
@given(spec=specs())
def test_every_valid_spec_builds_deterministically_with_parity(spec: dict[str, Any], tmp_path: Path) -> None:
    path = _write(tmp_path / "spec", spec)
    first = compile_spec(path)
    second = compile_spec(path)
    assert [(a.path, a.text) for a in first.outputs] == [(a.path, a.text) for a in second.outputs]
    for service in first.plan.services:
        keys = {tuple(k for k, _ in stack.values) for stack in service.stacks}
        assert len(keys) == 1
    result = cli("build", "pipeline.yaml", cwd=path.parent)
    assert result.exit_code == 0, result.stderr
    assert cli("check", "pipeline.yaml", cwd=path.parent).exit_code == 0


@pytest.mark.slow
def test_a_sample_of_generated_specs_passes_the_validators(tmp_path: Path) -> None:
    """Three derandomized specs of the strategy above, judged by the real validators."""
    from hypothesis import find

    folders = []
    for i, size in enumerate((3, 8, 20)):
        spec = find(specs(max_services=size), lambda s, size=size: len(s["services"]) >= size // 2 and
                    len(s["environments"]) >= 2, settings=settings(database=None, derandomize=True, max_examples=200,
                                                                   phases=[Phase.generate]))
        path = _write(tmp_path / f"spec{i}", spec)
        assert cli("build", "pipeline.yaml", cwd=path.parent).exit_code == 0
        folders.append(path.parent)
    templates = [t for f in folders for t in templates_of(f)]
    workflows = [w for f in folders for w in workflows_of(f)]
    verdicts = [*validators.all_cloudformation_validators(templates, tmp_path / "cfn"),
                *validators.all_workflow_validators(workflows, tmp_path / "wf")]
    assert [str(v) for v in verdicts if not v.ok] == []


# ---------------------------------------------------------------- invalid input


def _located_failure(raw: bytes, folder: Path) -> int:
    """The spec is either valid or refused with exit 1 and located diagnostics; never a crash. Returns the exit
    code."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.yaml").write_bytes(raw)
    result = cli("validate", "pipeline.yaml", "--format", "json", cwd=folder)
    assert result.exit_code in (0, 1), result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    payload = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    if result.exit_code == 1:
        assert payload is not None and payload["diagnostics"]
        for diagnostic in payload["diagnostics"]:
            assert diagnostic["file"] == "pipeline.yaml"
            assert diagnostic["code"].startswith("PC")
            assert diagnostic["line"] >= 1 or diagnostic["code"] in ("PC001", "PC002", "PC013")
    return result.exit_code


EXAMPLE_BYTES = EXAMPLE.read_bytes()


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, len(EXAMPLE_BYTES) - 1), st.integers(0, 255),
                                st.sampled_from(["replace", "insert", "delete"])), min_size=1, max_size=8))
def test_random_byte_edits_never_crash(edits: list[tuple[int, int, str]], tmp_path: Path) -> None:
    raw = bytearray(EXAMPLE_BYTES)
    for offset, byte, action in edits:
        position = offset % max(1, len(raw))
        if action == "replace":
            raw[position] = byte
        elif action == "insert":
            raw.insert(position, byte)
        elif raw:
            del raw[position]
    _located_failure(bytes(raw), tmp_path / "edited")


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


EXAMPLE_DATA = yaml.safe_load(EXAMPLE_BYTES)
MUTABLE = _paths(EXAMPLE_DATA)
ODD_VALUES = [None, True, 0, -1, 3.5, "", "x" * 300, [], {}, ["a"], {"k": "v"}, "${{ x }}", "ünï", 10**40]


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(MUTABLE), value=st.sampled_from(ODD_VALUES), rng=st.randoms(use_true_random=False))
def test_wrong_types_anywhere_are_located_errors(path: tuple[Any, ...], value: Any, rng: random.Random,
                                                 tmp_path: Path) -> None:
    """An odd value may happen to be valid where it lands (an empty string for an optional text, {} for an
    optional mapping); a list or a mapping where the example has a single value never is."""
    data = json.loads(json.dumps(EXAMPLE_DATA))
    original = _get(data, path)
    _set(data, path, value)
    code = _located_failure(yaml.safe_dump(data, sort_keys=False).encode(), tmp_path / "typed")
    if not isinstance(original, dict | list) and value in (["a"], {"k": "v"}):
        assert code == 1, f"{'.'.join(map(str, path))}: {value!r} was accepted in place of {original!r}"


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from([p for p in MUTABLE if isinstance(p[-1], str)]),
       key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_unknown_keys_are_refused_where_they_are(path: tuple[Any, ...], key: str, tmp_path: Path) -> None:
    data = json.loads(json.dumps(EXAMPLE_DATA))
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    free_form = path[:-1][-1:] in (("env",), ("secrets",), ("artifacts",), ("services",), ("environments",),
                                   ("scaling",), ("config",), ("vpcs",), ("certificates",)) or (
        len(path) >= 2 and path[-3:-1][:1] == ("config",))
    if key in parent or free_form or not isinstance(parent, dict):
        return
    parent[key] = "value"
    raw = yaml.safe_dump(data, sort_keys=False).encode()
    with pytest.raises(PipecError) as caught:
        validate(load_bytes(raw, "pipeline.yaml"))
    unknown = [d for d in caught.value.diagnostics if d.code == "PC101"]
    assert unknown and unknown[0].message.startswith(f'unknown key "{key}"')


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20))
def test_broken_references_name_the_reference(name: str) -> None:
    data = json.loads(json.dumps(EXAMPLE_DATA))
    if name in data["artifacts"]:
        return
    data["services"]["api"]["artifact"] = name
    with pytest.raises(PipecError) as caught:
        validate(load_bytes(yaml.safe_dump(data, sort_keys=False).encode(), "pipeline.yaml"))
    codes = {d.code for d in caught.value.diagnostics}
    assert codes & {"PC201", "PC104"}, codes
