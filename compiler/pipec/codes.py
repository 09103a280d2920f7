"""Every diagnostic code, registered once: its stage, its exit code, what it means, an example and the fix.

A code names one situation and always exits the same way; `pipec explain CODE` prints its entry and `pipec
explain` lists them all. Depends on nothing else in pipec, so every stage can raise by code.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class ExitCode(IntEnum):
    """Exit codes of every pipec command, listed in `pipec --help`."""

    OK = 0
    SPEC = 1
    USAGE = 2
    STALE = 3
    AWS = 4
    INTERNAL = 70
    INTERRUPTED = 130


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 the spec or the request is wrong (or the output's reader went away, as in "
    "`pipec schema | head -1`); 2 usage; "
    "3 `check` found generated files out of date; 4 AWS or GitHub refused or failed; "
    "70 internal error (a bug in pipec); 130 interrupted."
)


class Code(NamedTuple):
    """One situation a user can meet."""

    code: str
    stage: str
    exit: ExitCode
    title: str
    example: str
    fix: str


_SPEC, _AWS, _BUG = ExitCode.SPEC, ExitCode.AWS, ExitCode.INTERNAL
_ENTRIES = [
    # load: reading the file and strict YAML
    Code("PC001", "load", _SPEC, "the spec file cannot be read (missing, a directory, no permission)",
         "pipec validate pipelin.yaml", "pass the path of an existing, readable pipeline.yaml, or run `pipec init`"),
    Code("PC002", "load", _SPEC, "the spec file is larger than pipec accepts (2 MiB)",
         "pipec validate build.log", "a pipeline spec is a few kilobytes: check that this is the right file"),
    Code("PC003", "load", _SPEC, "the spec file is not valid UTF-8", "a spec saved as Latin-1 with an accented name",
         "save the file as UTF-8"),
    Code("PC004", "load", _SPEC, "the spec file contains binary data or a control character",
         "an invisible U+0007 pasted into a value", "delete the character; a spec is plain text"),
    Code("PC005", "load", _SPEC, "the spec is not valid YAML", 'run: echo a: b   (an unquoted ": " in a value)',
         "fix the syntax at the position shown; quote values that contain \": \""),
    Code("PC006", "load", _SPEC, "a tab character is used for indentation", "\tproject: acme",
         "indent with spaces"),
    Code("PC007", "load", _SPEC, "a quoted string is not terminated", 'run: "npm test', "add the closing quote"),
    Code("PC008", "load", _SPEC, "a key appears twice in the same mapping", "port: 80 ... port: 8080",
         "keep one of the two; YAML would silently keep the last"),
    Code("PC009", "load", _SPEC, "aliases expand too far, refer to themselves, or have no anchor",
         "a 'billion laughs' file of nested aliases", "write the values out"),
    Code("PC010", "load", _SPEC, "the spec nests deeper than 64 levels", "[[[[[[...]]]]]]",
         "a spec is a few levels deep: check that this is the right file"),
    Code("PC011", "load", _SPEC, "a YAML tag is used (pipeline.yaml takes plain values only)", "port: !Ref Port",
         "remove the tag; pipec writes the CloudFormation itself"),
    Code("PC012", "load", _SPEC, "the file holds more than one YAML document", "a second document after ---",
         "keep one document"),
    Code("PC013", "load", _SPEC, "the spec file is empty", "an empty pipeline.yaml",
         "run `pipec init` for a commented starter spec"),
    Code("PC014", "load", _SPEC, "the top of the spec is not a mapping", "- project: acme", "start with keys"),
    Code("PC015", "load", _SPEC, "a key is a list or mapping instead of text", "[a, b]: 1", "use a plain key"),
    Code("PC016", "load", _SPEC, "a merge key (<<) is used", "<<: *defaults", "write the keys out"),
    Code("PC017", "load", _SPEC, "a number is longer than pipec reads (100 characters)", "timeout: 1000...0 "
         "(5,000 digits)", "write the number the setting needs, or quote the value if it is text"),
    # validate: the schema
    Code("PC101", "validate", _SPEC, "unknown key (with a did-you-mean when one is close)", "artefacts: ...",
         "use the key the hint names; `pipec schema` lists them all"),
    Code("PC102", "validate", _SPEC, "a required key is missing", "a service without kind:", "add the key"),
    Code("PC103", "validate", _SPEC, "a value has the wrong type", "port: eighty", "write a value of the type named"),
    Code("PC104", "validate", _SPEC, "a value is not allowed (choice, pattern or range)", "kind: ecs",
         "write one of the values the message names"),
    # validate: the rules
    Code("PC201", "validate", _SPEC, "every service's artifact exists and suits the service's kind",
         "artifact: api-img where the artifact is api-image", "name an artifact under `artifacts:` of the right type"),
    Code("PC202", "validate", _SPEC, "environments named under scaling and config exist, and every environment has "
         "scaling", "scaling: {prod: ...} where the environment is production",
         "name each environment of `environments:` under scaling"),
    Code("PC203", "validate", _SPEC, "regions are real AWS regions, listed once, and per-region settings name those "
         "regions", "regions: [us-east1]", "write the region as AWS spells it, e.g. us-east-1"),
    Code("PC204", "validate", _SPEC, "the last environment states its approval explicitly",
         "production without approval:", "add approval: manual (or approval: none)"),
    Code("PC205", "validate", _SPEC, "staging and production should not share an AWS account (warning)",
         "two environments with the same account", "give each environment an account of its own"),
    Code("PC206", "validate", _SPEC, "secrets are references, and no plaintext value looks like a secret",
         "env: {STRIPE_KEY: sk_live_...}", "store it in SSM or Secrets Manager and name it under `secrets:`"),
    Code("PC207", "validate", _SPEC, "placeholders in references and URLs are ones pipec knows",
         "ssm:/acme/{stage}/db", "use {env}, {region}, {account}, {project} or {service}"),
    Code("PC208", "validate", _SPEC, "Fargate cpu and memory form a valid pair, and min does not exceed max",
         "cpu: 256, memory: 4096", "choose a memory size the hint lists for the cpu"),
    Code("PC209", "validate", _SPEC, "Lambda runtime, handler and memory are valid for the artifact",
         "runtime: python3.8", "choose a supported runtime; zips need handler and runtime, images neither"),
    Code("PC210", "validate", _SPEC, "schedules are valid cron expressions (or rate() for Lambda)",
         'schedule: "every day"', 'write 5-field cron such as "15 2 * * *" (UTC)'),
    Code("PC211", "plan", _SPEC, "every name pipec gives an AWS resource stays within AWS's length limit",
         "a 40-character project with a 30-character service", "shorten the project, environment or service name"),
    Code("PC219", "plan", _SPEC, "every name pipec gives an AWS resource belongs to one thing only",
         "environments prod and prod-eu with services eu-api and api: both stacks are acme-prod-eu-api",
         "rename the service or the environment; bootstrap and network are the shared stacks' names"),
    Code("PC212", "validate", _SPEC, "networking is either managed (cidr) or existing VPCs for every region",
         "network with both cidr and vpcs", "give one of the two"),
    Code("PC213", "validate", _SPEC, "HTTPS is all or nothing: certificates for every region of every environment, "
         "or none", "a certificate for staging only", "add a certificate for every region, or none"),
    Code("PC214", "validate", _SPEC, "web-only settings appear only on web services",
         "health_check on a worker without a port", "remove the setting or add a port"),
    Code("PC215", "validate", _SPEC, "e2e and sanity checks need each environment's URL",
         "checks.e2e with an environment that has no url", "add url: to every environment"),
    Code("PC216", "validate", _SPEC, "every artifact is used by a service (warning)",
         "an artifact no service names", "remove it, or it is built on every release for nothing"),
    Code("PC217", "validate", _SPEC, "variable names are free: not both plain and secret, not pipec's own, not "
         "reserved by Lambda", "env: {AWS_REGION: eu}", "choose another name"),
    Code("PC218", "validate", _SPEC, "a Lambda function's variables fit in the 4 KB Lambda allows",
         "a 5 KB JSON document in env", "keep large values in SSM and name them under `secrets:`"),
    Code("PC220", "validate", _SPEC, "web services should not serve plain HTTP on a public load balancer (warning)",
         "a service with a port and no `certificates:` in any environment",
         "add an ACM certificate per region under each environment's `certificates:`"),
    Code("PC221", "validate", _SPEC, "two environments in one account whose names meet (prod and prod-eu): IAM "
         "patterns of one would match the other", "environments prod and prod-eu in account 111111111111",
         "rename one (prod-us and prod-eu), or give it an account of its own"),
    Code("PC222", "validate", _SPEC, "the workflows can install pipec as github.pipec says, pinned by content "
         "(warning)", "github.pipec unset (pipec==0.1.0: PyPI has no pipec), or a git tag",
         "the wheel by sha256 (pipec @ https://.../pipec-0.1.0-py3-none-any.whl#sha256=...) or a git commit; "
         "`pipec init` writes the one this pipec came from"),
    Code("PC223", "validate", _SPEC, "a function's deploy would outlast what a job (GitHub-hosted: 6 hours) or a "
         "role session (12 hours) allows", "rollout: linear, 1 % every 5 minutes (100 steps)",
         "shift traffic in fewer or shorter steps, or use self-hosted runners"),
    # plan and render: pipec's own checks of its output, which no validator makes
    Code("PC301", "render", _BUG, "a Lambda alias does not point at a new AWS::Lambda::Version published on every "
         "release", "an alias on $LATEST", "a bug in pipec's templates: report it"),
    Code("PC302", "render", _BUG, "a CodeDeploy deployment group is not BLUE_GREEN with traffic control and alarm "
         "rollback", "an IN_PLACE group", "a bug in pipec's templates: report it"),
    Code("PC303", "render", _BUG, "an ECS service with a circuit breaker and alarms does not use the ECS deployment "
         "controller", "a CODE_DEPLOY controller", "a bug in pipec's templates: report it"),
    Code("PC304", "render", _BUG, "a Fargate task's cpu and memory are not a valid pair",
         "cpu 256 with memory 4096 in a parameter file", "a bug in pipec: report it"),
    Code("PC305", "render", _BUG, "an OIDC trust policy does not pin aud=sts.amazonaws.com and an exact sub",
         "a sub with a wildcard", "a bug in pipec's templates: report it"),
    Code("PC306", "render", _BUG, "a service template branches on the environment or parameter files differ in keys",
         "Conditions in a service template", "a bug in pipec's templates: report it"),
    Code("PC307", "render", _BUG, "a rendered file does not parse back as YAML or JSON",
         "a template that prints an unquoted colon", "a bug in pipec's templates: report it"),
    Code("PC308", "render", _SPEC, "a generated template is larger than CloudFormation accepts in a request "
         "(51,200 bytes)", "some 35 container images in one bootstrap template",
         "share images between services, or keep large values in SSM"),
    Code("PC309", "render", _BUG, "two generated files would have the same path", "a service named like a shared "
         "stack", "a bug in pipec: report it"),
    # the request: what a command was asked to act on
    Code("PC401", "aws", _SPEC, "the command names an environment the spec does not have",
         "pipec deploy --env prod", "name one of the spec's environments"),
    Code("PC402", "aws", _SPEC, "the command names a region the environment does not deploy to",
         "pipec status --env staging --region eu-west-1", "name one of the environment's regions"),
    Code("PC403", "aws", _SPEC, "the command names a service the spec does not have", "pipec history --service apii",
         "name one of the spec's services"),
    Code("PC404", "aws", _SPEC, "a version on the command line is not a release version", "--version v1.4.2",
         "write the version without the tag prefix, e.g. 1.4.2"),
    Code("PC405", "aws", _SPEC, "a commit on the command line is not a git commit id", "--commit HEAD~1",
         "pass the full commit id: --commit $(git rev-parse HEAD)"),
    Code("PC406", "aws", _SPEC, "the --artifact flags of `pipec bundle` are malformed, repeated, unknown or "
         "missing", "--artifact api-image", "pass --artifact NAME=sha256:HEX once for every artifact"),
    Code("PC407", "cli", _SPEC, "`pipec explain` was given a code that does not exist", "pipec explain PC999",
         "run `pipec explain` for the list"),
    Code("PC408", "release", _SPEC, "`pipec diff --against` was given something that is not a git ref",
         "pipec diff --against=--output=x", "name a branch, tag or commit"),
    Code("PC409", "cli", _SPEC, "`pipec init` would overwrite an existing file", "pipec init (pipeline.yaml exists)",
         "pass --force, or another path"),
    Code("PC410", "cli", _SPEC, "`pipec init` cannot write its file", "pipec init /read-only/pipeline.yaml",
         "choose a folder you may write"),
    Code("PC411", "aws", _SPEC, "`--break-glass` or `--reason` was given no reason (or more than one line of it)",
         "pipec deploy --env production --version 1.5.0 --break-glass \"\"",
         "say why the checks are skipped: --break-glass \"INC-142: staging is down\""),
    Code("PC412", "aws", _SPEC, "`pipec verify --run` is not the https URL of a run", "--run 1234",
         "pass the run's URL, or leave --run out inside GitHub Actions"),
    # emit: writing generated/
    Code("PC501", "emit", _BUG, "a generated path would escape its folder", "a file named ../x",
         "a bug in pipec: report it"),
    Code("PC502", "emit", _SPEC, "the output is not a folder pipec may replace (a symlink, a file, the spec's own "
         "folder, a folder no pipec build made)", "pipec build --output .",
         "pass --output with a folder of pipec's own, such as generated"),
    Code("PC503", "emit", _SPEC, "the disk is full", "a build on a full disk", "free some space and build again"),
    Code("PC504", "emit", _SPEC, "another pipec build holds the output folder", "two builds started at once",
         "wait for the other build to finish"),
    Code("PC505", "emit", ExitCode.STALE, "the committed generated files do not match the spec, and this command "
         "needs them equal", "pipec bundle after editing pipeline.yaml without `pipec build`",
         "run `pipec build`, commit generated/, and run the command again"),
    Code("PC506", "emit", _SPEC, "a generated file would be written outside the repository through a symbolic "
         "link", ".github linking to /etc", "replace the link with a folder"),
    Code("PC507", "emit", _SPEC, "pipec would overwrite a file it did not write", "a hand-written runbook where pipec "
         "writes one", "move the file away; pipec never replaces a file its manifest does not list"),
    Code("PC508", "emit", _SPEC, "the output cannot be written (permissions, a read-only disk, another OS error)",
         "a read-only checkout", "fix the folder's permissions; nothing was changed"),
    # aws: deploy, status, history, rollback
    Code("PC601", "aws", _AWS, "no AWS credentials were found, or they expired", "pipec status without a session",
         "sign in (aws sso login), or run inside the workflow"),
    Code("PC602", "aws", _AWS, "AWS refused the request (access denied or invalid)",
         "a deploy role without cloudformation:CreateChangeSet", "give the role the permission the message names"),
    Code("PC603", "aws", _AWS, "a file of a release is not published", "pipec deploy --version 9.9.9",
         "deploy a version the release workflow published (`pipec history`)"),
    Code("PC604", "aws", _AWS, "a deployment failed and CloudFormation rolled it back",
         "a task that never becomes healthy", "read the failing resources and reasons; fix and release again"),
    Code("PC605", "aws", _AWS, "the credentials are for another AWS account than the environment's",
         "staging credentials for pipec deploy --env production", "use credentials of the environment's account"),
    Code("PC606", "aws", _AWS, "a release of this version was already published with other contents",
         "publishing 1.4.2 again from another commit", "releases are immutable: a new commit gets a new version"),
    Code("PC607", "aws", _AWS, "an uploaded artifact does not have the digest the build reported",
         "a zip replaced after its digest was taken", "rebuild the release; never change an uploaded artifact"),
    Code("PC608", "aws", _AWS, "AWS throttled the requests even after retries", "many deploys in one account at once",
         "wait a minute and run the command again"),
    Code("PC609", "aws", _AWS, "there is no earlier version to roll back to",
         "pipec rollback --to previous on a service deployed once", "name a version with --to"),
    Code("PC610", "aws", _AWS, "an image is not in the registry of a region it is deployed to",
         "replication has not reached eu-west-1", "check the replication rule of the bootstrap stack"),
    Code("PC611", "aws", _AWS, "nothing is deployed where the command looked", "pipec status --format version before "
         "the first deploy", "deploy a release first"),
    Code("PC612", "aws", _AWS, "CloudFormation refused the change set", "a template an older stack cannot take",
         "read the reason; fix the spec or the stack"),
    Code("PC613", "aws", _AWS, "a stack is busy with another change", "a deploy while a rollback runs",
         "wait for the running change to finish (`pipec status`)"),
    Code("PC614", "aws", _AWS, "a stack is in a state that cannot be updated (its creation failed)",
         "ROLLBACK_COMPLETE after a first deploy failed", "delete the stack and deploy again"),
    Code("PC615", "aws", ExitCode.INTERRUPTED, "a deployment was interrupted; CloudFormation goes on with it",
         "Ctrl-C during pipec deploy", "follow it with `pipec status` and deploy again once it settles"),
    Code("PC617", "aws", _AWS, "a release cannot be deployed as the spec now stands (it predates an artifact, a "
         "service or a region)", "pipec rollback --to 1.2.0 after the artifact api-image was renamed",
         "deploy a release made since the change, or change the spec back and release that"),
    Code("PC618", "aws", _AWS, "a release's record is damaged (not JSON, fields missing, another version)",
         "release.json of 1.4.2 overwritten with {}", "find out who changed the release bucket before deploying"),
    Code("PC619", "aws", _AWS, "a release was changed after it was published (a file, its record, or the bucket's "
         "versioning)", "a template rewritten in the release bucket", "find out who wrote the release bucket "
         "(CloudTrail) and deploy another release"),
    Code("PC620", "aws", _AWS, "a deploy would take a service back to an older release than it runs",
         "re-running an old release's production deploy after a newer one shipped",
         "deploys only move forward: roll back on purpose with `pipec rollback --to` (the rollback workflow)"),
    Code("PC621", "aws", _AWS, "a deploy names a release the environment before it did not verify (its checks did "
         "not pass there)", "pipec deploy --env production --version 1.5.0 before staging's e2e passed",
         "deploy it to the environment before and let its checks pass; in an emergency, --break-glass \"<why>\""),
    Code("PC622", "aws", _AWS, "the environment's bootstrap or network stacks lack what a release's stacks read "
         "(a parameter they publish)", "a deploy to a region added to the spec before `pipec bootstrap` ran there",
         "an administrator runs `pipec bootstrap --env ENV` with the spec of the release, then deploys again"),
    Code("PC623", "aws", _AWS, "`pipec prune --apply` could not delete a stack", "a resource the execution role "
         "may not delete", "read the stack's events, fix the cause, and prune again"),
    Code("PC624", "aws", _AWS, "`pipec logs` finds no log streams of the release asked for (never deployed there, "
         "no function version published for it, or the query failed)", "pipec logs --version 9.9.9",
         "name a release that ran there (`pipec history`)"),
    Code("PC616", "aws", _AWS, "AWS cannot be reached", "no network, or a wrong AWS_ENDPOINT_URL",
         "check the network, the region and AWS_ENDPOINT_URL"),
    # release: git
    Code("PC701", "release", _SPEC, "git could not answer (no repository, no commits, git missing)",
         "pipec version next outside a repository", "run pipec inside the repository that holds pipeline.yaml"),
    Code("PC702", "release", _SPEC, "a file cannot be read at a git ref", "pipec diff --against origin/main in a "
         "shallow clone", "fetch the ref (fetch-depth: 0 in CI)"),
    Code("PC703", "release", _SPEC, "there is no release tag yet", "pipec version current before the first release",
         "the first release will be the spec's initial_version"),
    Code("PC704", "release", _AWS, "GitHub cannot be asked (no token, no network, or the API refused)",
         "pipec github check in a job without `permissions: actions: read`",
         "set GH_TOKEN and give the job `actions: read`"),
    Code("PC705", "release", _AWS, "a GitHub environment is protected less than pipeline.yaml says (missing, any "
         "branch may deploy, no or other required reviewers)", "approval: manual on production, whose GitHub "
         "environment has no required reviewers", "the message's fix, in the repository's Settings -> Environments"),
    Code("PC706", "release", _AWS, "the alert channel could not be told (its webhook secret is empty or not https, "
         "or it kept failing)", "pipec notify deployed without PIPEC_WEBHOOK_URL", "set the GitHub secret that "
         "alerts.webhook names to the https URL of the channel's incoming webhook"),
]
CODES: dict[str, Code] = {entry.code: entry for entry in _ENTRIES}


def exit_code(code: str) -> ExitCode:
    """The exit code a diagnostic code means (a tool's own finding, such as cfn-lint's, means a spec problem)."""
    entry = CODES.get(code)
    return entry.exit if entry else ExitCode.SPEC


def explain(code: str) -> str:
    """The whole entry of a code, as `pipec explain CODE` prints it."""
    entry = CODES[code]
    return (f"{entry.code}: {entry.title}\n"
            f"  stage: {entry.stage}; exit code {int(entry.exit)}\n"
            f"  example: {entry.example}\n"
            f"  fix: {entry.fix}\n")


def listing() -> str:
    """Every code with its title, as `pipec explain` prints it."""
    return "".join(f"{e.code}  exit {int(e.exit):<3} {e.title}\n" for e in _ENTRIES)
