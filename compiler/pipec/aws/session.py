"""AWS clients with standard retries, and the translation of every AWS failure into a clear PipecError.

boto3 is imported here, lazily, so only the commands that talk to AWS pay for it. The endpoint comes from the
usual places (AWS_ENDPOINT_URL included, which is how the tests reach their moto server).
"""

from __future__ import annotations

import gc
import os
from datetime import UTC, datetime
from typing import Any

from pipec.diagnostics import PipecError, fail

_CREDENTIALS = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
                "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidToken"}
_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
              "SlowDown", "ProvisionedThroughputExceededException"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}


class Aws:
    """One set of credentials: clients per service and region, and who the caller is."""

    def __init__(self) -> None:
        gc.enable()  # `pipec.__main__` pauses it for short compiles; an AWS command may poll for many minutes
        import boto3
        from botocore.config import Config

        self._session = boto3.session.Session()
        self._config = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=10,
                              read_timeout=70, user_agent_extra="pipec")
        self._clients: dict[tuple[str, str], Any] = {}
        self._identity: dict[str, str] | None = None

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._session.client(service, region_name=region, config=self._config)
        return self._clients[key]

    def identity(self, region: str = "us-east-1") -> dict[str, str]:
        if self._identity is None:
            with errors():
                found = self.client("sts", region).get_caller_identity()
            self._identity = {"account": found["Account"], "arn": found["Arn"]}
        return self._identity

    def actor(self) -> str:
        """Who deploys: the GitHub workflow run when inside Actions, else the caller's identity."""
        if os.environ.get("GITHUB_ACTIONS") == "true":
            run = f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/" \
                  f"{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{os.environ.get('GITHUB_RUN_ID', '')}"
            return f"{os.environ.get('GITHUB_ACTOR', 'github-actions')} via {run}"
        return self.identity()["arn"]

    def require_account(self, account: str, env: str) -> None:
        """Refuse to act on an environment with credentials of another account."""
        actual = self.identity()["account"]
        if actual != account:
            raise fail("PC605", f"the credentials are for AWS account {actual}, but environment \"{env}\" is in "
                       f"account {account}", hint=f"use credentials of account {account} (e.g. assume the "
                       f"environment's deploy role)")


def code_of(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def message_of(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")) or str(exc)


class errors:  # noqa: N801 - used like a function: `with errors("reading x"):`
    """Turn botocore's exceptions into one PipecError with a hint (exit code 4). (A class, not a generator:
    mutation testing skips decorated functions.)"""

    def __init__(self, what: str = "") -> None:
        self.prefix = f"{what}: " if what else ""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        """Never swallows: a botocore failure leaves as its PipecError, anything else as itself."""
        if exc is None or isinstance(exc, PipecError) or not isinstance(exc, Exception):
            return
        found = translate(exc, self.prefix)
        if found is not None:
            raise found from None


def translate(exc: Exception, prefix: str) -> PipecError | None:
    """The PipecError a botocore exception means, or None for anything else (it is a bug, reported as one)."""
    from botocore import exceptions

    if isinstance(exc, (exceptions.NoCredentialsError, exceptions.PartialCredentialsError)):
        return fail("PC601", "no AWS credentials were found", hint="sign in (e.g. `aws sso login`), export "
                    "AWS_PROFILE, or run inside the GitHub workflow, which assumes the deploy role")
    if isinstance(exc, exceptions.TokenRetrievalError):
        return fail("PC601", "the AWS session has expired", hint="sign in again (e.g. `aws sso login`)")
    if isinstance(exc, (exceptions.EndpointConnectionError, exceptions.ConnectTimeoutError,
                        exceptions.ReadTimeoutError)):
        return fail("PC616", f"{prefix}cannot reach AWS: {exc}", hint="check the network, the region, and "
                    "AWS_ENDPOINT_URL if it is set")
    if isinstance(exc, exceptions.ClientError):
        return client_error(exc, prefix)
    return None


def client_error(exc: Exception, prefix: str = "") -> PipecError:
    code, message = code_of(exc), message_of(exc)
    if code in _CREDENTIALS:
        return fail("PC601", f"{prefix}the AWS credentials are expired or invalid ({code})",
                    hint="sign in again, or re-run the workflow job to get fresh credentials")
    if code in _THROTTLED:
        return fail("PC608", f"{prefix}AWS is throttling the requests ({code}), even after retries",
                    hint="wait a minute and run the command again")
    if code in _DENIED:
        return fail("PC602", f"{prefix}access denied: {message}",
                    hint="the role needs this permission; the bootstrap stack defines what the deploy role may do")
    return fail("PC602", f"{prefix}AWS refused the request: {code}: {message}")


def utc_now() -> str:
    """The time of a deployment or release record: UTC, milliseconds, ISO 8601 with Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
