"""Release bundles against a real moto server: publishing once, refusing a second publish with other contents,
checking every artifact's digest before anything is written, and reading a release back."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from pipec.aws import bundle
from pipec.aws.session import Aws
from pipec.diagnostics import PipecError
from tests.aws_world import World, aws_in, build_release
from tests.conftest import EXAMPLE
from tests.test_safety import COMPILED

PLAN = COMPILED.plan
COMMIT = "c" * 40


@pytest.fixture(scope="module", autouse=True)
def _registries(world: World) -> None:
    """The build account's release bucket, the ECR repositories of the example and the build registry's
    replication to the others (as the bootstrap stacks make them)."""
    s3 = world.client("s3", "111111111111", "us-east-1")
    s3.create_bucket(Bucket=PLAN.release_bucket)
    s3.put_bucket_versioning(Bucket=PLAN.release_bucket, VersioningConfiguration={"Status": "Enabled"})
    for account, region in PLAN.registries:
        ecr = world.client("ecr", account, region)
        for artifact in PLAN.artifacts:
            if artifact.is_image:
                ecr.create_repository(repositoryName=artifact.repository)
    world.client("ecr", "111111111111", "us-east-1").put_replication_configuration(replicationConfiguration={
        "rules": [{"destinations": [{"region": region, "registryId": account}
                                    for account, region in PLAN.replication_destinations]}]})


@pytest.fixture
def aws(world: World, monkeypatch: pytest.MonkeyPatch) -> Aws:
    return aws_in(world, "111111111111", monkeypatch)


def _publish(aws: Aws, version: str, digests: dict[str, str], commit: str = COMMIT) -> list[str]:
    said: list[str] = []
    bundle.publish(aws, PLAN, COMPILED.outputs, version, commit, digests, said.append)
    return said


def _error(call: Any) -> tuple[str, str]:
    with pytest.raises(PipecError) as caught:
        call()
    [found] = caught.value.diagnostics
    return found.code, found.message


def test_a_release_is_published_once_with_a_record_of_every_digest(world: World, aws: Aws) -> None:
    digests = build_release(world, PLAN, "2.0.0")
    said = _publish(aws, "2.0.0", digests)
    tree = [o for o in COMPILED.outputs if o.in_tree]
    assert said == [f"pipec: published release 2.0.0 ({COMMIT[:12]}) to s3://{PLAN.release_bucket}/releases/2.0.0/ "
                    f"with {len(tree)} files"]
    s3 = aws.client("s3", "us-east-1")
    record = json.loads(s3.get_object(Bucket=PLAN.release_bucket, Key="releases/2.0.0/release.json")["Body"].read())
    assert {k: v for k, v in record.items() if k != "created_at"} == {
        "version": "2.0.0", "commit": COMMIT, "pipec": "0.1.0", "spec_sha256": PLAN.spec_sha,
        "artifacts": {a.name: {"type": a.type, "digest": digests[a.name]} for a in PLAN.artifacts},
        "files": {o.path: hashlib.sha256(o.text.encode()).hexdigest() for o in tree}}
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=PLAN.release_bucket, Prefix="releases/2.0.0/")["Contents"]}
    assert {f"releases/2.0.0/{o.path}" for o in tree} <= keys
    bodies = {o.path: s3.get_object(Bucket=PLAN.release_bucket, Key=f"releases/2.0.0/{o.path}")["Body"].read()
              for o in tree[:5]}
    assert bodies == {o.path: o.text.encode() for o in tree[:5]}
    # Read back, as a deploy does.
    bundles = bundle.Bundles(aws, PLAN)
    release = bundles.release("2.0.0")
    assert (release.version, release.commit, release.digests) == ("2.0.0", COMMIT, digests)
    assert bundles.file("2.0.0", tree[0].path) == tree[0].text
    assert "2.0.0" in bundles.versions()
    # The same publish again changes nothing; another commit for the same version is refused.
    assert _publish(aws, "2.0.0", digests) == ["pipec: release 2.0.0 is already published; nothing to do"]
    assert _error(lambda: _publish(aws, "2.0.0", digests, commit="d" * 40)) == (
        "PC606", "release 2.0.0 was already published with other contents")
    other = {**digests, "api-image": "sha256:" + "f" * 64}
    assert _error(lambda: _publish(aws, "2.0.0", other))[0] == "PC606"


def test_a_zip_whose_sha256_is_not_the_reported_one_is_refused(world: World, aws: Aws) -> None:
    digests = build_release(world, PLAN, "2.1.0")
    wrong = {**digests, "jobs-zip": "sha256:" + "0" * 64}
    code, message = _error(lambda: _publish(aws, "2.1.0", wrong))
    assert code == "PC607"
    assert message == (f"s3://{PLAN.release_bucket}/releases/2.1.0/artifacts/jobs-zip.zip has {digests['jobs-zip']}, "
                       f"but the build reported sha256:{'0' * 64}")
    assert "Contents" not in aws.client("s3", "us-east-1").list_objects_v2(
        Bucket=PLAN.release_bucket, Prefix="releases/2.1.0/release.json")  # nothing recorded


def test_an_image_that_is_not_in_the_registry_is_refused(world: World, aws: Aws) -> None:
    digests = build_release(world, PLAN, "2.2.0")
    missing = {**digests, "api-image": "sha256:" + hashlib.sha256(b"never pushed").hexdigest()}
    code, message = _error(lambda: _publish(aws, "2.2.0", missing))
    assert (code, message) == ("PC610", f"image stigg/api-image@{missing['api-image']} is not in the registry of "
                                        "us-east-1")


def test_a_release_that_was_never_published_is_named(aws: Aws) -> None:
    code, message = _error(lambda: bundle.Bundles(aws, PLAN).release("9.9.9"))
    assert (code, message) == ("PC603", f"release 9.9.9 is not in s3://{PLAN.release_bucket}/releases/9.9.9/")


@pytest.mark.parametrize(("digests", "message"), [
    ({"api-image": "sha256:" + "1" * 64}, 'no digest for artifact "jobs-zip"; no digest for artifact "webhooks-zip"; '
                                          'no digest for artifact "worker-image"'),
    ({a.name: "sha256:" + "1" * 64 for a in PLAN.artifacts} | {"extra": "sha256:" + "1" * 64},
     'unknown artifact "extra"'),
    ({a.name: "sha256:" + "1" * 64 for a in PLAN.artifacts} | {"jobs-zip": "md5:abc"},
     'the digest of "jobs-zip" is not sha256:<64 hex digits>'),
    ({a.name: "sha256:" + "1" * 64 for a in PLAN.artifacts} | {"jobs-zip": "sha256:" + "1" * 63 + "\n"},
     'the digest of "jobs-zip" is not sha256:<64 hex digits>'),
])
def test_the_digests_of_a_publish_are_checked_before_aws_is_asked(digests: dict[str, str], message: str) -> None:
    code, found = _error(lambda: bundle.publish(None, PLAN, [], "1.0.0", COMMIT, digests, print))  # type: ignore
    assert (code, found) == ("PC406", message)


@pytest.mark.parametrize(("flags", "expected"), [
    (["a=sha256:1", "b=sha256:2"], {"a": "sha256:1", "b": "sha256:2"}),
    (["a=x=y"], {"a": "x=y"}),
])
def test_artifact_flags_are_read_as_name_and_digest(flags: list[str], expected: dict[str, str]) -> None:
    assert bundle.parse_digests(flags) == expected


@pytest.mark.parametrize(("flags", "message"), [
    (["a"], '--artifact "a" is not NAME=sha256:HEX'),
    (["=sha256:1"], '--artifact "=sha256:1" is not NAME=sha256:HEX'),
    (["a=1", "a=2"], '--artifact "a" is given twice'),
])
def test_malformed_artifact_flags_are_named(flags: list[str], message: str) -> None:
    assert _error(lambda: bundle.parse_digests(flags)) == ("PC406", message)


def test_every_published_version_is_listed_across_pages(world: World, aws: Aws) -> None:
    s3 = aws.client("s3", "us-east-1")
    versions = [f"3.{i}.0" for i in range(1100)]  # more than one page of ListObjectsV2 (1,000)
    for version in versions:
        s3.put_object(Bucket=PLAN.release_bucket, Key=f"releases/{version}/release.json", Body=b"{}")
    found = bundle.Bundles(aws, PLAN).versions()
    assert found[:2] == ["3.1099.0", "3.1098.0"] and set(versions) <= set(found)


def test_failures_say_which_step_of_a_release_failed(aws: Aws) -> None:
    from botocore.stub import Stubber

    digests = {a.name: "sha256:" + "1" * 64 for a in PLAN.artifacts}
    for step, service, operation, call in [
        ("listing the published releases", "s3", "list_objects_v2", lambda: bundle.Bundles(aws, PLAN).versions()),
        ("reading release 7.0.0", "s3", "get_object", lambda: bundle._existing(aws, PLAN, "7.0.0")),
        ("checking the release's artifacts", "ecr", "describe_images",
         lambda: bundle._verify_artifacts(aws, PLAN, "7.0.0", digests)),
    ]:
        stub = Stubber(aws.client(service, "us-east-1"))
        stub.add_client_error(operation, "AccessDenied", "no", 403)
        with stub:
            assert _error(call) == ("PC602", f"{step}: access denied: no"), step


def test_the_hints_of_a_missing_release_and_of_bad_flags() -> None:
    with pytest.raises(PipecError) as caught:
        bundle.parse_digests(["a"])
    assert caught.value.diagnostics[0].hint == "pass --artifact NAME=sha256:HEX once for every artifact"


def test_a_missing_release_says_where_releases_come_from(aws: Aws) -> None:
    with pytest.raises(PipecError) as caught:
        bundle.Bundles(aws, PLAN).release("9.8.7")
    assert caught.value.diagnostics[0].hint == ("releases are published by the release workflow (`pipec bundle`); "
                                               "`pipec history` lists the versions that were deployed")


def _changed_plan(old: str, new: str) -> Any:
    from pipec.load.load import load_bytes
    from pipec.plan.plan import make_plan
    from pipec.validate.validate import validate

    text = EXAMPLE.read_text()
    assert old in text
    return make_plan(validate(load_bytes(text.replace(old, new).encode(), "pipeline.yaml")))


_NEW_REGION = """    regions: [us-east-1, us-west-2]
    approval: none
    url: https://api.staging.stigg.io
    network:
      cidr: 10.10.0.0/16  # pipec manages this VPC
    certificates:
      us-west-2: arn:aws:acm:us-west-2:111111111111:certificate/3f1a2b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"""


_EXTRA_SERVICE = """
  extra:
    kind: lambda
    artifact: jobs-zip
    handler: extra.handler
    runtime: python3.13
    scaling:
      staging: {memory: 256}
      production: {memory: 256}

checks:"""


@pytest.mark.parametrize(("old", "new", "message"), [
    ("api-image", "api-img", "release 3.9.7 cannot be deployed to api in staging us-east-1: it has no artifact "
     "api-img, which the service now uses (the release has: api-image, jobs-zip, webhooks-zip, worker-image)"),
    ("    regions: [us-east-1]\n    approval: none\n    url: https://api.staging.stigg.io\n    network:\n"
     "      cidr: 10.10.0.0/16  # pipec manages this VPC\n    certificates:", _NEW_REGION,
     "release 3.9.7 cannot be deployed to api in staging us-west-2: it has no "
     "generated/cloudformation/parameters/staging/us-west-2/api.json"),
    ("\nchecks:", _EXTRA_SERVICE, "release 3.9.7 cannot be deployed to extra in staging us-east-1: it has no "
     "generated/cloudformation/services/extra.yaml"),
])
def test_a_release_older_than_the_spec_is_refused_before_any_stack_changes(world: World, aws: Aws, old: str,
                                                                          new: str, message: str) -> None:
    """Rolling back across an artifact's rename, an added region or an added service: refused up front, with the
    reason, instead of a KeyError or a deploy that stops half-way."""
    from pipec.aws import deploy

    if aws.client("s3", "us-east-1").list_objects_v2(Bucket=PLAN.release_bucket, Prefix="releases/3.9.7/")[
            "KeyCount"] == 0:
        _publish(aws, "3.9.7", build_release(world, PLAN, "3.9.7"))
    plan = _changed_plan(old, new)

    def stacks() -> list[Any]:
        return [aws.client("cloudformation", r).list_stacks()["StackSummaries"] for r in ("us-east-1", "us-west-2")]

    before = stacks()
    said: list[str] = []
    with pytest.raises(PipecError) as caught:
        deploy.deploy(aws, plan, deploy.Request("staging", "3.9.7", action="rollback"), said.append)
    [found] = caught.value.diagnostics
    assert (found.code, found.message, caught.value.exit_code) == ("PC617", message, 4)
    assert stacks() == before
    assert said == ["pipec: rolling back staging (" + ", ".join(plan.environment("staging").regions) + ") to 3.9.7"]


@pytest.mark.parametrize(("number", "record"), list(enumerate([
    b"{}", b"not json", b"[]", b'{"version": "4.0.1", "commit": "c", "artifacts": {}, "files": {}}',
    b'{"version": "4.0.0", "commit": "c", "artifacts": {"a": "sha256:x"}, "files": {}}',
    b'{"version": "4.0.0", "commit": "c", "artifacts": {}}',  # no sha256 of its files
    b'{"version": "4.0.0", "commit": "c", "artifacts": {}, "files": {"generated/README.md": 1}}'])))
def test_a_damaged_release_record_is_refused(aws: Aws, number: int, record: bytes) -> None:
    version = f"4.{number}.0"  # each record is the first and only one of its version
    record = record.replace(b'"4.0.0"', f'"{version}"'.encode())
    aws.client("s3", "us-east-1").put_object(Bucket=PLAN.release_bucket, Key=f"releases/{version}/release.json",
                                             Body=record)
    code, message = _error(lambda: bundle.Bundles(aws, PLAN).release(version))
    assert (code, message) == ("PC618", f"the record of release {version} (releases/{version}/release.json) is not "
                                        "the record pipec bundle writes for it")


def _layer(text: str) -> dict[str, Any]:
    """A layer of its own: moto's digest of an image is the sha256 of its layers' digests."""
    return {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1,
            "digest": "sha256:" + hashlib.sha256(text.encode()).hexdigest()}


class _Clock:
    """bundle's own `time`: a clock that moves only when bundle sleeps, and what it slept."""

    def __init__(self, on_sleep: Any = None) -> None:
        self.now, self.slept, self.on_sleep = 1000.0, [], on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.slept))


def test_an_image_is_awaited_in_steps_of_at_most_ten_seconds_until_the_deadline(
        aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(bundle, "time", clock)
    digest = "sha256:" + hashlib.sha256(b"never pushed").hexdigest()
    with pytest.raises(PipecError) as caught:
        bundle._image_exists(aws, "stigg/api-image", digest, "us-east-1", wait=25)
    assert clock.slept == [10.0, 10.0, 5.0]
    [found] = caught.value.diagnostics
    assert (found.code, found.message, found.hint) == (
        "PC610", f"image stigg/api-image@{digest} is not in the registry of us-east-1",
        "images reach each region by ECR replication from the build registry; check the replication rule of the "
        "bootstrap stack")


def test_an_image_that_arrives_while_awaited_ends_the_wait(world: World, aws: Aws,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"digest": "sha256:" + "a" * 64}, "layers": [_layer("late")]})
    ecr = world.client("ecr", "111111111111", "us-east-1")
    ecr.create_repository(repositoryName="stigg/scratch")  # where the build pushed it: the digest ECR gives it
    digest = ecr.put_image(repositoryName="stigg/scratch", imageManifest=manifest)["image"]["imageId"]["imageDigest"]

    def replicated(sleeps: int) -> None:  # ECR replication lands during the second wait
        if sleeps == 2:
            ecr.put_image(repositoryName="stigg/worker-image", imageManifest=manifest, imageTag="late")

    clock = _Clock(replicated)
    monkeypatch.setattr(bundle, "time", clock)
    bundle._image_exists(aws, "stigg/worker-image", digest, "us-east-1", wait=600)
    assert clock.slept == [10.0, 10.0]
    assert ecr.describe_images(repositoryName="stigg/worker-image", imageIds=[{"imageDigest": digest}])


def test_a_repository_that_does_not_exist_is_an_image_that_is_not_there(aws: Aws,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(bundle, "time", clock)
    digest = "sha256:" + "b" * 64
    assert _error(lambda: bundle._image_exists(aws, "stigg/nothing", digest, "us-east-1", wait=0)) == (
        "PC610", f"image stigg/nothing@{digest} is not in the registry of us-east-1")
    assert clock.slept == []


@pytest.mark.parametrize(("version", "commit", "code"), [
    ("2.3", COMMIT, "PC404"),
    ("2.3.0", "C" * 40, "PC405"),
])
def test_a_publish_checks_its_version_and_commit_first(version: str, commit: str, code: str) -> None:
    digests = {a.name: "sha256:" + "1" * 64 for a in PLAN.artifacts}
    assert _error(lambda: bundle.publish(None, PLAN, [], version, commit, digests, print))[0] == code  # type: ignore


def test_a_publish_with_credentials_of_another_account_is_refused(world: World,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    other = aws_in(world, "222222222222", monkeypatch)
    digests = {a.name: "sha256:" + "1" * 64 for a in PLAN.artifacts}
    assert _error(lambda: _publish(other, "2.4.0", digests)) == (
        "PC605", 'the credentials are for AWS account 222222222222, but environment "staging" is in account '
                 "111111111111")


def test_a_release_holds_exactly_the_tree_its_record_and_its_zips(world: World, aws: Aws) -> None:
    digests = build_release(world, PLAN, "2.5.0")
    _publish(aws, "2.5.0", digests)
    s3 = aws.client("s3", "us-east-1")
    listed = s3.list_objects_v2(Bucket=PLAN.release_bucket, Prefix="releases/2.5.0/")["Contents"]
    tree = {o.path for o in COMPILED.outputs if o.in_tree}
    zips = {f"artifacts/{a.name}.zip" for a in PLAN.artifacts if not a.is_image}
    assert {o["Key"].removeprefix("releases/2.5.0/") for o in listed} == tree | zips | {"release.json"}
    body = s3.get_object(Bucket=PLAN.release_bucket, Key="releases/2.5.0/release.json")["Body"].read().decode()
    record = json.loads(body)
    assert body == json.dumps(record, indent=2, sort_keys=True)
    assert record["created_at"].endswith("Z") and list(record) == sorted(record)


def _tamper_cases() -> list[tuple[str, str]]:
    worker = next(s for s in PLAN.services if s.name == "worker")
    return [("template", worker.template), ("parameters", worker.stack_for("staging", "us-east-1").parameter_file),
            ("record", "release.json"), ("artifact", "artifacts/jobs-zip.zip")]


@pytest.fixture(scope="module")
def published(world: World) -> dict[str, str]:
    """A release per tampering case, published as the release workflow does."""
    versions = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        aws = aws_in(world, "111111111111", monkeypatch)
        for number, (case, _) in enumerate(_tamper_cases()):
            versions[case] = f"5.{number}.0"
            _publish(aws, versions[case], build_release(world, PLAN, versions[case]))
    return versions


@pytest.mark.parametrize(("case", "path"), _tamper_cases(), ids=[c for c, _ in _tamper_cases()])
@pytest.mark.parametrize("action", ["deploy", "rollback"])
def test_a_release_rewritten_after_publishing_is_refused_before_any_stack_changes(
        aws: Aws, published: dict[str, str], case: str, path: str, action: str) -> None:
    from pipec.aws import deploy

    version = published[case]
    s3 = aws.client("s3", "us-east-1")
    key = f"releases/{version}/{path}"
    # rewritten once, as a writer of the bucket would (the deploy and rollback runs may share the world or not)
    if len(s3.list_object_versions(Bucket=PLAN.release_bucket, Prefix=key)["Versions"]) == 1:
        body = s3.get_object(Bucket=PLAN.release_bucket, Key=key)["Body"].read()
        s3.put_object(Bucket=PLAN.release_bucket, Key=key, Body=body.replace(b"stigg", b"evil") + b"\n")

    def stacks() -> list[Any]:
        return [aws.client("cloudformation", r).list_stacks()["StackSummaries"] for r in ("us-east-1", "us-west-2")]

    before = stacks()
    with pytest.raises(PipecError) as caught:
        deploy.deploy(aws, PLAN, deploy.Request("staging", version, action=action), lambda _: None)
    [found] = caught.value.diagnostics
    assert (found.code, found.message, caught.value.exit_code) == (
        "PC619", f"release {version} was changed after it was published: {path} (2 versions)", 4)
    assert stacks() == before


def test_a_file_replaced_without_a_trace_in_the_versions_is_caught_by_its_sha256(aws: Aws,
                                                                              world: World) -> None:
    """If the old version is gone too (a bucket whose policy was loosened), the record's sha256 still tells."""
    digests = build_release(world, PLAN, "5.9.0")
    _publish(aws, "5.9.0", digests)
    s3 = aws.client("s3", "us-east-1")
    worker = next(s for s in PLAN.services if s.name == "worker")
    key = f"releases/5.9.0/{worker.template}"
    for item in s3.list_object_versions(Bucket=PLAN.release_bucket, Prefix=key)["Versions"]:
        s3.delete_object(Bucket=PLAN.release_bucket, Key=key, VersionId=item["VersionId"])
    evil = b"Resources: {}\n"
    s3.put_object(Bucket=PLAN.release_bucket, Key=key, Body=evil)
    expected = next(hashlib.sha256(o.text.encode()).hexdigest() for o in COMPILED.outputs if o.path == worker.template)
    code, message = _error(lambda: bundle.Bundles(aws, PLAN).file("5.9.0", worker.template))
    assert (code, message) == ("PC619", f"s3://{PLAN.release_bucket}/{key} is not the file release 5.9.0 was "
                               f"published with: its record gives sha256 {expected}, the bucket holds "
                               f"{hashlib.sha256(evil).hexdigest()}")
    s3.delete_object(Bucket=PLAN.release_bucket, Key=key)  # a delete marker: the file is gone
    assert _error(lambda: bundle.Bundles(aws, PLAN).file("5.9.0", worker.template))[0] == "PC619"


def test_a_bucket_that_keeps_no_versions_cannot_vouch_for_a_release(world: World, aws: Aws) -> None:
    s3 = aws.client("s3", "us-east-1")
    s3.put_bucket_versioning(Bucket=PLAN.release_bucket, VersioningConfiguration={"Status": "Suspended"})
    try:
        with pytest.raises(PipecError) as caught:
            bundle.Bundles(aws, PLAN).release("2.0.0")
    finally:
        s3.put_bucket_versioning(Bucket=PLAN.release_bucket, VersioningConfiguration={"Status": "Enabled"})
    [found] = caught.value.diagnostics
    assert (found.code, found.message, found.hint) == (
        "PC619", f"s3://{PLAN.release_bucket} does not keep the versions of its objects, so nobody can tell whether "
                 "release 2.0.0 changed since it was published",
        "versioning is part of the bootstrap stack: run `pipec bootstrap --env staging` with administrator "
        "credentials")


def test_s3_itself_refuses_a_second_write_of_a_release_file(world: World, aws: Aws,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Two publishes that race past pipec's own read of the record: S3's If-None-Match decides."""
    from botocore.exceptions import ClientError

    digests = build_release(world, PLAN, "5.8.0")
    _publish(aws, "5.8.0", digests)
    s3 = aws.client("s3", "us-east-1")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=PLAN.release_bucket, Key="releases/5.8.0/release.json", Body=b"{}", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    monkeypatch.setattr(bundle, "_existing", lambda *_: None)  # as if the other publish had not finished yet
    assert _error(lambda: _publish(aws, "5.8.0", digests, commit="d" * 40)) == (
        "PC606", f"s3://{PLAN.release_bucket}/releases/5.8.0/release.json already exists with other contents")
    # A publish that failed half-way is finished by the next: the files it wrote have the same bytes.
    again = build_release(world, PLAN, "5.8.1")
    first = next(o for o in COMPILED.outputs if o.in_tree)
    s3.put_object(Bucket=PLAN.release_bucket, Key=f"releases/5.8.1/{first.path}", Body=first.text.encode())
    assert _publish(aws, "5.8.1", again)[0].startswith("pipec: published release 5.8.1")


def test_a_rollback_finds_the_record_the_environment_ran_or_stops(world: World, aws: Aws) -> None:
    """Even a release rewritten without a trace in the bucket's versions (and consistent with itself) is caught
    on the way back: the environment's own ledger holds the sha256 of the record it deployed."""
    from pipec.aws import deploy, ledger
    from pipec.plan.model import Target

    _publish(aws, "6.0.0", build_release(world, PLAN, "6.0.0"))
    worker = PLAN.service("worker")
    target = Target("staging", "us-east-1", "111111111111")
    ran = bundle.Bundles(aws, PLAN).record_sha256("6.0.0")
    ledger.record(aws, worker, target, ledger.Entry("6.0.0", COMMIT, "d", "t", "me", "deploy", record=ran))
    assert json.loads(aws.client("ssm", "us-east-1").get_parameter(Name=worker.ledger_for("staging"))[
        "Parameter"]["Value"])["record"] == ran
    deploy._as_it_ran(aws, bundle.Bundles(aws, PLAN), worker, target, "6.0.0")  # the same record: on it goes
    s3 = aws.client("s3", "us-east-1")
    key = "releases/6.0.0/release.json"
    record = json.loads(s3.get_object(Bucket=PLAN.release_bucket, Key=key)["Body"].read())
    record["commit"] = "e" * 40
    for item in s3.list_object_versions(Bucket=PLAN.release_bucket, Prefix=key)["Versions"]:
        s3.delete_object(Bucket=PLAN.release_bucket, Key=key, VersionId=item["VersionId"])
    s3.put_object(Bucket=PLAN.release_bucket, Key=key, Body=json.dumps(record, indent=2, sort_keys=True).encode())
    now = bundle.Bundles(aws, PLAN).record_sha256("6.0.0")
    request = deploy.Request("staging", "6.0.0", service="worker", region="us-east-1", action="rollback")
    before = aws.client("cloudformation", "us-east-1").list_stacks()["StackSummaries"]
    code, message = _error(lambda: deploy.deploy(aws, PLAN, request, lambda _: None))
    assert (code, message) == ("PC619", f"the record of release 6.0.0 is not the one worker ran in staging "
                                        f"us-east-1: the ledger holds sha256 {ran}, the release bucket {now}")
    assert aws.client("cloudformation", "us-east-1").list_stacks()["StackSummaries"] == before  # nothing changed
