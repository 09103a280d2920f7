"""A real moto server on 127.0.0.1 and what a test needs around it: credentials per account, a release build,
and the explicit list of resource types that moto cannot carry.

Credentials come from moto's STS: assuming a role in an account gives keys of that account, as in real life,
so staging (one account) and production (another) are separate worlds.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from pipec.plan.model import Plan
from pipec.render.output import Output
from pipec.render.parse import parse

STAGING_ACCOUNT, PRODUCTION_ACCOUNT = "111111111111", "222222222222"

# Resource types that moto cannot create from a template, with the reason. The helper removes exactly these
# from a published bundle before a deploy, and fails on anything else it would have to touch.
UNSUPPORTED = {
    "AWS::Lambda::Permission": "moto cannot resolve the Lambda alias the permission grants on",
    "AWS::Events::Rule": "moto cannot resolve the Lambda alias the rule targets",
    "AWS::ElasticLoadBalancingV2::Listener": "moto looks the certificate up in ACM, outside the stack",
}


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(managed_policies: bool = False, skip: tuple[str, ...] = ()) -> Iterator[str]:
    """Start `moto_server` on a free port of 127.0.0.1; yield its URL; stop it. With managed_policies, moto knows
    AWS's managed policies (their real documents), so a role attaches them as in an account; stacks skip the
    resource types in `skip` (moto_server's fix 6)."""
    port = free_port()
    server = Path(__file__).with_name("moto_server.py")  # moto's own server, with fixes (see there)
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true" if managed_policies else "false",
           "PIPEC_MOTO_SKIP": ",".join(skip)}
    process = subprocess.Popen([sys.executable, str(server), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class World:
    """The moto server and the environment variables that point pipec at an account."""

    url: str

    def env(self, account: str, role: str = "admin") -> dict[str, str]:
        sts = boto3.client("sts", region_name="us-east-1", endpoint_url=self.url, aws_access_key_id="bootstrap",
                           aws_secret_access_key="bootstrap")
        found = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="pipec-tests")
        credentials = found["Credentials"]
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"], "AWS_DEFAULT_REGION": "us-east-1",
                "PIPEC_POLL_SECONDS": "0.01", "PIPEC_IMAGE_WAIT": "0"}

    def session(self, account: str) -> boto3.session.Session:
        env = self.env(account)
        return boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                     aws_session_token=env["AWS_SESSION_TOKEN"])

    def client(self, service: str, account: str, region: str) -> Any:
        return self.session(account).client(service, region_name=region, endpoint_url=self.url)


def existing_network(world: World, account: str, region: str, cidr: str) -> dict[str, Any]:
    """A VPC with two public and two private subnets that exists before pipec (as in the example's production)."""
    ec2 = world.client("ec2", account, region)
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    base = cidr.rsplit(".", 2)[0]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"{base}.{i * 64}.0/18")["Subnet"]["SubnetId"]
               for i in range(4)]
    return {"vpc": vpc, "public_subnets": subnets[:2], "private_subnets": subnets[2:]}


def with_existing_networks(world: World, spec: str, account: str) -> str:
    """The example's production VPCs exist before pipec: make them in moto and put their ids in the spec text,
    as a user's spec would list them."""
    for region, cidr, old in (("us-east-1", "10.20.0.0/16", "0a1b2c3d4e5f6"), ("eu-west-1", "10.30.0.0/16",
                                                                               "0f1e2d3c4b5a6")):
        made = existing_network(world, account, region, cidr)
        written = re.findall(rf"(?:vpc|subnet)-{old}[0-9a-f]+", spec)
        for old_id, new_id in zip(written, [made["vpc"], *made["public_subnets"], *made["private_subnets"]],
                                  strict=True):
            spec = spec.replace(old_id, new_id)
    return spec


def build_release(world: World, plan: Plan, version: str) -> dict[str, str]:
    """What the release workflow's build jobs do: each zip uploaded once with its sha256, each image pushed
    once to the build registry (whose replication, as moto_server does it, copies it to every other registry)."""
    build = plan.build_env
    digests = {}
    for artifact in plan.artifacts:
        if artifact.is_image:
            manifest = json.dumps({"schemaVersion": 2, "mediaType":
                                   "application/vnd.docker.distribution.manifest.v2+json",
                                   "config": {"digest": "sha256:" + hashlib.sha256(
                                       f"{artifact.name} {version}".encode()).hexdigest()},
                                   # moto's digest is the sha256 of the layers' digests: one of its own per build
                                   "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                               "size": 1, "digest": "sha256:" + hashlib.sha256(
                                                   f"{artifact.name} {version} layer".encode()).hexdigest()}]})
            ecr = world.client("ecr", build.account, build.home_region)
            pushed = ecr.put_image(repositoryName=artifact.repository, imageManifest=manifest, imageTag=version)
            digests[artifact.name] = pushed["image"]["imageId"]["imageDigest"]
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("handler.py", f"VERSION = {version!r}\n")
            data = buffer.getvalue()
            world.client("s3", build.account, build.home_region).put_object(
                Bucket=plan.release_bucket, Key=f"releases/{version}/artifacts/{artifact.name}.zip", Body=data)
            digests[artifact.name] = "sha256:" + hashlib.sha256(data).hexdigest()
    return digests


def strip_unsupported(world: World, plan: Plan, version: str) -> list[str]:
    """Remove the UNSUPPORTED resource types from the service templates of a published bundle, as if pipec had
    published them so (each file and the record's sha256 of it replaced, without a second version: pipec refuses
    a rewritten release); return what was removed. Any other reference to a removed resource fails the test."""
    build = plan.build_env
    s3 = world.client("s3", build.account, build.home_region)
    prefix = f"releases/{version}/"
    record = json.loads(s3.get_object(Bucket=plan.release_bucket, Key=prefix + "release.json")["Body"].read())
    removed = []
    for service in plan.services:
        key = prefix + service.template
        text = s3.get_object(Bucket=plan.release_bucket, Key=key)["Body"].read().decode()
        template = parse(Output(key, text))
        stripped, gone = _strip(template)
        removed += [f"{service.name}: {name} ({template['Resources'][name]['Type']})" for name in sorted(gone)]
        body = json.dumps(stripped, indent=1).encode()
        _republish(s3, plan.release_bucket, key, body)
        record["files"][service.template] = hashlib.sha256(body).hexdigest()
    _republish(s3, plan.release_bucket, prefix + "release.json", json.dumps(record, indent=2, sort_keys=True).encode())
    return removed


def _republish(s3: Any, bucket: str, key: str, body: bytes) -> None:
    for item in [v for v in s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", []) if v["Key"] == key]:
        s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def _strip(template: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    result = copy.deepcopy(template)
    gone = {name for name, r in result["Resources"].items() if r["Type"] in UNSUPPORTED}
    for name in gone:
        del result["Resources"][name]
    for resource in result["Resources"].values():
        depends = resource.get("DependsOn")
        if depends is not None:
            kept = [d for d in ([depends] if isinstance(depends, str) else depends) if d not in gone]
            if kept:
                resource["DependsOn"] = kept
            else:
                del resource["DependsOn"]
    text = json.dumps(result)
    for name in gone:
        if f'"Ref": "{name}"' in text or f'["{name}",' in text or "${" + name in text:
            raise AssertionError(f"{name} is still referenced; extend the allow-list deliberately or not at all")
    return result, gone


def deploy_everywhere(world: World, workdir: Path, versions: tuple[str, ...] = ("1.0.0", "1.1.0")) -> None:
    """Bootstrap every environment of the spec in workdir, publish each version and deploy it everywhere."""
    from pipec.build import compile_spec
    from tests.conftest import cli

    plan = compile_spec(workdir / "pipeline.yaml").plan

    def run(account: str, *args: str) -> None:
        result = cli(*args, cwd=workdir, env=world.env(account))
        assert result.exit_code == 0, result.stdout + result.stderr

    for env in plan.environments:
        run(env.account, "bootstrap", "--env", env.name)
    for version in versions:
        digests = build_release(world, plan, version)
        run(plan.build_env.account, "bundle", "--version", version, "--commit", version.replace(".", "") * 10,
            *[f"--artifact={name}={digest}" for name, digest in digests.items()])
        strip_unsupported(world, plan, version)
        for env in plan.environments:
            run(env.account, "deploy", "--env", env.name, "--version", version)
            run(plan.build_env.account, "verify", "--env", env.name, "--version", version)


def aws_in(world: World, account: str, monkeypatch: Any) -> Any:
    """pipec's own Aws with credentials of an account of the moto world (for tests that call the aws stage)."""
    from pipec.aws.session import Aws

    for key, value in world.env(account).items():
        monkeypatch.setenv(key, value)
    return Aws()
