"""Validate stage: what pipec promises every service at run time, which a spec's own names must leave free: the
variables pipec sets itself, and the placeholders a spec may write in references and URLs.

The rules check a spec against it; the plan and the templates use the same names.
"""

from __future__ import annotations

VERSION_VARIABLE = "APP_VERSION"  # the release version running
ENVIRONMENT_VARIABLE = "PIPEC_ENVIRONMENT"  # the environment's name
# What every OpenTelemetry SDK (and the AWS Distro for OpenTelemetry) puts on each span, metric and log record it
# makes: the service, the release running and the environment.
TELEMETRY_VARIABLE = "OTEL_RESOURCE_ATTRIBUTES"


def telemetry(service: str, version: str, env: str) -> str:
    """The OpenTelemetry resource attributes of a service (semantic conventions' names)."""
    return f"service.name={service},service.version={version},deployment.environment.name={env}"

# Placeholders, by where they may appear.
SECRET_PLACEHOLDERS = ("env", "region", "account", "project", "service")
URL_PLACEHOLDERS = ("env", "region")


def secret_variable(key: str) -> str:
    """The Lambda variable that carries a secret's reference (the code reads the value itself, at start-up)."""
    return f"{key}_SECRET_REF"


def fill(text: str, **values: str) -> str:
    """A spec value with its placeholders ({env}, {region}, {account}, {project}, {service}) replaced."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text
