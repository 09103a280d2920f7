"""`make mutation`: mutation testing (mutmut) of the code that protects users, killed / survived per module.

mutmut looks for the package under src/ and names mutants by their path there, while pipec's lives in
compiler/pipec; so this lays out a scratch copy (.mutation/, ignored by git) with src/pipec, the tests and the
files they read, runs `mutmut run` in it, and prints one line per module. The repository itself is never
touched. Usage: python tests/mutation.py [MODULE ...] (module paths relative to compiler/, default: all below).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRATCH = REPO / ".mutation"
BIN = Path(sys.executable).parent

# The code that protects users, and the tests that speak for it (the property tests are random and slow; the
# validators and subprocess tests cannot see an in-process mutant).
MODULES = [  # each module's line is printed as soon as it is done
    "pipec/render/guards.py",
    "pipec/aws/ledger.py",
    "pipec/aws/session.py",
    "pipec/aws/deploy.py",
    "pipec/emit/emit.py",
    "pipec/validate/rules.py",
    "pipec/aws/bundle.py",
    "pipec/release/github.py",
    "pipec/aws/verified.py",
]
# Where a module is more than the protection, only these functions: rollback selection and bundle verification.
SCOPE = {
    "pipec/aws/deploy.py": ["_target_version", "_older", "_select", "_fits"],
    "pipec/aws/bundle.py": ["parse_digests", "_check_digests", "_verify_artifacts", "_image_exists", "publish",
                            "_existing", "_object", "xǁBundlesǁrelease", "xǁBundlesǁversions", "xǁBundlesǁ_get"],
}
TESTS = ["tests/test_cloudformation.py", "tests/test_emit.py", "tests/test_aws.py", "tests/test_aws_failures.py",
         "tests/test_validate.py", "tests/test_errors.py", "tests/test_adversarial.py", "tests/test_safety.py",
         "tests/test_session.py", "tests/test_plan.py", "tests/test_ledger.py", "tests/test_bundle.py",
         "tests/test_github.py", "tests/test_provenance.py"]
# Tests that judge through another process (validators, a whole `pipec`, the demo) cannot see an in-process
# mutant, and the moto lifecycle test (23 s) would be paid by every surviving mutant: the focused tests of the
# ledger, rollback selection, bundles and sessions speak for those functions here.
_SUBPROCESS_ONLY = ("not checkov and not every_parameter_file and not demo_runs and not hash_seed "
                    "and not killed_at_any_moment and not two_builds_at_once and not does_find_problems "
                    "and not golden_update_switch and not bootstrap_release_deploy")
COPIED = ["tests", "templates", "generated", "pipeline.yaml", "demo", "compiler"]

def _pyproject(modules: list[str]) -> str:
    paths = ", ".join(json.dumps(f"src/{m}") for m in modules)
    tests = ", ".join(json.dumps(t) for t in TESTS)
    return f"""[tool.mutmut]
source_paths = ["src"]
also_copy = ["templates", "generated", "pipeline.yaml", "demo", "compiler"]
only_mutate = [{paths}]
pytest_add_cli_args_test_selection = [{tests}]
pytest_add_cli_args = ["-p", "no:xdist", "-p", "no:cacheprovider", "-q", "-k", {json.dumps(_SUBPROCESS_ONLY)}]
timeout_constant = 10

[tool.pytest.ini_options]
testpaths = ["tests"]
markers = ["slow: runs an external validator or builds a wheel"]
"""


def prepare(modules: list[str]) -> None:
    if SCRATCH.exists():
        shutil.rmtree(SCRATCH)
    (SCRATCH / "src").mkdir(parents=True)
    shutil.copytree(REPO / "compiler" / "pipec", SCRATCH / "src" / "pipec",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # The package's templates (pipec.templates) beside the mutants: else the editable install would read them from
    # the repository, which may change while a run takes its hour.
    shutil.copytree(REPO / "templates", SCRATCH / "src" / "pipec" / "templates",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, SCRATCH / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, SCRATCH / name)
    (SCRATCH / "pyproject.toml").write_text(_pyproject(modules))


def _dotted(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def _patterns(modules: list[str]) -> list[str]:
    """mutmut's names of the mutants in scope: every function of a module, or the SCOPE functions."""
    found = []
    for module in modules:
        functions = SCOPE.get(module)
        if functions is None:
            found.append(f"{_dotted(module)}.*")
        else:
            found += [f"{_dotted(module)}.{f if f.startswith('x') else 'x_' + f}__mutmut_*" for f in functions]
    return found


def _in_scope(key: str, patterns: list[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def run(modules: list[str]) -> int:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(BIN / "mutmut"), "run", "--max-children", str(os.cpu_count() or 2),
                           *_patterns(modules)], cwd=SCRATCH, env=env, check=False)
    return done.returncode


def results(modules: list[str]) -> dict[str, Counter[str]]:
    """killed / survived / ... per module, read from mutmut's own records with mutmut's own reading of them."""
    from mutmut.stats import status_by_exit_code

    found: dict[str, Counter[str]] = {}
    for module in modules:
        meta = SCRATCH / "mutants" / "src" / f"{module}.meta"
        counts: Counter[str] = Counter()
        if meta.exists():
            for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                if _in_scope(key, _patterns([module])):
                    counts[status_by_exit_code[code]] += 1
        found[module] = counts
    return found


def survivors() -> str:
    done = subprocess.run([str(BIN / "mutmut"), "results"], cwd=SCRATCH, capture_output=True, text=True,
                          check=False)
    return done.stdout


def main(argv: list[str]) -> int:
    modules = [m.removeprefix("compiler/") for m in argv] or MODULES
    prepare(modules)
    status = 0
    for module in modules:  # one run per module; mutmut keeps its statistics of the tests between them
        status = run([module]) or status
        print(f"\n{_HEADER}\n{_row(module, results([module])[module])}", flush=True)
    table = results(modules)
    total: Counter[str] = Counter()
    print(f"\n{_HEADER}")
    for module, counts in table.items():
        total += counts
        print(_row(module, counts))
    print(_row("all", total))
    print("\nsurviving mutants (`cd .mutation && mutmut show NAME` prints one):")
    print(survivors())
    return status


_HEADER = f"{'module':<28} {'mutants':>7} {'killed':>7} {'survived':>8} {'other':>6} {'score':>6}"


def _row(name: str, counts: Counter[str]) -> str:
    mutants = sum(counts.values())
    killed = counts["killed"] + counts["timeout"] + counts["caught by type check"]
    other = mutants - killed - counts["survived"]
    score = f"{100 * killed / mutants:.0f}%" if mutants else "-"
    return f"{name:<28} {mutants:>7} {killed:>7} {counts['survived']:>8} {other:>6} {score:>6}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
