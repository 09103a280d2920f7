"""Tell the team's channel what the pipeline does (`pipec notify`): a release waits for approval, is deployed,
fails, is rolled back (automatically or by hand); a sanity check fails or recovers.

Each message is a Slack-compatible incoming-webhook body: `text` for people (version, environment, regions, what
failed, the exact rollback command and the run's link) and `pipec` with the same facts for machines. The
webhook's URL comes from PIPEC_WEBHOOK_URL (the workflows set it from the GitHub secret pipeline.yaml names, in the
one step that sends) and is never printed. A sanity check tells the channel only when its outcome changes (the
previous run's job of the same environment and region, read through GitHub's API), and with `sanity_issues` keeps
one GitHub issue open per environment and region while it fails.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipec.diagnostics import fail
from pipec.plan import names
from pipec.plan.model import EnvironmentPlan, Plan
from pipec.release import github

WEBHOOK_VARIABLE = "PIPEC_WEBHOOK_URL"
ATTEMPTS = 3
TIMEOUT_SECONDS = 10
_LOOPBACK = ("127.0.0.1", "localhost", "::1")  # plain http only to these: the tests' stand-ins
_EMOJI = {"waiting": ":hourglass:", "deployed": ":white_check_mark:", "failed": ":x:", "rolled-back": ":rewind:",
          "sanity-failed": ":rotating_light:", "sanity-recovered": ":large_green_circle:"}

Out = Callable[[str], None]


@dataclass(frozen=True)
class Event:
    kind: str  # waiting | deployed | failed | rolled-back | sanity-failed | sanity-recovered
    env: str
    regions: tuple[str, ...]
    version: str
    what: str = ""  # what failed, or why it was rolled back


def notify(plan: Plan, kind: str, env: EnvironmentPlan, regions: tuple[str, ...], version: str, what: str,
           outcome: str, out: Out) -> None:
    """Send one event to the channel (the CLI checked the environment, regions and version); `sanity` first reads
    whether the outcome changed, and keeps the issue."""
    if kind != "sanity":
        send(plan, Event(kind, env.name, regions, version, what.strip()), out)
        return
    if len(regions) != 1:
        raise fail("PC402", "a sanity check's outcome is of one region: pass --region",
                   hint=f"one of: {', '.join(env.regions)}")
    event = sanity(plan, env, regions[0], version, outcome, out)
    if event is not None:
        send(plan, event, out)


def message(plan: Plan, event: Event, run: str) -> dict[str, Any]:
    """The webhook body of an event."""
    where = f"{event.env} ({', '.join(event.regions)})"
    version = event.version or "an unknown version"
    command = rollback_command(plan, event.env)
    lines = {
        "waiting": f"{plan.project} {version} waits for approval to deploy to {where}: read the plan in the run, "
                   "then approve or reject it.",
        "deployed": f"{plan.project} {version} is deployed to {where} and passed its checks.",
        "failed": f"{plan.project} {version} failed in {where}: {event.what or 'see the run'}.",
        "rolled-back": f"{plan.project} {where} was rolled back to {version}: {event.what or 'by hand'}.",
        "sanity-failed": f"{plan.project} sanity checks fail on {where}, which runs {version}.",
        "sanity-recovered": f"{plan.project} sanity checks pass again on {where}, which runs {version}.",
    }
    text = [f"{_EMOJI[event.kind]} {lines[event.kind]}"]
    if event.kind in ("failed", "sanity-failed", "deployed"):
        text.append(f"Roll back: `{command}` (or {rollback_link(plan)})")
    if run:
        text.append(f"Run: {run}")
    facts = {"event": event.kind, "project": plan.project, "environment": event.env, "regions": list(event.regions),
             "version": event.version, "what": event.what, "rollback": command, "run": run}
    return {"text": "\n".join(text), "pipec": facts}


def rollback_command(plan: Plan, env: str) -> str:
    return (f"gh workflow run {names.ROLLBACK_WORKFLOW} --ref {plan.branch} -f environment={env} -f service=all "
            "-f version=previous")


def rollback_link(plan: Plan) -> str:
    server = os.environ.get("GITHUB_SERVER_URL") or "https://github.com"
    return f"{server}/{plan.repository}/actions/workflows/{names.ROLLBACK_WORKFLOW}"


def send(plan: Plan, event: Event, out: Out) -> None:
    """POST the event to the webhook, up to three times while it answers 429 or 5xx or cannot be reached."""
    if plan.webhook is None:
        out("pipec: pipeline.yaml names no webhook (alerts.webhook); nothing sent")
        return
    url = os.environ.get(WEBHOOK_VARIABLE, "").strip()
    secret = f"the webhook (GitHub secret {plan.webhook})"
    if not url:
        raise fail("PC706", f"{secret} is empty here: {WEBHOOK_VARIABLE} is not set, so the channel was not told "
                   f"{event.kind} {event.env}",
                   hint=f"Settings -> Secrets and variables -> Actions: add {plan.webhook} with the webhook's URL")
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)):
        raise fail("PC706", f"{secret} is not an https URL; nothing sent",
                   hint=f"set {plan.webhook} to the https URL the chat service gave the incoming webhook")
    body = json.dumps(message(plan, event, github.this_run()), sort_keys=True).encode("utf-8")
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "pipec"})
        retry_after = 0.0
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS):
                out(f"pipec: told the channel: {event.kind} {event.env} ({', '.join(event.regions)})"
                    f"{' ' + event.version if event.version else ''}")
                return
        except urllib.error.HTTPError as error:
            problem = f"answered {error.code}"
            if error.code != 429 and error.code < 500:
                break
            retry_after = _seconds(error.headers.get("Retry-After"))
        except (urllib.error.URLError, OSError) as error:
            problem = f"could not be reached ({type(getattr(error, 'reason', error)).__name__})"
        if attempt < ATTEMPTS:
            time.sleep(retry_after or 0.5 * attempt)
    raise fail("PC706", f"{secret} {problem}; the channel was not told {event.kind} {event.env}",
               hint="check the secret's URL and the chat service's status; the release itself is not affected")


def sanity(plan: Plan, env: EnvironmentPlan, region: str, version: str, outcome: str, out: Out) -> Event | None:
    """The event a sanity outcome makes (a failure after a pass or none, a pass after a failure), after keeping the
    environment's issue when the spec asks for one; None when nothing changed."""
    if outcome == "cancelled":
        out(f"pipec: the sanity check of {env.name} ({region}) was cancelled; nothing to tell")
        return None
    failing = outcome == "failure"
    client = github.Client(plan.repository, "actions: read, issues: write" if plan.sanity_issues else "actions: read",
                           "read the sanity workflow's runs" + (" and keep its issues" if plan.sanity_issues else ""))
    before = previous_outcome(client, env.name, region)
    if plan.sanity_issues:
        _keep_issue(client, plan, env.name, region, version, failing, out)
    if failing and before != "failure":
        return Event("sanity-failed", env.name, (region,), version, "sanity checks failed")
    if not failing and before == "failure":
        return Event("sanity-recovered", env.name, (region,), version, "sanity checks pass again")
    out(f"pipec: the sanity check of {env.name} ({region}) is still {'failing' if failing else 'passing'}; "
        "nothing to tell")
    return None


def previous_outcome(client: github.Client, env: str, region: str, runs: int = 10) -> str:
    """success or failure: how the same environment and region's sanity job ended in the newest earlier completed
    run of the sanity workflow (cancelled or skipped runs are passed over); "" when none says."""
    job_name = names.sanity_check_name(env, region)
    this = os.environ.get("GITHUB_RUN_ID", "")
    listing = client.get(f"actions/workflows/{names.SANITY_WORKFLOW}/runs?status=completed&per_page={runs}") or {}
    for run in listing.get("workflow_runs") or []:
        if str(run.get("id")) == this:
            continue
        jobs = client.get(f"actions/runs/{run.get('id')}/jobs?filter=latest&per_page=100") or {}
        for job in jobs.get("jobs") or []:
            if job.get("name") == job_name and job.get("conclusion") in ("success", "failure"):
                return str(job["conclusion"])
    return ""


def _keep_issue(client: github.Client, plan: Plan, env: str, region: str, version: str, failing: bool,
                out: Out) -> None:
    """Open (or comment on) the one issue of a failing environment and region; close it when it passes again."""
    title = names.sanity_issue_title(plan.project, env, region)
    listing = client.get("issues?state=open&per_page=100", listing=True) or {}
    found = next((i for i in listing.get("items") or [] if i.get("title") == title and "pull_request" not in i
                  and (i.get("user") or {}).get("type") == "Bot"), None)
    run = github.this_run() or "(run link unknown)"
    running = version or "an unknown version"
    if failing and found is None:
        body = (f"The scheduled sanity checks fail on {env} ({region}), which runs {running}.\n\n"
                f"Run: {run}\n\nTo roll back: `{rollback_command(plan, env)}`\n\n"
                "pipec closes this issue when the checks pass again.")
        made = client.send("POST", "issues", {"title": title, "body": body}) or {}
        out(f"pipec: opened issue #{made.get('number', '?')}: {title}")
    elif failing and found is not None:
        client.send("POST", f"issues/{found['number']}/comments",
                    {"body": f"Still failing on {env} ({region}), which runs {running}: {run}"})
        out(f"pipec: commented on issue #{found['number']}: still failing")
    elif found is not None:
        client.send("POST", f"issues/{found['number']}/comments",
                    {"body": f"The sanity checks pass again on {env} ({region}), which runs {running}: {run}"})
        client.send("PATCH", f"issues/{found['number']}", {"state": "closed", "state_reason": "completed"})
        out(f"pipec: closed issue #{found['number']}: the checks pass again")


def _seconds(header: str | None) -> float:
    try:
        return min(5.0, max(0.0, float(header or 0)))
    except ValueError:
        return 0.0
