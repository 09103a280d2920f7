"""The version ledger: one SSM parameter per environment, region and service; its history is the deployments.

Each value is a JSON record (version, commit, digest, time, actor, action, a break-glass deploy's reason, and
the sha256 of the release's record as it was deployed, which a later rollback to that version checks: the
environment's own ledger is out of reach of whoever can write the release bucket). SSM keeps the last 100
versions of a parameter, so `pipec history` shows the last 100 deployments of a service in a region.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from pipec.aws.session import Aws, code_of, errors
from pipec.plan.model import ServicePlan, Target

_OPTIONAL = ("record", "reason")  # stored only when set
_STORED = ("version", "commit", "digest", "at", "by", "action", "record", "reason")  # the fields a ledger value holds


@dataclass(frozen=True)
class Entry:
    version: str
    commit: str
    digest: str
    at: str
    by: str
    action: str  # deploy | rollback
    env: str = ""
    region: str = ""
    service: str = ""
    record: str = ""  # the sha256 of the release's record (release.json) as it was deployed
    reason: str = ""  # why it went ahead without a check it would have passed (a break-glass deploy)

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(self).items() if k in _STORED and (k not in _OPTIONAL or v)}
        return json.dumps(record, sort_keys=True)


def record(aws: Aws, service: ServicePlan, target: Target, entry: Entry) -> None:
    """Append a deployment to the ledger (a new version of the parameter)."""
    name = service.ledger_for(target.env)
    with errors(f"recording the deployment in {name}"):
        aws.client("ssm", target.region).put_parameter(
            Name=name, Value=entry.to_json(), Type="String", Overwrite=True, Tier="Standard",
            Description=f"pipec deployment ledger of {service.name} in {target.env}")


def current(aws: Aws, service: ServicePlan, target: Target) -> Entry | None:
    """The deployment in effect, or None when the service was never deployed there."""
    entries = _read(aws, service, target, latest_only=True)
    return entries[0] if entries else None


def history(aws: Aws, service: ServicePlan, target: Target) -> list[Entry]:
    """Every recorded deployment, newest first."""
    return _read(aws, service, target, latest_only=False)


def _read(aws: Aws, service: ServicePlan, target: Target, *, latest_only: bool) -> list[Entry]:
    from botocore.exceptions import ClientError

    name = service.ledger_for(target.env)
    client = aws.client("ssm", target.region)
    found: list[dict[str, Any]] = []
    with errors(f"reading {name}"):
        try:
            if latest_only:
                found = [client.get_parameter(Name=name)["Parameter"]]
            else:
                for page in client.get_paginator("get_parameter_history").paginate(Name=name):
                    found += page["Parameters"]
        except ClientError as exc:
            if code_of(exc) != "ParameterNotFound":
                raise
            return []
    found.sort(key=lambda p: int(p["Version"]), reverse=True)
    return [_entry(p["Value"], service, target) for p in found]


def _entry(value: str, service: ServicePlan, target: Target) -> Entry:
    try:
        data = json.loads(value)
        fields = {k: str(data.get(k, "")) for k in _STORED}
    except (ValueError, AttributeError):  # a value written by hand: its text is the version
        fields = dict.fromkeys(_STORED, "") | {"version": value, "action": "unknown"}
    return Entry(**fields, env=target.env, region=target.region, service=service.name)
