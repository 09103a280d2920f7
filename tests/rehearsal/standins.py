"""The rehearsal's stand-ins for what a GitHub runner has and the team's repository runs, one subcommand each.

Run as `$REHEARSAL_PYTHON standins.py <name> [args]` by the stand-in actions (actions/) and commands (bin/).
Each appends what it was asked to `$REHEARSAL_LOG` (one JSON object per line), so the rehearsal can tell what
the workflows did, and fails as the real thing would when what it receives is wrong.

- checkout: clones the commit under test from the rehearsal's origin repository, to the depth asked.
- setup-python: a fresh interpreter for the job (a copy of the rehearsal's base environment, which holds
  pipec's locked dependencies but not pipec), first on PATH.
- assume: what aws-actions/configure-aws-credentials does through GitHub's OIDC: credentials of the role named,
  from moto's STS, for the role's own account (the role must exist there), and AWS_ENDPOINT_URL at moto.
- docker: build records the image (its digest made from the context's files), login checks the password
  ECR gave, push puts the image into moto's ECR with the job's credentials (an immutable tag stays refused).
- gh: `gh api` reads a tag of the origin repository (404 when missing) or creates one (GitHub refuses an
  existing one with 422).
- check: the team's e2e and sanity commands: BASE_URL is the environment's URL, and every service stack there
  runs EXPECTED_VERSION. `REHEARSAL_FAIL_CHECKS=<env>` makes them fail in that environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any, NoReturn


def _log(tool: str, **fields: Any) -> None:
    record = {"tool": tool, "job": os.environ.get("GITHUB_JOB", ""), "workflow": os.environ.get("GITHUB_WORKFLOW", ""),
              **fields}
    with open(os.environ["REHEARSAL_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(record, sort_keys=True) + "\n")


def _fail(tool: str, message: str, **fields: Any) -> NoReturn:
    _log(tool, **fields, failed=message)
    print(f"{tool}: {message}", file=sys.stderr)
    sys.exit(1)


def _git(*args: str, cwd: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def checkout() -> None:
    workspace, origin, sha = os.environ["GITHUB_WORKSPACE"], os.environ["REHEARSAL_ORIGIN"], os.environ["GITHUB_SHA"]
    depth, persist = os.environ.get("FETCH_DEPTH", "1"), os.environ.get("PERSIST_CREDENTIALS", "true")
    _log("checkout", sha=sha, fetch_depth=depth, persist_credentials=persist)
    Path(workspace).mkdir(parents=True, exist_ok=True)
    _git("init", "-q", workspace)
    _git("remote", "add", "origin", f"file://{origin}", cwd=workspace)
    if depth == "0":  # all history, every branch and tag (what `pipec version next` and `diff --against` read)
        _git("fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*",
             cwd=workspace)
    else:
        _git("fetch", "-q", "--no-tags", f"--depth={depth}", "origin", sha, cwd=workspace)
    _git("checkout", "-q", "--detach", sha, cwd=workspace)


def setup_python() -> None:
    wanted = os.environ.get("PYTHON_VERSION", "")
    python = Path(os.environ["RUNNER_TEMP"]) / "python"
    if python.exists():
        shutil.rmtree(python)
    # Hard links: a job's pip adds pipec and never rewrites what the base holds.
    subprocess.run(["cp", "-al", os.environ["REHEARSAL_BASE_PYTHON"], str(python)], check=True)
    with open(os.environ["GITHUB_PATH"], "a", encoding="utf-8") as path:
        path.write(f"{python / 'bin'}\n")
    with open(os.environ["GITHUB_ENV"], "a", encoding="utf-8") as env:
        env.write(f"pythonLocation={python}\n")
    _log("setup-python", asked=wanted, given=".".join(map(str, sys.version_info[:2])))


def _admin(account: str) -> Any:
    import boto3

    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=os.environ["REHEARSAL_MOTO"],
                       aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal")
    found = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/admin", RoleSessionName="rehearsal")["Credentials"]
    return boto3.session.Session(aws_access_key_id=found["AccessKeyId"], aws_secret_access_key=found["SecretAccessKey"],
                                 aws_session_token=found["SessionToken"])


def assume() -> None:
    import boto3

    role, region = os.environ.get("ROLE_TO_ASSUME", ""), os.environ.get("AWS_REGION_INPUT", "")
    duration = int(os.environ.get("DURATION_INPUT") or 3600)
    subject = _subject()
    _log("assume", role=role, region=region, duration=duration, subject=subject)
    found = re.fullmatch(r"arn:aws:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)", role)
    if found is None or not region:
        _fail("assume", f"role-to-assume {role!r} is not a role ARN, or aws-region is empty")
    account, name = found.groups()
    iam = _admin(account).client("iam", endpoint_url=os.environ["REHEARSAL_MOTO"], region_name=region)
    try:
        found_role = iam.get_role(RoleName=name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        _fail("assume", f"Could not assume role with OIDC: {role} does not exist in account {account}")
    # STS evaluates the trust policy against the token (moto does not): GitHub as issuer, the audience, the subject
    if not _trusts(found_role["AssumeRolePolicyDocument"], subject):
        _fail("assume", f"Not authorized to perform sts:AssumeRoleWithWebIdentity: {role} does not trust {subject}")
    # STS refuses a session longer than the role's MaxSessionDuration (moto does not check it)
    if duration > int(found_role.get("MaxSessionDuration", 3600)):
        _fail("assume", f"The requested DurationSeconds exceeds the MaxSessionDuration set for this role: {role}")
    sts = boto3.client("sts", region_name=region, endpoint_url=os.environ["REHEARSAL_MOTO"],
                       aws_access_key_id="oidc", aws_secret_access_key="oidc")
    credentials = sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName="GitHubActions",
                                                    WebIdentityToken="rehearsal",
                                                    DurationSeconds=duration)["Credentials"]
    with open(os.environ["GITHUB_ENV"], "a", encoding="utf-8") as env:
        for key, value in (("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"]),
                           ("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"]),
                           ("AWS_SESSION_TOKEN", credentials["SessionToken"]), ("AWS_REGION", region),
                           ("AWS_DEFAULT_REGION", region), ("AWS_ENDPOINT_URL", os.environ["REHEARSAL_MOTO"])):
            env.write(f"{key}={value}\n")


def _subject() -> str:
    """The `sub` GitHub gives this job's OIDC token (GitHub's OIDC documentation): its environment's when it has
    one, else the event's: a pull request, or the ref, which for a schedule is the default branch's."""
    repository = os.environ["GITHUB_REPOSITORY"]
    environment = json.loads(os.environ.get("REHEARSAL_JOB_ENVIRONMENTS", "{}")).get(os.environ.get("GITHUB_JOB", ""))
    if environment:
        return f"repo:{repository}:environment:{environment}"
    event = os.environ.get("GITHUB_EVENT_NAME", "")
    if event.startswith("pull_request"):
        return f"repo:{repository}:pull_request"
    ref = f"refs/heads/{os.environ['REHEARSAL_DEFAULT_BRANCH']}" if event == "schedule" else os.environ["GITHUB_REF"]
    return f"repo:{repository}:ref:{ref}"


def _trusts(policy: Any, subject: str) -> bool:
    """Whether a trust policy lets a GitHub OIDC token with this subject (and audience sts.amazonaws.com) in."""
    if isinstance(policy, str):
        policy = json.loads(urllib.parse.unquote(policy))
    for statement in policy.get("Statement", []):
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else actions or []
        federated = str((statement.get("Principal") or {}).get("Federated", ""))
        if statement.get("Effect") != "Allow" or "sts:AssumeRoleWithWebIdentity" not in actions or not \
                federated.endswith("oidc-provider/token.actions.githubusercontent.com"):
            continue
        equals = (statement.get("Condition") or {}).get("StringEquals") or {}
        subjects = equals.get("token.actions.githubusercontent.com:sub")
        subjects = [subjects] if isinstance(subjects, str) else subjects or []
        if equals.get("token.actions.githubusercontent.com:aud") == "sts.amazonaws.com" and subject in subjects:
            return True
    return False


def _state(name: str) -> Path:
    """Per job, as a runner's Docker daemon is."""
    return Path(os.environ["RUNNER_TEMP"]) / "docker" / name


def docker(args: list[str]) -> None:
    if args[:1] == ["build"]:
        options, context = args[1:-1], args[-1]
        tag = options[options.index("--tag") + 1]
        dockerfile = options[options.index("--file") + 1]
        platform = options[options.index("--platform") + 1]
        if not Path(dockerfile).is_file() or not Path(context).is_dir():
            _fail("docker", f"build: no {dockerfile} or no context {context}")
        content = hashlib.sha256(platform.encode())
        for path in sorted(p for p in Path(context).rglob("*") if p.is_file()):
            content.update(path.as_posix().encode() + path.read_bytes())
        _log("docker", command="build", tag=tag, platform=platform, context=context,
             credentials="AWS_ACCESS_KEY_ID" in os.environ)
        image = _state("images") / hashlib.sha256(tag.encode()).hexdigest()
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_text(json.dumps({"tag": tag, "content": content.hexdigest()}))
    elif args[:1] == ["login"]:
        registry = args[-1]
        if "--password-stdin" not in args or not sys.stdin.read().strip():
            _fail("docker", f"login {registry}: no password on stdin")
        _state("logins").mkdir(parents=True, exist_ok=True)
        (_state("logins") / registry).touch()
        _log("docker", command="login", registry=registry)
        print("Login Succeeded")
    elif args[:1] == ["push"]:
        _push(args[1])
    else:
        _fail("docker", f"the rehearsal's docker does not do {args}")


def _push(reference: str) -> None:
    import boto3

    registry, _, rest = reference.partition("/")
    repository, _, tag = rest.rpartition(":")
    host = re.fullmatch(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com", registry)
    image = _state("images") / hashlib.sha256(reference.encode()).hexdigest()
    if host is None:
        _fail("docker", f"push {reference}: not an ECR registry")
    if not image.exists():
        _fail("docker", f"push {reference}: An image does not exist locally with the tag: {reference}")
    if not (_state("logins") / registry).exists():
        _fail("docker", f"push {reference}: no basic auth credentials (docker login {registry} first)")
    content = json.loads(image.read_text())["content"]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"digest": f"sha256:{content}"},
                           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1,
                                       "digest": f"sha256:{hashlib.sha256(content.encode()).hexdigest()}"}]})
    ecr = boto3.client("ecr", region_name=host[2])  # the job's own credentials and endpoint
    try:
        pushed = ecr.put_image(registryId=host[1], repositoryName=repository, imageManifest=manifest,
                               imageTag=tag)
    except ecr.exceptions.ClientError as error:
        _fail("docker", f"push {reference}: {error}")
    digest = pushed["image"]["imageId"]["imageDigest"]
    _log("docker", command="push", reference=reference, digest=digest)
    print(f"{tag}: digest: {digest} size: 1")


def gh(args: list[str]) -> None:
    """`gh api` for the two calls the release workflow makes: read a tag (GET .../git/ref/tags/T, 404 when
    missing) and create one (POST .../git/refs, 422 when it exists), against the origin repository."""
    if not os.environ.get("GH_TOKEN"):
        _fail("gh", "gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable")
    found = re.fullmatch(r"repos/([^/]+/[^/]+)/git/(refs|ref/tags/(.+))", args[1]) if args[:1] == ["api"] else None
    if found is None:
        _fail("gh", f"the rehearsal's gh does not do {args}")
    if found[1] != os.environ["GITHUB_REPOSITORY"]:
        _fail("gh", f"HTTP 404: Not Found ({args[1]})")
    origin = os.environ["REHEARSAL_ORIGIN"]

    def sha_of(ref: str) -> str | None:
        done = subprocess.run(["git", "rev-parse", "-q", "--verify", ref], cwd=origin, capture_output=True,
                              text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    if found[3] is not None:  # read a tag
        sha = sha_of(f"refs/tags/{found[3]}")
        _log("gh", read=f"refs/tags/{found[3]}", found=sha)
        if sha is None:
            _fail("gh", "gh: Not Found (HTTP 404)")
        print(sha if args[2:] == ["--jq", ".object.sha"] else json.dumps({"object": {"sha": sha}}))
        return
    fields = dict(arg.split("=", 1) for arg in args[2:] if arg != "-f")
    ref, sha = fields["ref"], fields["sha"]
    if sha_of(ref) is not None:
        _fail("gh", f"HTTP 422: Reference already exists ({ref})")
    _git("update-ref", ref, sha, cwd=origin)
    _log("gh", ref=ref, sha=sha)
    print(json.dumps({"ref": ref, "object": {"sha": sha, "type": "commit"}}))


def check(tool: str, args: list[str]) -> None:
    env, region = os.environ.get("PIPEC_ENV", ""), os.environ.get("PIPEC_REGION", "")
    expected, base_url = os.environ.get("EXPECTED_VERSION", ""), os.environ.get("BASE_URL", "")
    record = {"command": args, "env": env, "region": region, "expected_version": expected, "base_url": base_url,
              "credentials": "AWS_ACCESS_KEY_ID" in os.environ}
    if args == ["ci"]:  # installing the checks' own dependencies
        _log(tool, **record)
        return
    urls = json.loads(os.environ["REHEARSAL_URLS"])
    if urls.get(f"{env}/{region}") != base_url:
        _fail(tool, f"BASE_URL {base_url!r} is not the URL of {env} in {region}", **record)
    account = json.loads(os.environ["REHEARSAL_ACCOUNTS"])[env]
    cloudformation = _admin(account).client("cloudformation", region_name=region,
                                            endpoint_url=os.environ["REHEARSAL_MOTO"])
    prefix = f"{os.environ['REHEARSAL_PROJECT']}-{env}-"
    running = {stack["StackName"]: {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
               .get("Version") for stack in cloudformation.describe_stacks()["Stacks"]
               if stack["StackName"].startswith(prefix)  # the service stacks: pipec tags each with its service
               and "pipec:service" in {t["Key"] for t in stack.get("Tags", [])}}
    record["running"] = running
    if not running or set(running.values()) != {expected}:
        _fail(tool, f"{env} {region} runs {running}, not EXPECTED_VERSION {expected!r}", **record)
    if os.environ.get("REHEARSAL_FAIL_CHECKS") == env:
        _fail(tool, f"the checks fail on {env} (REHEARSAL_FAIL_CHECKS)", **record)
    _log(tool, **record)


def main(argv: list[str]) -> None:
    name, args = argv[0], argv[1:]
    if name == "checkout":
        checkout()
    elif name == "setup-python":
        setup_python()
    elif name == "assume":
        assume()
    elif name == "docker":
        docker(args)
    elif name == "gh":
        gh(args)
    elif name in ("npm", "pytest"):
        check(name, args)
    else:
        _fail(name, "no such stand-in")


if __name__ == "__main__":
    main(sys.argv[1:])
