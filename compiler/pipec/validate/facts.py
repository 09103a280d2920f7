"""Facts about AWS that the rules and the plan need: regions, Lambda runtimes, Fargate sizes, limits.

Kept as data in one place; tests/test_validate.py checks the regions against botocore's endpoints and the Lambda
runtimes and reserved variables against cfn-lint's own data.
"""

from __future__ import annotations

# Every region below is in the standard partition.
PARTITION = "aws"

REGIONS = frozenset({
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1",
    "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2",
    "us-west-1", "us-west-2",
})

# Lambda runtimes (zip packages) that AWS supports and has not deprecated, as of the date below, from the
# runtime lifecycle data that cfn-lint ships (a test keeps the two in step).
LAMBDA_RUNTIMES_AS_OF = "2026-11-27"
LAMBDA_RUNTIMES = (
    "python3.14", "python3.13", "python3.12", "python3.11",
    "nodejs24.x", "nodejs22.x",
    "java25", "java21", "java17", "java11", "java8.al2",
    "dotnet10",
    "ruby4.0", "ruby3.4", "ruby3.3",
    "provided.al2023",
)

LAMBDA_MEMORY = (128, 10240)

# The largest template CloudFormation accepts inside a request (TemplateBody), in bytes.
TEMPLATE_BODY_BYTES = 51_200

# Variables the Lambda runtime sets itself: a function configuration that sets one is refused at deploy time
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html, "Reserved environment variables").
LAMBDA_RESERVED_VARIABLES = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
})
# A Lambda variable's name starts with a letter and has two characters or more; all of a function's variables
# together (names and values) fit in 4 KB.
LAMBDA_VARIABLE_NAME = r"^[A-Za-z][A-Za-z0-9_]+$"
LAMBDA_VARIABLES_BYTES = 4096

# Valid Fargate (cpu, memory in MiB) combinations, Linux.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}


def fargate_memory_hint(cpu: int) -> str:
    sizes = FARGATE_SIZES.get(cpu)
    if sizes is None:
        return f"Fargate cpu is one of {', '.join(str(c) for c in FARGATE_SIZES)}"
    return f"with cpu {cpu}, memory is one of {_ranges(sizes)} (MiB)"


def _ranges(sizes: tuple[int, ...]) -> str:
    if len(sizes) <= 4:
        return ", ".join(str(s) for s in sizes)
    step = sizes[1] - sizes[0]
    return f"{sizes[0]} to {sizes[-1]} in steps of {step}"

# Elastic Load Balancing's account per region, for ALB access logs in regions opened before August 2022;
# newer regions use the logdelivery.elasticloadbalancing.amazonaws.com service principal instead.
ELB_LOG_ACCOUNTS = {
    "us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980",
    "us-west-2": "797873946194", "af-south-1": "098369216593", "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580", "ap-south-1": "718504428378", "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887", "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864", "ca-central-1": "985666609251", "eu-central-1": "054676820928",
    "eu-west-1": "156460612806", "eu-west-2": "652711504416", "eu-south-1": "635631232127",
    "eu-west-3": "009996457667", "eu-north-1": "897822967062", "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
}
