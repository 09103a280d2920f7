"""`make demo`: the whole lifecycle of the example, offline, against a moto server on 127.0.0.1.

bootstrap staging and production -> build and publish release 1.0.0 -> deploy staging -> status ->
release 1.1.0 -> deploy staging and production -> status -> roll production back -> status -> history.
Everything happens in a temporary folder; nothing is written into the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.aws_world import World, build_release, moto_server, strip_unsupported, with_existing_networks  # noqa: E402

STAGING, PRODUCTION = "111111111111", "222222222222"
PIPEC = str(Path(sys.executable).parent / "pipec")


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m" if sys.stdout.isatty() else f"\n== {title}", flush=True)


def pipec(world: World, account: str, work: Path, *args: str) -> None:
    print(f"$ pipec {' '.join(args)}    # as account {account}", flush=True)
    done = subprocess.run([PIPEC, *args], cwd=work, env={**os.environ, **world.env(account)}, check=False)
    if done.returncode != 0:
        raise SystemExit(f"demo: `pipec {' '.join(args)}` exited {done.returncode}")


def main() -> None:
    from pipec.build import compile_spec

    with tempfile.TemporaryDirectory(prefix="pipec-demo-") as folder, moto_server() as url:
        work = Path(folder)
        world = World(url)
        step(f"a moto server on {url} plays AWS: staging is account {STAGING}, production {PRODUCTION}")
        # Production's VPCs exist before pipec; the demo makes them and uses their ids, as a user's spec would.
        spec = with_existing_networks(world, (REPO / "pipeline.yaml").read_text(), PRODUCTION)
        (work / "pipeline.yaml").write_text(spec)
        step("pipec build: the generated tree")
        subprocess.run([PIPEC, "build"], cwd=work, check=True)
        plan = compile_spec(work / "pipeline.yaml").plan

        step("bootstrap: KMS keys, alert topics, buckets, registries, roles and networks")
        pipec(world, STAGING, work, "bootstrap", "--env", "staging")
        pipec(world, PRODUCTION, work, "bootstrap", "--env", "production")

        for version, commit in (("1.0.0", "a1" * 20), ("1.1.0", "b2" * 20)):
            step(f"release {version}: the build jobs push each artifact once, then pipec bundle records them")
            digests = build_release(world, plan, version)
            pipec(world, STAGING, work, "bundle", "--version", version, "--commit", commit,
                  *[f"--artifact={name}={digest}" for name, digest in digests.items()])
            removed = strip_unsupported(world, plan, version)
            print(f"(moto cannot carry {len(removed)} resources of the bundle; the demo removes them: "
                  f"{', '.join(sorted({r.split('(')[1].rstrip(')') for r in removed}))})")
            step(f"deploy {version} to staging")
            pipec(world, STAGING, work, "deploy", "--env", "staging", "--version", version)
            step("what runs in staging")
            pipec(world, STAGING, work, "status", "--env", "staging")
            step(f"staging's end-to-end checks pass: the release workflow records that {version} passed them")
            pipec(world, STAGING, work, "verify", "--env", "staging", "--version", version)
            step(f"production approves and deploys the same {version}")
            pipec(world, PRODUCTION, work, "deploy", "--env", "production", "--version", version)
        pipec(world, PRODUCTION, work, "status", "--env", "production")

        step("something is wrong in production: roll back to the previous release")
        pipec(world, PRODUCTION, work, "rollback", "--env", "production", "--to", "previous")
        pipec(world, PRODUCTION, work, "status", "--env", "production")
        pipec(world, STAGING, work, "status", "--env", "staging")
        step("the ledger: every deployment, newest first")
        pipec(world, PRODUCTION, work, "history", "--env", "production", "--service", "api")
        pipec(world, STAGING, work, "history", "--env", "staging", "--service", "api")
        step("done: the moto server stops and the temporary folder goes")


if __name__ == "__main__":
    main()
