"""Stage 2, validate: the models, the rules, and the text-keeping that defuses YAML's number surprises."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec.diagnostics import PipecError, Severity, format_text
from pipec.load.load import load, load_bytes
from pipec.validate.rules import RULES, check
from pipec.validate.suggest import did_you_mean
from pipec.validate.validate import _parse, _recover, validate
from tests.conftest import EXAMPLE, REPO

_CERTIFICATE = "    certificates: {{us-east-1: arn:aws:acm:us-east-1:{}:certificate/shop}}\n"
# The error cases' spec with an account per environment, serving HTTPS.
BASE = (REPO / "tests" / "errors" / "shared-account.yaml").read_text().replace(
    'account: "111111111111"\n    regions: [us-east-1]\n    approval: manual',
    'account: "222222222222"\n    regions: [us-east-1]\n    approval: manual').replace(
    "    url: https://staging.shop.example\n", "    url: https://staging.shop.example\n" + _CERTIFICATE.format(
        "111111111111")).replace("    url: https://shop.example\n", "    url: https://shop.example\n" +
                                 _CERTIFICATE.format("222222222222"))


def _validate(text: str):  # type: ignore[no-untyped-def]
    return validate(load_bytes(text.encode(), "pipeline.yaml"))


def test_the_example_is_valid_without_warnings() -> None:
    assert validate(load(EXAMPLE)).warnings == ()


def test_the_base_of_the_error_cases_is_valid() -> None:
    validated = _validate(BASE)
    assert validated.spec.project == "shop"
    assert validated.warnings == ()


def test_unquoted_numbers_keep_the_text_the_user_wrote() -> None:
    text = BASE.replace('account: "222222222222"', "account: 012345678901").replace(
        "LOG_LEVEL: info", "LOG_LEVEL: info\n      RATIO: 1.10\n      DEBUG: on\n      FLAG: true")
    spec = _validate(text).spec
    assert spec.environments["production"].account == "012345678901"
    assert spec.services["web"].env == {"LOG_LEVEL": "info", "RATIO": "1.10", "DEBUG": "on", "FLAG": "true"}


def test_booleans_are_never_made_from_words() -> None:
    with pytest.raises(PipecError) as caught:
        _validate(BASE.replace('    schedule: "0 3 * * *"', '    schedule: "0 3 * * *"\n    public_url: yes'))
    [problem] = caught.value.diagnostics
    assert problem.code == "PC103"
    assert "true or false" in problem.message


def test_schema_errors_are_all_reported_and_sorted() -> None:
    text = BASE.replace("project: shop", "project: Shop").replace("    port: 8080", "    port: eighty")
    with pytest.raises(PipecError) as caught:
        _validate(text)
    assert [(d.code, d.line) for d in caught.value.diagnostics] == [("PC104", 2), ("PC103", 27)]


def _codes_at(text: str) -> list[tuple[str, int]]:
    with pytest.raises(PipecError) as caught:
        _validate(text)
    return [(d.code, d.line) for d in caught.value.diagnostics]


def test_rule_errors_are_reported_beside_schema_errors() -> None:
    """One run reports every independent problem: the rules check what the models accepted."""
    text = (BASE.replace("    approval: manual", "    approval: manul")                  # PC104
            .replace("    artifact: web-image", "    artifact: web-imag")               # PC201
            .replace("      LOG_LEVEL: info", "      LOG_LEVEL: info\n      API_TOKEN: a8Fj3kLm9QzX2pW7")  # PC206
            .replace("    handler: nightly.handler", "    handlr: nightly.handler")     # PC101
            .replace("regions: [us-east-1]\n    approval: none", "regions: [us-east-7]\n    approval: none")
            .replace(_CERTIFICATE.format("111111111111"), "")
            .replace("alerts:\n  email: [ops@shop.example]\n", ""))                 # PC102 at 1:1
    assert _codes_at(text) == [("PC102", 1), ("PC203", 13), ("PC104", 19), ("PC201", 25), ("PC206", 29),
                            ("PC101", 37)]


def _sized_secret(project: str) -> str:
    """BASE with a secret in the Lambda whose variables take 4,096 bytes exactly when the project is `project`."""
    text = BASE.replace("    handler: nightly.handler", "    handler: nightly.handler\n    secrets:\n"
                        "      KEY: ssm:/{project}/key")
    def fits(length: int) -> bool:
        try:
            _validate(padded(length).replace("project: shop", f"project: {project}"))
        except PipecError:
            return False
        return True

    def padded(length: int) -> str:
        return text.replace("    handler: nightly.handler", f"    handler: nightly.handler\n    env:\n"
                            f"      PAD: {'x' * length}")

    low, high = 0, 4096  # fits(low), not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return padded(low)


@pytest.mark.parametrize(("text", "silent"), [
    # an artifact the models refused is not "unknown" to the service that names it
    (BASE.replace("    type: container-image", "    type: container-imag"), "PC201"),
    # an environment the models refused is not "unknown" in scaling, nor a missing last approval
    (BASE.replace("      production: {cpu: 512, memory: 1024, min: 2, max: 4}",
                  "      production: {cpu: 512, memory: 1024, min: 2, max: 4}\n      prod: {cpu: 256, memory: 512,"
                  " min: 1, max: 1}").replace("  production:\n", "  prod:\n    approval: soon\n  production:\n"
                                              "    accont: x\n", 1), "PC202"),
    (BASE.replace("  production:\n", '  qa:\n    account: "333333333333"\n    regions: [us-east-1]\n'
                  "    url: https://qa.shop.example\n  production:\n").replace("approval: manual", "approval: manul"),
     "PC204"),
    # an artifact used only by a service the models refused is not "unused"
    (BASE.replace("    runtime: python3.13", "    runtime: 3.13\n    memory_size: 1"), "PC216"),
    # an environment the models refused may be the one that gives certificates
    (BASE.replace(_CERTIFICATE.format("111111111111"), "").replace("approval: manual", "approval: manul"), "PC220"),
    # the stand-in for a refused project has a length of its own, which says nothing of the real one's
    (_sized_secret("shop").replace("project: shop", "project: Shop"), "PC218"),
])
def test_rules_that_look_up_a_refused_part_stay_silent(text: str, silent: str) -> None:
    document = load_bytes(text.encode(), "pipeline.yaml")
    with pytest.raises(PipecError) as caught:
        validate(document)
    assert silent not in [d.code for d in caught.value.diagnostics]
    # ... where, run on the same recovered spec without knowing what was refused, the rule would speak falsely
    issues = _parse(document, document.data)
    assert isinstance(issues, list)
    recovered = _recover(document, issues)
    assert recovered is not None
    assert silent in [d.code for d in check(recovered[0], document)]


def test_a_section_without_a_valid_entry_leaves_nothing_to_check() -> None:
    text = BASE.replace("    kind: ecs-fargate", "    kind: ecs").replace("    kind: lambda", "    kind: lamda")
    assert [code for code, _ in _codes_at(text.replace("LOG_LEVEL: info", "API_TOKEN: a8Fj3kLm9QzX2pW7"))] == [
        "PC104", "PC104"]  # and no PC206 from a recovered spec with no services


def test_warnings_do_not_stop_the_build() -> None:
    validated = _validate(BASE.replace('"222222222222"', '"111111111111"'))
    assert [(w.code, w.severity) for w in validated.warnings] == [("PC205", Severity.WARNING)]


def test_ecs_services_need_an_image() -> None:
    with pytest.raises(PipecError) as caught:
        _validate(BASE.replace("    artifact: web-image", "    artifact: jobs-zip"))
    found = caught.value.diagnostics
    assert [d.code for d in found if d.severity is Severity.ERROR] == ["PC201"]
    assert [d.code for d in found if d.severity is Severity.WARNING] == ["PC216"]  # web-image is now unused


def test_https_is_all_or_nothing() -> None:
    text = BASE.replace(_CERTIFICATE.format("222222222222"), "")
    with pytest.raises(PipecError) as caught:
        _validate(text)
    assert [d.code for d in caught.value.diagnostics] == ["PC213"]


def test_existing_network_covers_every_region() -> None:
    text = BASE.replace("    url: https://shop.example", "    url: https://shop.example\n    network:\n"
                        "      vpcs:\n        eu-west-1:\n          vpc: vpc-0123456789abcdef0\n"
                        "          public_subnets: [subnet-00000001, subnet-00000002]\n"
                        "          private_subnets: [subnet-00000003, subnet-00000004]")
    with pytest.raises(PipecError) as caught:
        _validate(text)
    assert sorted(d.code for d in caught.value.diagnostics) == ["PC203", "PC212"]


@pytest.mark.parametrize(("word", "options", "expected"), [
    ("projct", ["project", "pipec"], 'did you mean "project"?'),
    ("ecs", ["ecs-fargate", "lambda"], 'did you mean "ecs-fargate"?'),
    ("LOG-LEVEL", ["log_level"], 'did you mean "log_level"?'),
    ("zzz", ["project"], None),
])
def test_did_you_mean(word: str, options: list[str], expected: str | None) -> None:
    assert did_you_mean(word, options) == expected


def test_rule_codes_are_unique_and_titled() -> None:
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes))
    assert all(r.title for r in RULES)


def test_every_code_in_the_source_is_registered_and_every_registered_code_is_used() -> None:
    import re

    from pipec.codes import CODES

    used = set()
    for path in (REPO / "compiler" / "pipec").rglob("*.py"):
        if path.name != "codes.py":
            used |= set(re.findall(r'"(PC\d{3})"', path.read_text()))
    assert sorted(used - set(CODES)) == []
    assert sorted(set(CODES) - used) == []


def test_starter_spec_is_valid(tmp_path: Path) -> None:
    from pipec.cli.starter import write

    write(tmp_path / "pipeline.yaml")  # as an editable or index install writes it: nothing to pin pipec by
    assert [w.code for w in validate(load(tmp_path / "pipeline.yaml")).warnings] == ["PC222"]


def test_the_aws_facts_agree_with_botocore_and_cfn_lint() -> None:
    """The regions are the ones botocore knows for CloudFormation; the Lambda runtimes are those cfn-lint's
    lifecycle data had not deprecated on the facts' date; the reserved Lambda variables are cfn-lint's."""
    import json
    from importlib import resources

    import botocore.session

    from pipec.validate import facts as aws_facts

    assert set(botocore.session.get_session().get_available_regions("cloudformation")) == aws_facts.REGIONS
    data = resources.files("cfnlint") / "data"
    lifecycle = json.loads((data / "AdditionalSpecs" / "LmbdRuntimeLifecycle.json").read_text())
    current = {name for name, dates in lifecycle.items()
               if (dates["deprecated"] or "9999-12-31") > aws_facts.LAMBDA_RUNTIMES_AS_OF}
    assert set(aws_facts.LAMBDA_RUNTIMES) == current
    keys = json.loads((data / "schemas" / "extensions" / "aws_lambda_function" / "environment_variable_keys.json")
                      .read_text())
    assert set(keys["propertyNames"]["not"]["enum"]) == aws_facts.LAMBDA_RESERVED_VARIABLES


def test_lambda_variables_over_4_kb_are_reported_where_they_are_set() -> None:
    text = (REPO / "tests" / "errors" / "lambda-variables-too-big.yaml").read_text()
    start, end = text.index("    env:\n      PRICE_TABLE_A"), text.index("    config:\n")
    text = text[:start] + text[end:].replace("        PRICE_TABLE_C:", "        PRICE_TABLE_D: \"" + "d" * 3000
                                             + "\"\n        PRICE_TABLE_C:")
    with pytest.raises(PipecError) as caught:
        _validate(text)
    [found] = caught.value.diagnostics
    assert found.code == "PC218" and "in production take" in found.message
    assert found.source_line == "      production:"


def _found(text: str) -> list[tuple[str, str]]:
    """(code, message) of every error and warning a spec gets."""
    try:
        return [(d.code, d.message) for d in _validate(text).warnings]
    except PipecError as exc:
        return [(d.code, d.message) for d in exc.diagnostics]


@pytest.mark.parametrize(("value", "flagged"), [
    ("h7Kq2xPz9mWv", True),  # 12 characters, letters and digits, high entropy: a secret by its name
    ("h7Kq2xPz9mW", False),  # 11: too short to tell
    ("h7Kq2xPz 9mWv4", False),  # a space: a phrase, not a key
    ("hKqxPzmWvRtAb", False),  # no digit
    ("7294018375629", False),  # no letter
    ("aaaaaaaaaaa1", False),  # low entropy
])
def test_a_plaintext_value_is_a_secret_by_its_name_only_when_it_looks_random(value: str, flagged: bool) -> None:
    found = _found(BASE.replace("      LOG_LEVEL: info\n", f"      LOG_LEVEL: info\n      API_TOKEN: {value}\n"))
    expected = [("PC206", "API_TOKEN holds what looks like a secret (by its name, API_TOKEN) in plain text")]
    assert found == (expected if flagged else [])


def test_a_random_value_under_an_ordinary_name_is_no_secret() -> None:
    text = BASE.replace("      LOG_LEVEL: info\n", "      LOG_LEVEL: info\n      BUILD_ID: h7Kq2xPz9mWv\n")
    assert _found(text) == []


def test_config_values_are_checked_for_secrets_too() -> None:
    text = BASE.replace("      production: {cpu: 512, memory: 1024, min: 2, max: 4}\n",
                        "      production: {cpu: 512, memory: 1024, min: 2, max: 4}\n    config:\n"
                        "      production: {GITHUB: ghp_abcdefghijklmnopqrstuvwxyz0123456789}\n")
    assert _found(text) == [("PC206", "GITHUB holds what looks like a GitHub token in plain text")]


@pytest.mark.parametrize(("url", "expected"), [
    ("https://{region.shop.example", [("PC207", "unbalanced { } in a placeholder")]),
    ("https://{stage}.shop.example", [("PC207", "unknown placeholder {stage}")]),
    ("https://{env}-{region}.shop.example", []),
])
def test_url_placeholders(url: str, expected: list[tuple[str, str]]) -> None:
    assert _found(BASE.replace("url: https://shop.example", f'url: "{url}"')) == expected


def test_a_sanity_schedule_takes_cron_only() -> None:
    text = BASE.replace("    run: ./sanity.sh\n", '    run: ./sanity.sh\n    schedule: "rate(5 minutes)"\n')
    assert _found(text) == [("PC210", "rate(...) is not available here")]


def test_a_single_environment_needs_no_approval_setting() -> None:
    text = BASE.replace('  production:\n    account: "222222222222"\n    regions: [us-east-1]\n    approval: manual\n'
                        "    url: https://shop.example\n", "").replace(
        "      production: {cpu: 512, memory: 1024, min: 2, max: 4}\n", "").replace(
        "      production: {memory: 512}\n", "").replace("    approval: none\n", "").replace(
        _CERTIFICATE.format("222222222222"), "")
    assert _found(text) == []


# Free text, where a trailing newline is part of the value (a command, an environment variable's value).
_FREE_TEXT = re.compile(r"services\.[^.]+\.(env|config\.[^.]+)\.[^.]+"
                        r"|checks\.[^.]+\.(run|setup)|artifacts\.[^.]+\.build")


def _leaves(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], bool]]:
    """Every text value (False) and every mapping key (True) of a spec, by path."""
    if isinstance(node, dict):
        for key, value in node.items():
            if path:  # the top-level keys are pipec's own
                yield (*path, key), True
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, (*path, i))
    elif isinstance(node, str):
        yield path, False


def _with_newline(data: Any, path: tuple[str | int, ...], is_key: bool) -> Any:
    data = copy.deepcopy(data)
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if is_key:
        parent[f"{last}\n"] = parent.pop(last)
    else:
        parent[last] += "\n"
    return data


EXAMPLE_DATA = yaml.safe_load(EXAMPLE.read_text())
LEAVES = list(_leaves(EXAMPLE_DATA))


@pytest.mark.parametrize(("path", "is_key"), LEAVES, ids=[".".join(map(str, p)) + (" (key)" if k else "")
                                                         for p, k in LEAVES])
def test_every_pattern_matches_the_whole_value_a_trailing_newline_is_refused(
        path: tuple[str | int, ...], is_key: bool) -> None:
    text = yaml.safe_dump(_with_newline(EXAMPLE_DATA, path, is_key), sort_keys=False, width=1000)
    dotted = ".".join(map(str, path))
    if _FREE_TEXT.fullmatch(dotted) and not is_key:
        assert _validate(text).spec is not None  # free text may end in a newline
        return
    with pytest.raises(PipecError) as caught:
        _validate(text)
    assert caught.value.exit_code == 1
    for found in caught.value.diagnostics:  # located, and each part of the report on its own line
        assert found.line >= 1, found
        assert len(format_text(found).splitlines()) == 1 + 3 * bool(found.source_line) + bool(found.hint), found


# ---------------------------------------------------------------- what mutation testing found the rules' tests missing


def _reported(text: str) -> list[tuple[str, str, str | None, str]]:
    """(code, message, hint, the spec line it points at) of every diagnostic, errors and warnings."""
    try:
        found = list(_validate(text).warnings)
    except PipecError as caught:
        found = list(caught.diagnostics)
    return [(d.code, d.message, d.hint, (d.source_line or "").strip()) for d in found if d.code != "PC205"]


def _worker(text: str) -> str:
    return text.replace("checks:", """  queue:
    kind: ecs-fargate
    artifact: web-image
    scaling:
      staging: {cpu: 256, memory: 512, min: 1, max: 1}
      production: {cpu: 256, memory: 512, min: 1, max: 1}
checks:""", 1)


@pytest.mark.parametrize(("old", "new", "expected"), [
    # the hints list what exists when nothing is close enough to suggest
    ("    artifact: web-image\n    port", "    artifact: zzz\n    port",
     [("PC201", 'service "web" uses unknown artifact "zzz"', "artifacts are: web-image, jobs-zip", "artifact: zzz")]),
    ("      production: {memory: 512}", "      production: {memory: 512}\n      qqqqq: {memory: 512}",
     [("PC202", 'unknown environment "qqqqq" in scaling of service "nightly"', "environments are: staging, "
       "production", "qqqqq: {memory: 512}")]),
    ("    approval: none\n    url: https://staging.shop.example",
     "    approval: none\n    url: https://staging.shop.example\n    network:\n      vpcs:\n        ap-southeast-2:\n"
     "          vpc: vpc-0123456789abcdef0\n          public_subnets: [subnet-0000000a, subnet-0000000b]\n"
     "          private_subnets: [subnet-0000000c, subnet-0000000d]",
     [("PC212", 'no VPC is given for region "us-east-1"', "list an existing VPC for every region, or drop `vpcs` to "
       "let pipec manage the network", "vpcs:"),
      ("PC203", 'network.vpcs names region "ap-southeast-2", which environment "staging" does not deploy to',
       "its regions are: us-east-1", "ap-southeast-2:")]),
    ("    runtime: python3.13\n", "    runtime: cobol85\n",
     [("PC209", '"cobol85" is not a supported, non-deprecated Lambda runtime',
       "e.g. python3.14, python3.13, python3.12", "runtime: cobol85")]),
    # a secret pasted into one environment's config, at its line
    ("    env:\n      LOG_LEVEL: info\n", "    env:\n      LOG_LEVEL: info\n    config:\n      production:\n"
     "        API_TOKEN: ab12cd34ab12cd34\n",  # entropy exactly 3.0 bits: random enough
     [("PC206", "API_TOKEN holds what looks like a secret (by its name, API_TOKEN) in plain text",
       "store it in SSM or Secrets Manager and reference it under `secrets:`, e.g. API_TOKEN: "
       "ssm:/shop/{env}/api-token (the value is hidden here)", "API_TOKEN: ****************")]),
    ("    url: https://shop.example\n", "    url: https://{tenant}.shop.example\n",
     [("PC207", "unknown placeholder {tenant}", "known placeholders: {env}, {region}",
       "url: https://{tenant}.shop.example")]),
    ("      staging: {cpu: 256, memory: 512, min: 1, max: 2}", "      staging: {cpu: 300, memory: 512, min: 1, max: 2}",
     [("PC208", "300 is not a Fargate cpu size", "Fargate cpu is one of 256, 512, 1024, 2048, 4096, 8192, 16384",
       "staging: {cpu: 300, memory: 512, min: 1, max: 2}")]),
    ("  sanity:\n    run: ./sanity.sh", "  sanity:\n    run: ./sanity.sh\n    schedule: \"0 3 * * * *\"",
     [("PC210", '"0 3 * * * *" has 6 fields; cron takes 5 (minute hour day month weekday)',
       'e.g. "*/30 * * * *" for every 30 minutes, in UTC', 'schedule: "0 3 * * * *"')]),
])
def test_each_rule_points_at_the_line_and_names_what_exists(old: str, new: str,
                                                            expected: list[tuple[str, str, str | None, str]]) -> None:
    assert old in BASE
    found = _reported(BASE.replace(old, new, 1))
    assert [f[:3] for f in found] == [e[:3] for e in expected]
    assert [f[3] for f in found if f[3]] == [e[3] for e in expected if e[3]]


def test_web_only_settings_on_two_workers_are_each_reported() -> None:
    text = _worker(BASE).replace("  queue:\n    kind: ecs-fargate\n", "  queue:\n    kind: ecs-fargate\n"
                                 "    alarms: {error_rate_percent: 2}\n").replace(
        "  web:\n    kind: ecs-fargate\n    artifact: web-image\n    port: 8080\n",
        "  web:\n    kind: ecs-fargate\n    artifact: web-image\n    alarms: {p99_latency_ms: 200}\n")
    assert [f[:2] for f in _reported(text)] == [
        ("PC214", 'service "web" has no port and no load balancer, so it has no p99_latency_ms alarm'),
        ("PC214", 'service "queue" has no port and no load balancer, so it has no error_rate_percent alarm')]


def test_web_services_on_plain_http_are_warned_once_at_the_last_environment() -> None:
    plain = BASE.replace(_CERTIFICATE.format("111111111111"), "").replace(_CERTIFICATE.format("222222222222"), "")
    assert _reported(plain) == [("PC220", "web serves plain HTTP to the internet in every environment, production "
                                 "included: no environment gives a certificate",
                                 "add `certificates: {REGION: arn:aws:acm:...}` to every environment; port 80 then "
                                 "only redirects to HTTPS", "production:")]
    two = plain.replace("services:\n", "services:\n  admin:\n    kind: ecs-fargate\n    artifact: web-image\n"
                        "    port: 9000\n    scaling:\n      staging: {cpu: 256, memory: 512, min: 1, max: 1}\n"
                        "      production: {cpu: 256, memory: 512, min: 1, max: 1}\n")
    assert [(code, message.split(" plain")[0]) for code, message, _, _ in _reported(two)] == [
        ("PC220", "admin, web serve")]
    assert _reported(plain.replace("    port: 8080\n", "")) == []  # a worker has no load balancer


def test_a_worker_alone_needs_no_certificate_and_an_entropy_below_three_bits_is_no_secret() -> None:
    text = BASE.replace("    port: 8080\n", "").replace(_CERTIFICATE.format("111111111111"), "").replace(
        "      LOG_LEVEL: info\n", "      LOG_LEVEL: info\n      API_TOKEN: aab12cd34ab12cd3\n")
    assert [f[0] for f in _reported(text)] == []


@pytest.mark.parametrize(("minutes", "runner", "refused"), [
    (34, None, None),  # webhooks alone: 10 + 10 + 340 = 360 minutes, what a GitHub-hosted runner gives a job
    (35, None, '"webhooks" may take up to 370 minutes (10 to set up, 10 for the update, 350 shifting traffic), but a '
               "GitHub-hosted runner stops a job after 360"),
    (35, "[self-hosted, linux]", None),
    (70, "[self-hosted, linux]", None),  # 720: the longest role session IAM allows
    (71, "[self-hosted, linux]", '"webhooks" may take up to 730 minutes (10 to set up, 10 for the update, 710 '
                                 "shifting traffic), but a role session lasts at most 720 (IAM)"),
])
def test_a_rollout_that_cannot_fit_a_job_is_refused_at_its_line(minutes: int, runner: str | None,
                                                                 refused: str | None) -> None:
    """webhooks' rollout becomes linear, ten steps of 10 % `minutes` apart."""
    text = EXAMPLE.read_text().replace("      strategy: canary\n      percent: 10\n      minutes: 5\n",
                                       f"      strategy: linear\n      percent: 10\n      minutes: {minutes}\n")
    if runner:
        text = text.replace("github:\n", f"github:\n  runner: {runner}\n", 1)
    if refused is None:
        assert _validate(text).warnings == ()
        return
    with pytest.raises(PipecError) as caught:
        _validate(text)
    [found] = caught.value.diagnostics
    lines = [line.split("#")[0].rstrip() for line in text.splitlines()]
    line = lines.index("    rollout:", lines.index("  webhooks:")) + 1
    assert (found.code, found.line, found.column) == ("PC223", line, 5)
    assert found.message.startswith(f"deploying {refused}")


def test_the_deploy_job_takes_its_services_in_turn_within_the_job_limit() -> None:
    from pipec.validate.rules import deploy_minutes

    assert deploy_minutes(_validate(EXAMPLE.read_text()).spec) == 10 + 30 + 30 + 10 + (10 + 5)
    many = EXAMPLE.read_text().replace("      minutes: 5\n", "      minutes: 300\n")
    assert deploy_minutes(_validate(many).spec) == 360  # every service fits alone; together, the job's limit
