"""`pipec logs`: one release's logs of a service, as one CloudWatch Logs Insights query per region, run or printed
for the console.

A release's logs are told apart by their log streams: an ECS task writes to <version>/<container>/<task id> (the
task definition's stream prefix is the stack's Version parameter), and a function to YYYY/MM/DD/[<n>]<id>, where
<n> is the function version it ran, published with the description "release <version>" (a rollback publishes
another one for the same release, so a release may have several).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from pipec.aws import ledger, targets
from pipec.aws.session import Aws, errors
from pipec.diagnostics import fail
from pipec.plan import names
from pipec.plan.model import Plan, ServicePlan, Target

DONE = ("Complete", "Failed", "Cancelled", "Timeout", "Unknown")


@dataclass(frozen=True)
class Query:
    region: str
    log_group: str
    version: str
    text: str  # the Logs Insights query


def queries(aws: Aws, plan: Plan, env_name: str, service_name: str, region: str | None, version: str | None,
            limit: int) -> list[Query]:
    """The query of each region: of the version named, or of the one running there (from the ledger)."""
    env = targets.environment(plan, env_name)
    regions = targets.regions(env, region)
    service = targets.services(plan, service_name)[0]
    if version is not None:
        targets.version(version)
    aws.require_account(env.account, env.name)
    found = []
    for name in regions:
        target = Target(env.name, name, env.account)
        wanted = version or _running(aws, service, target)
        numbers = _function_versions(aws, service, target, wanted) if service.kind == "lambda" else ()
        pattern = names.release_streams(service.kind, wanted, numbers)
        found.append(Query(name, service.log_group_in(env.name), wanted, names.logs_query(pattern, limit)))
    return found


def _running(aws: Aws, service: ServicePlan, target: Target) -> str:
    entry = ledger.current(aws, service, target)
    if entry is None:
        raise fail("PC624", f"{service.name} was never deployed to {target.env} {target.region}, so it has no "
                   "release's logs there", hint="name a release with --version, or deploy one first")
    return entry.version


def _function_versions(aws: Aws, service: ServicePlan, target: Target, version: str) -> tuple[str, ...]:
    """The function versions published for a release (their description says "release <version>")."""
    lam = aws.client("lambda", target.region)
    function = service.resource_in(target.env)
    numbers = []
    with errors(f"reading the versions of function {function}"):
        for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=function):
            numbers += [v["Version"] for v in page["Versions"] if v.get("Description") == f"release {version}"]
    if not numbers:
        raise fail("PC624", f"no version of function {function} in {target.region} was published for release "
                   f"{version}, so none of its logs are that release's",
                   hint=f"`pipec history --env {target.env} --service {service.name}` lists the releases that ran "
                        "there")
    return tuple(sorted(numbers, key=int))


def run(aws: Aws, found: Query, since_seconds: int, poll: float = 1.0) -> Iterator[str]:
    """Run one query over the last since_seconds and yield its rows as lines (time, stream, message)."""
    logs = aws.client("logs", found.region)
    end = int(time.time()) + 1  # whole seconds: the current one included
    with errors(f"querying log group {found.log_group} in {found.region}"):
        query_id = logs.start_query(logGroupName=found.log_group, startTime=end - since_seconds, endTime=end,
                                    queryString=found.text)["queryId"]
        while True:
            result = logs.get_query_results(queryId=query_id)
            if result["status"] in DONE:
                break
            time.sleep(poll)
    if result["status"] != "Complete":
        raise fail("PC624", f"the query of {found.log_group} in {found.region} ended {result['status']}",
                   hint="run it again, or with a shorter --since")
    for row in result["results"]:
        fields = {f["field"]: f.get("value", "") for f in row}
        yield "  ".join([fields.get("@timestamp", ""), fields.get("@logStream", ""),
                         fields.get("@message", "").rstrip("\n")])
