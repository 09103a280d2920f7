"""Every diagnostic code with a one-line title; `pipec explain CODE` prints it.

Rule codes (PC2xx) are registered by the rules themselves; this table holds the rest.
"""

from __future__ import annotations

from pipec.diagnostics import fail

CODES: dict[str, str] = {
    # load: reading the file and strict YAML
    "PC001": "the spec file cannot be read (missing, a directory, no permission)",
    "PC002": "the spec file is larger than pipec accepts (2 MiB)",
    "PC003": "the spec file is not valid UTF-8",
    "PC004": "the spec file contains binary data or a control character",
    "PC005": "the spec is not valid YAML",
    "PC006": "a tab character is used for indentation",
    "PC007": "a quoted string is not terminated",
    "PC008": "a key appears twice in the same mapping",
    "PC009": "aliases expand too far, refer to themselves, or have no anchor",
    "PC010": "the spec nests deeper than 64 levels",
    "PC011": "a YAML tag is used (pipeline.yaml takes plain values only)",
    "PC012": "the file holds more than one YAML document",
    "PC013": "the spec file is empty",
    "PC014": "the top of the spec is not a mapping",
    "PC015": "a key is a list or mapping instead of text",
    "PC016": "a merge key (<<) is used",
    # validate: the schema
    "PC101": "unknown key (with a did-you-mean when one is close)",
    "PC102": "a required key is missing",
    "PC103": "a value has the wrong type",
    "PC104": "a value is not allowed (choice, pattern or range)",
    # plan and render: pipec's own checks of its output, which no validator makes
    "PC301": "a Lambda alias does not point at a new AWS::Lambda::Version published on every release",
    "PC302": "a CodeDeploy deployment group is not BLUE_GREEN with traffic control and alarm rollback",
    "PC303": "an ECS service with a circuit breaker and alarms does not use the ECS deployment controller",
    "PC304": "a Fargate task's cpu and memory are not a valid pair",
    "PC305": "an OIDC trust policy does not pin aud=sts.amazonaws.com and an exact sub",
    "PC306": "a service template branches on the environment or parameter files differ in keys",
    "PC307": "a rendered file does not parse back as YAML or JSON",
    "PC308": "a generated template is larger than CloudFormation accepts in a request (51,200 bytes)",
    # emit: writing generated/
    "PC501": "an output path would escape its folder",
    "PC502": "the output folder cannot be written (permissions, a file or folder pipec does not own, a symlink)",
    "PC503": "the disk is full",
    "PC504": "another pipec build holds the output folder",
    # aws: deploy, status, history, rollback
    "PC601": "no AWS credentials were found, or they expired",
    "PC602": "AWS refused the request (access denied, throttled, invalid)",
    "PC603": "a stack, release or ledger entry does not exist",
    "PC604": "a deployment failed and CloudFormation rolled it back",
    "PC605": "the request is not valid for this spec (unknown environment, service, region or version)",
    "PC606": "git could not answer (no repository, no commits)",
}


def title(code: str) -> str | None:
    if code in CODES:
        return CODES[code]
    if code.startswith("PC2"):
        from pipec.validate.rules import RULES

        return next((r.title for r in RULES if r.code == code), None)
    return None


def explain(code: str) -> str:
    """The title of a code, or a PipecError naming the valid ranges."""
    found = title(code.upper())
    if found is None:
        raise fail("PC605", f"unknown diagnostic code {code}", hint="codes look like PC201; see `pipec explain "
                   "PC101`")
    return f"{code.upper()}: {found}"
