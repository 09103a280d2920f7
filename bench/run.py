"""`make bench`: whole-process timings and peak memory of pipec on the example and on generated specs.

Each command runs as its own process, several times after a warm-up; the median wall time and the largest
peak resident memory are reported. Everything happens in a temporary folder: nothing is written into the
repository: the scratch folder lives in the user's cache folder (~/.cache/pipec, or PIPEC_BENCH_DIR) and is
deleted at the end. The targets come from the hardening issue and are printed beside the measurements.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.specgen import spec, text  # noqa: E402

PIPEC = str(Path(sys.executable).parent / "pipec")
RUNS = int(os.environ.get("PIPEC_BENCH_RUNS", "7"))
SIZES = (1, 5, 20, 50, 100, 200)
TARGETS = {("example", "build"): 0.3, ("50 services", "build"): 0.5, ("example", "--version"): 0.15}


def measure(args: list[str], cwd: Path, before: Callable[[int], Path | None] | None = None) -> tuple[float, float]:
    """Median wall seconds and peak MiB of `pipec args` over RUNS runs (after one warm-up); `before` prepares
    each run, untimed, and may name the folder it runs in."""
    walls, peaks = [], []
    for run in range(RUNS + 1):
        if before is not None:
            cwd = before(run) or cwd
        start = time.perf_counter()
        process = subprocess.Popen([PIPEC, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"bench: pipec {' '.join(args)} exited {process.returncode} in {cwd}")
        if run:  # the first run only warms the caches
            walls.append(elapsed)
            peaks.append(usage.ru_maxrss / 1024)
    return statistics.median(walls), max(peaks)


def case(name: str, folder: Path) -> dict[str, tuple[float, float]]:
    generated = folder / "generated"
    spec_file = folder / "pipeline.yaml"
    original = spec_file.read_text()
    changed = original.replace("max: 12", "max: 13") if "max: 12" in original else original.replace(
        "max: 3", "max: 4", 1)

    def fresh(run: int) -> Path:
        # A new folder per run: deleting the previous run's tree would charge its clean-up (on a file system
        # mounted with `discard`, many milliseconds) to the next measurement.
        empty = folder / f"fresh-{run}"
        empty.mkdir()
        shutil.copy(spec_file, empty / "pipeline.yaml")
        return empty

    def one_change(run: int) -> None:  # every run rebuilds after one scaling value changed
        spec_file.write_text(changed if run % 2 else original)

    results = {
        "--version": measure(["--version"], folder),
        "validate": measure(["validate", "pipeline.yaml"], folder),
        "build": measure(["build", "pipeline.yaml"], folder, before=fresh),
        "rebuild": measure(["build", "pipeline.yaml"], folder, before=one_change),
    }
    spec_file.write_text(original)
    subprocess.run([PIPEC, "build", "pipeline.yaml"], cwd=folder, check=True, capture_output=True)
    results["check"] = measure(["check", "pipeline.yaml"], folder)
    results["files"] = (float(sum(1 for p in generated.rglob("*") if p.is_file())), 0.0)
    print(f"  measured {name}", file=sys.stderr, flush=True)
    return results


def main() -> None:
    print(f"pipec bench: median of {RUNS} whole-process runs after a warm-up, and peak resident memory.\n"
          "build: into an empty folder; rebuild: after one scaling value changed; check: nothing changed.",
          flush=True)
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    base = Path(os.environ.get("PIPEC_BENCH_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "pipec")
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=base) as scratch:
        root = Path(scratch)
        example = root / "example"
        example.mkdir()
        shutil.copy(REPO / "pipeline.yaml", example / "pipeline.yaml")
        rows["example"] = case("the example", example)
        for size in SIZES:
            folder = root / f"services-{size}"
            folder.mkdir()
            (folder / "pipeline.yaml").write_text(text(spec(size)))
            rows[f"{size} services"] = case(f"{size} services", folder)
    commands = ["--version", "validate", "build", "rebuild", "check"]
    header = f"{'spec':<14}{'files':>7}" + "".join(f"{c:>18}" for c in commands)
    print(header)
    print("-" * len(header))
    for name, result in rows.items():
        cells = "".join(f"{result[c][0]:>8.3f} s {result[c][1]:>5.0f} MiB" for c in commands)
        print(f"{name:<14}{int(result['files'][0]):>7}{cells}")
    fifty, hundred, two_hundred = (rows[f"{n} services"]["build"][0] for n in (50, 100, 200))
    # Linear growth: each added service costs about the same from 100 to 200 services as from 50 to 100. Both
    # spans add tenths of a second, well above the machine's noise (the small sizes differ by less than it).
    per_service_low = (hundred - fifty) / 50
    per_service_high = (two_hundred - hundred) / 100
    linear = per_service_high <= 1.5 * per_service_low
    print(f"\nbuild from 50 to 200 services: {fifty:.3f} s -> {two_hundred:.3f} s (x{two_hundred / fifty:.2f}); "
          f"cost per added service {per_service_low * 1000:.1f} ms (50..100) and {per_service_high * 1000:.1f} ms "
          f"(100..200): {'linear' if linear else 'growing faster than linear'}")
    print("targets:")
    for (name, command), limit in TARGETS.items():
        value = rows[name][command][0]
        verdict = "met" if value < limit else "MISSED"
        print(f"  pipec {command:<10} {name:<12} {value:.3f} s  (target < {limit} s: {verdict})")


if __name__ == "__main__":
    main()
