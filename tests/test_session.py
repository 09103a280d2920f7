"""AWS sessions: how every botocore failure becomes a PipecError (code, message, hint, exit 4), who the actor of
a deployment is, the account check, and the client settings a long deployment depends on."""

from __future__ import annotations

import re
from typing import Any

import pytest
from botocore import exceptions
from botocore.stub import Stubber

from pipec.aws.session import Aws, client_error, errors, translate, utc_now
from pipec.diagnostics import PipecError


def _client_error(code: str, message: str = "why") -> exceptions.ClientError:
    return exceptions.ClientError({"Error": {"Code": code, "Message": message}}, "GetParameter")


@pytest.mark.parametrize(("code", "expected"), [
    *[(c, ("PC601", "reading x: the AWS credentials are expired or invalid ({c})",
           "sign in again, or re-run the workflow job to get fresh credentials"))
      for c in ("ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
                "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidToken")],
    *[(c, ("PC608", "reading x: AWS is throttling the requests ({c}), even after retries",
           "wait a minute and run the command again"))
      for c in ("Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown",
                "ProvisionedThroughputExceededException")],
    *[(c, ("PC602", "reading x: access denied: why",
           "the role needs this permission; the bootstrap stack defines what the deploy role may do"))
      for c in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError")],
    ("ValidationError", ("PC602", "reading x: AWS refused the request: ValidationError: why", None)),
])
def test_every_refusal_says_what_it_means(code: str, expected: tuple[str, str, str | None]) -> None:
    found = client_error(_client_error(code), "reading x: ")
    [diagnostic] = found.diagnostics
    assert (diagnostic.code, diagnostic.message, diagnostic.hint) == (expected[0], expected[1].format(c=code),
                                                                      expected[2])
    assert found.exit_code == 4


_SIGN_IN = ("sign in (e.g. `aws sso login`), export AWS_PROFILE, or run inside the GitHub workflow, which assumes "
            "the deploy role")
_NETWORK = "check the network, the region, and AWS_ENDPOINT_URL if it is set"


@pytest.mark.parametrize(("failure", "expected"), [
    (exceptions.NoCredentialsError(), ("PC601", "no AWS credentials were found", _SIGN_IN)),
    (exceptions.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
     ("PC601", "no AWS credentials were found", _SIGN_IN)),
    (exceptions.TokenRetrievalError(provider="sso", error_msg="expired"),
     ("PC601", "the AWS session has expired", "sign in again (e.g. `aws sso login`)")),
    (exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
     ("PC616", 'step: cannot reach AWS: Could not connect to the endpoint URL: "http://127.0.0.1:9"', _NETWORK)),
    (exceptions.ConnectTimeoutError(endpoint_url="http://x"),
     ("PC616", 'step: cannot reach AWS: Connect timeout on endpoint URL: "http://x"', _NETWORK)),
    (exceptions.ReadTimeoutError(endpoint_url="http://x"),
     ("PC616", 'step: cannot reach AWS: Read timeout on endpoint URL: "http://x"', _NETWORK)),
    (_client_error("AccessDenied", "no"), ("PC602", "step: access denied: no",
                                          "the role needs this permission; the bootstrap stack defines what the "
                                          "deploy role may do")),
])
def test_errors_turns_botocore_failures_into_one_error(failure: Exception, expected: tuple[str, str, str]) -> None:
    with pytest.raises(PipecError) as caught, errors("step"):
        raise failure
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.message, diagnostic.hint) == expected
    assert caught.value.exit_code == 4
    assert caught.value.__suppress_context__  # no botocore traceback chained to it


def test_errors_leaves_everything_else_alone() -> None:
    with pytest.raises(KeyError), errors("step"):
        raise KeyError("a bug stays a bug")
    mine = PipecError([])
    with pytest.raises(PipecError) as caught, errors("step"):
        raise mine
    assert caught.value is mine
    with errors("step"):
        pass
    assert translate(ValueError("x"), "") is None


def test_the_actor_is_the_workflow_run_inside_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.example",
                       "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "42", "GITHUB_ACTOR": "alice"}.items():
        monkeypatch.setenv(key, value)
    assert Aws().actor() == "alice via https://github.example/o/r/actions/runs/42"
    for key in ("GITHUB_SERVER_URL", "GITHUB_ACTOR"):
        monkeypatch.delenv(key)
    assert Aws().actor() == "github-actions via https://github.com/o/r/actions/runs/42"
    for key in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID"):
        monkeypatch.delenv(key)
    assert Aws().actor() == "github-actions via https://github.com//actions/runs/"


def _stub_identity(aws: Aws, account: str) -> Stubber:
    stub = Stubber(aws.client("sts", "us-east-1"))
    stub.add_response("get_caller_identity", {"Account": account, "Arn": f"arn:aws:iam::{account}:user/bob",
                                              "UserId": "x"})
    stub.activate()
    return stub


def test_outside_actions_the_actor_is_the_caller_and_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    aws = Aws()
    stub = _stub_identity(aws, "111111111111")
    assert aws.actor() == "arn:aws:iam::111111111111:user/bob"
    assert aws.identity() == {"account": "111111111111", "arn": "arn:aws:iam::111111111111:user/bob"}
    stub.assert_no_pending_responses()  # one call, then remembered


def test_credentials_of_another_account_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    aws = Aws()
    _stub_identity(aws, "111111111111")
    aws.require_account("111111111111", "staging")
    with pytest.raises(PipecError) as caught:
        aws.require_account("222222222222", "production")
    [found] = caught.value.diagnostics
    assert (found.code, found.message, found.hint) == (
        "PC605", 'the credentials are for AWS account 111111111111, but environment "production" is in account '
                 "222222222222", "use credentials of account 222222222222 (e.g. assume the environment's deploy role)")
    assert caught.value.exit_code == 4


def test_clients_are_made_once_with_the_settings_a_long_deployment_needs() -> None:
    aws = Aws()
    client: Any = aws.client("ssm", "eu-west-1")
    assert aws.client("ssm", "eu-west-1") is client and aws.client("ssm", "us-east-1") is not client
    config = client.meta.config
    assert (config.retries, config.connect_timeout, config.read_timeout) == (
        {"mode": "standard", "total_max_attempts": 9}, 10, 70)  # the first try and eight retries
    assert config.user_agent_extra == "pipec"
    assert client.meta.region_name == "eu-west-1"


def test_record_times_are_utc_with_milliseconds() -> None:
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now())


@pytest.mark.parametrize(("failure", "code", "message"), [
    (ValueError("plain"), "", "plain"),
    (exceptions.ClientError({}, "Op"), "", "An error occurred (Unknown) when calling the Op operation: Unknown"),
    (exceptions.ClientError({"Error": {}}, "Op"), "", "An error occurred (Unknown) when calling the Op operation: "
                                                      "Unknown"),
    (exceptions.ClientError({"Error": {"Code": "Boom"}}, "Op"), "Boom",
     "An error occurred (Boom) when calling the Op operation: Unknown"),
])
def test_code_and_message_of_any_exception(failure: Exception, code: str, message: str) -> None:
    from pipec.aws.session import code_of, message_of

    assert (code_of(failure), message_of(failure)) == (code, message)


def test_a_refusal_without_a_step_has_no_prefix() -> None:
    [found] = client_error(_client_error("ValidationError", "bad")).diagnostics
    assert found.message == "AWS refused the request: ValidationError: bad"
