"""Valid specs of any size, for the property tests and the benchmark: a spec is plain data, dumped as YAML."""

from __future__ import annotations

from typing import Any

import yaml

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1")
FARGATE = ((256, 512), (512, 1024), (1024, 2048), (2048, 4096), (4096, 8192))


def spec(services: int, environments: int = 2, regions: int = 2, *, seed: int = 0) -> dict[str, Any]:
    """A valid spec with a mix of web, worker and Lambda services (zip and image), deterministic per seed."""
    envs = [f"env{i}" for i in range(environments - 1)] + ["production"]
    result: dict[str, Any] = {
        "pipec": 1, "project": "gen", "repository": "acme/generated",
        "artifacts": {"app-image": {"type": "container-image"},
                      "jobs-zip": {"type": "lambda-zip", "build": "make zip", "path": "dist/jobs.zip"}},
        "environments": {}, "services": {},
        "checks": {"e2e": {"run": "make e2e"}, "sanity": {"run": "make sanity", "schedule": "*/15 * * * *"}},
        "alerts": {"email": ["ops@acme.example"]},
    }
    for i, env in enumerate(envs):
        result["environments"][env] = {
            "account": f"{100000000000 + i * 111111111:012d}", "regions": list(REGIONS[: max(1, regions)]),
            "approval": "manual" if env == "production" else "none", "url": f"https://{env}.{{region}}.acme.example"}
    for n in range(services):
        kind = (n + seed) % 4
        name = f"svc{n}"
        if kind in (0, 1):
            cpu, memory = FARGATE[(n + seed) % len(FARGATE)]
            service: dict[str, Any] = {"kind": "ecs-fargate", "artifact": "app-image",
                                       "scaling": {e: {"cpu": cpu, "memory": memory, "min": 1, "max": 3} for e in envs}}
            if kind == 0:
                service |= {"port": 8000 + n, "health_check": "/health"}
        else:
            service = {"kind": "lambda", "artifact": "jobs-zip", "handler": f"h{n}.handler", "runtime": "python3.13",
                       "scaling": {e: {"memory": 256} for e in envs},
                       "rollout": {"strategy": ("canary", "linear", "all-at-once")[n % 3], "percent": 10, "minutes": 2}}
            if kind == 3:
                service["schedule"] = "0 3 * * *"
        service["env"] = {"LOG_LEVEL": "info"}
        service["config"] = {envs[-1]: {"LOG_LEVEL": "warn"}}
        result["services"][name] = service
    return result


def text(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=120)
