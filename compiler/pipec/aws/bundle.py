"""Release bundles: the generated tree of a release and its record (version, commit, artifact digests, the
sha256 of every file), stored once in the first environment's artifact bucket under releases/<version>/.

Written once: every object is put with `If-None-Match: *`, which the bucket policy requires of every write under
releases/ (and only the build role may write there; nobody may delete). Deploys and rollbacks read bundles, and
check before using one that the bucket keeps versions and that no object of the release has more than one (so
nothing was rewritten since it was published), and every file against the sha256 its record gives it. So a
rollback redeploys exactly what was deployed, and a writer of the bucket cannot change what production runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipec import __version__
from pipec.aws import targets
from pipec.aws.session import Aws, code_of, errors, utc_now
from pipec.diagnostics import PipecError, fail
from pipec.plan import names
from pipec.plan.model import Plan, Release, ServicePlan, Target
from pipec.render.output import Output

RECORD = "release.json"
# The hint of every PC619: what to do about a release that changed after it was published.
CHANGED_HINT = ("a release is written once; find out who wrote the release bucket (CloudTrail) and deploy another "
                "release")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _location(plan: Plan, version: str, path: str = "") -> tuple[str, str]:
    return plan.release_bucket, names.release_prefix(version) + path


@dataclass
class Bundles:
    """Reads bundles once per version and keeps them for the whole command."""

    aws: Aws
    plan: Plan
    _records: dict[str, Release] = field(default_factory=dict)
    _hashes: dict[str, dict[str, str]] = field(default_factory=dict)  # version -> path -> sha256 of the file
    _record_hashes: dict[str, str] = field(default_factory=dict)  # version -> sha256 of its release.json
    _files: dict[tuple[str, str], str | None] = field(default_factory=dict)

    def release(self, version: str) -> Release:
        if version not in self._records:
            text = self._get(version, RECORD, what=f"release {version}")
            self._unchanged_since_published(version)
            try:
                data = json.loads(text)
                digests = {str(name): str(item["digest"]) for name, item in data.get("artifacts", {}).items()}
                found = Release(str(data["version"]), str(data["commit"]), digests)
                hashes = data["files"]
                if not _listing(hashes):
                    raise TypeError("files")
            except (ValueError, KeyError, TypeError, AttributeError):
                found = None
            if found is None or found.version != version:
                raise fail("PC618", f"the record of release {version} ({names.release_prefix(version)}{RECORD}) is "
                           "not the record pipec bundle writes for it", hint="releases are written once by "
                           "`pipec bundle`; find out who changed the release bucket before deploying from it")
            self._records[version], self._hashes[version] = found, hashes
            self._record_hashes[version] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self._records[version]

    def record_sha256(self, version: str) -> str:
        """The sha256 of the release's record, which the ledger keeps beside each deployment of it."""
        self.release(version)
        return self._record_hashes[version]

    def _unchanged_since_published(self, version: str) -> None:
        """The bucket keeps every version of every object, and each object of the release has exactly one: none
        was overwritten or deleted since `pipec bundle` wrote it (the bucket policy forbids both; this catches a
        bucket whose policy was changed, or a bootstrap that never ran)."""
        bucket, prefix = _location(self.plan, version)
        client = self.aws.client("s3", self.plan.build_env.home_region)
        with errors(f"checking that release {version} is as it was published"):
            status = client.get_bucket_versioning(Bucket=bucket).get("Status")
            counts: Counter[str] = Counter()
            pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    counts[item["Key"]] += 1
        if status != "Enabled":
            raise fail("PC619", f"s3://{bucket} does not keep the versions of its objects, so nobody can tell "
                       f"whether release {version} changed since it was published",
                       hint=f"versioning is part of the bootstrap stack: run `pipec bootstrap --env "
                            f"{self.plan.build_env.name}` with administrator credentials")
        changed = [f"{key.removeprefix(prefix)} ({n} versions)" for key, n in sorted(counts.items()) if n > 1]
        if changed:
            raise fail("PC619", f"release {version} was changed after it was published: "
                       f"{', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}",
                       hint=CHANGED_HINT)

    def versions(self) -> list[str]:
        """Every published release version, highest first."""
        import semver

        client = self.aws.client("s3", self.plan.build_env.home_region)
        found = []
        with errors("listing the published releases"):
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.plan.release_bucket, Prefix="releases/", Delimiter="/")
            for page in pages:
                found += [p["Prefix"].split("/")[1] for p in page.get("CommonPrefixes", [])]
        valid = [semver.Version.parse(v) for v in found if semver.Version.is_valid(v)]
        return [str(v) for v in sorted(valid, reverse=True)]

    def file(self, version: str, path: str) -> str:
        """A generated file of the release, by its path in the repository (generated/cloudformation/...)."""
        found = self.find(version, path)
        if found is None:
            raise self._missing(version, f"{path} of release {version}")
        return found

    def find(self, version: str, path: str) -> str | None:
        """A generated file of the release, checked against its record, or None when the release has no such
        file (its record does not list it)."""
        self.release(version)
        expected = self._hashes[version].get(path)
        key = (version, path)
        if expected is not None and key not in self._files:
            text = self._fetch(version, path, f"{path} of release {version}")
            found = None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()
            if found != expected:
                bucket, object_key = _location(self.plan, version, path)
                raise fail("PC619", f"s3://{bucket}/{object_key} is not the file release {version} was published "
                           f"with: its record gives sha256 {expected}, the bucket holds "
                           f"{'nothing' if found is None else found}",
                           hint=CHANGED_HINT)
            self._files[key] = text
        return self._files.get(key)

    def _get(self, version: str, path: str, *, what: str) -> str:
        found = self._fetch(version, path, what)
        if found is None:
            raise self._missing(version, what)
        return found

    def _fetch(self, version: str, path: str, what: str) -> str | None:
        with errors(f"reading {what}"):
            body = _object(self.aws, self.plan, version, path)
        return None if body is None else body.decode("utf-8")

    def _missing(self, version: str, what: str) -> PipecError:
        return fail("PC603", f"{what} is not in s3://{self.plan.release_bucket}/{names.release_prefix(version)}",
                    hint="releases are published by the release workflow (`pipec bundle`); "
                         "`pipec history` lists the versions that were deployed")


def _listing(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _object(aws: Aws, plan: Plan, version: str, path: str) -> bytes | None:
    """An object of a release bundle, or None when it (or the bucket) is not there."""
    return read_object(aws, plan, names.release_prefix(version) + path)


def read_object(aws: Aws, plan: Plan, key: str) -> bytes | None:
    """An object of the release bucket, or None when it (or the bucket) is not there."""
    from botocore.exceptions import ClientError

    try:
        return bytes(aws.client("s3", plan.build_env.home_region).get_object(Bucket=plan.release_bucket,
                                                                             Key=key)["Body"].read())
    except ClientError as exc:
        if code_of(exc) not in ("NoSuchKey", "404", "NoSuchBucket"):
            raise
        return None


def publish(aws: Aws, plan: Plan, outputs: list[Output], version: str, commit: str,
            digests: dict[str, str], out: Callable[[str], None]) -> None:
    """Upload the generated tree and the release record; a published release never changes."""
    targets.version(version)
    targets.commit(commit)
    _check_digests(plan, digests)
    build = plan.build_env
    aws.require_account(build.account, build.name)
    tree = [o for o in outputs if o.in_tree]
    record = {"version": version, "commit": commit, "pipec": __version__, "spec_sha256": plan.spec_sha,
              "artifacts": {a.name: {"type": a.type, "digest": digests[a.name]} for a in plan.artifacts},
              "files": {o.path: hashlib.sha256(o.text.encode("utf-8")).hexdigest() for o in tree}}
    existing = _existing(aws, plan, version)
    if existing is not None:
        same = {k: existing.get(k) for k in _IDENTITY} == {k: record[k] for k in _IDENTITY}
        if not same:
            raise fail("PC606", f"release {version} was already published with other contents",
                       hint="releases are immutable; a new commit gets a new version")
        out(f"pipec: release {version} is already published; nothing to do")
        return
    _verify_artifacts(aws, plan, version, digests)
    bucket, prefix = _location(plan, version)
    with errors(f"uploading release {version}"):
        for artifact in tree:
            _put_once(aws, plan, prefix + artifact.path, artifact.text.encode("utf-8"))
        record["created_at"] = utc_now()
        _put_once(aws, plan, prefix + RECORD, json.dumps(record, indent=2, sort_keys=True).encode("utf-8"))
    out(f"pipec: published release {version} ({commit[:12]}) to s3://{bucket}/{prefix} with {len(tree)} files")


_IDENTITY = ("version", "commit", "artifacts", "files")  # what makes two publishes of a version the same


def _put_once(aws: Aws, plan: Plan, key: str, body: bytes) -> None:
    """Create an object of a release that must not exist yet. A file a failed publish of the same release already
    wrote, with the same bytes, is fine; any other is another release's."""
    if put_once(aws, plan, key, body):
        return
    existing = read_object(aws, plan, key)
    if existing != body or key.endswith(RECORD):
        raise fail("PC606", f"s3://{plan.release_bucket}/{key} already exists with other contents",
                   hint="releases are immutable; a new commit gets a new version")


def put_once(aws: Aws, plan: Plan, key: str, body: bytes) -> bool:
    """Create an object of the release bucket unless it exists (S3 refuses with 412 if it does): False then."""
    from botocore.exceptions import ClientError

    try:
        aws.client("s3", plan.build_env.home_region).put_object(Bucket=plan.release_bucket, Key=key, Body=body,
                                                                IfNoneMatch="*")
    except ClientError as exc:
        if code_of(exc) not in ("PreconditionFailed", "412"):
            raise
        return False
    return True


def parse_digests(items: list[str]) -> dict[str, str]:
    """`--artifact NAME=sha256:HEX` flags as {name: digest}; a flag without a name or given twice is an error."""
    digests: dict[str, str] = {}
    problems = []
    for item in items:
        name, equals, digest = item.partition("=")
        if not name or not equals:
            problems.append(f'--artifact "{item}" is not NAME=sha256:HEX')
        elif name in digests:
            problems.append(f'--artifact "{name}" is given twice')
        else:
            digests[name] = digest
    if problems:
        raise fail("PC406", "; ".join(problems), hint="pass --artifact NAME=sha256:HEX once for every artifact")
    return digests


def _check_digests(plan: Plan, digests: dict[str, str]) -> None:
    known = {a.name for a in plan.artifacts}
    problems = [f'unknown artifact "{n}"' for n in digests if n not in known]
    problems += [f'no digest for artifact "{n}"' for n in sorted(known - set(digests))]
    problems += [f'the digest of "{n}" is not sha256:<64 hex digits>' for n, d in digests.items()
                 if n in known and not _DIGEST.fullmatch(d)]
    if problems:
        raise fail("PC406", "; ".join(problems), hint="pass --artifact NAME=sha256:HEX for every artifact")


def _existing(aws: Aws, plan: Plan, version: str) -> dict[str, Any] | None:
    with errors(f"reading release {version}"):
        body = _object(aws, plan, version, RECORD)
    data: dict[str, Any] | None = json.loads(body) if body is not None else None
    return data


def _verify_artifacts(aws: Aws, plan: Plan, version: str, digests: dict[str, str]) -> None:
    """Every artifact of the release exists, with the digest the build reported."""
    build = plan.build_env
    with errors("checking the release's artifacts"):
        for artifact in plan.artifacts:
            digest = digests[artifact.name]
            if artifact.is_image:
                _image_exists(aws, artifact.repository, digest, build.home_region, wait=0)
                continue
            bucket, key = plan.release_bucket, names.zip_key(version, artifact.name)
            body = aws.client("s3", build.home_region).get_object(Bucket=bucket, Key=key)["Body"].read()
            actual = "sha256:" + hashlib.sha256(body).hexdigest()
            if actual != digest:
                raise fail("PC607", f"s3://{bucket}/{key} has {actual}, but the build reported {digest}")


def _image_exists(aws: Aws, repository: str, digest: str, region: str, *, wait: float) -> None:
    from botocore.exceptions import ClientError

    client = aws.client("ecr", region)
    deadline = time.monotonic() + wait
    while True:
        try:
            client.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])
            return
        except ClientError as exc:
            if code_of(exc) not in ("ImageNotFoundException", "RepositoryNotFoundException"):
                raise
            if time.monotonic() >= deadline:
                raise fail("PC610", f"image {repository}@{digest} is not in the registry of {region}",
                           hint="images reach each region by ECR replication from the build registry; "
                                "check the replication rule of the bootstrap stack") from None
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))


def place_artifact(aws: Aws, plan: Plan, service: ServicePlan, target: Target, release: Release,
                   image_wait: float) -> None:
    """Make the service's artifact available where the stack needs it: the zip copied into the regional
    bucket (server-side), or the image present in the regional registry."""
    artifact = service.artifact
    digest = release.digests[artifact.name]
    with errors(f"placing {artifact.name} in {target.env} {target.region}"):
        if artifact.is_image:
            _image_exists(aws, artifact.repository, digest, target.region, wait=image_wait)
            return
        source = (plan.release_bucket, names.zip_key(release.version, artifact.name))
        destination = (names.bucket(plan.project, target.env, target.account, target.region), source[1])
        if destination == source:
            return
        s3 = aws.client("s3", target.region)
        s3.copy_object(Bucket=destination[0], Key=destination[1],
                       CopySource={"Bucket": source[0], "Key": source[1]},
                       MetadataDirective="REPLACE", Metadata={"sha256": digest.removeprefix("sha256:")})
