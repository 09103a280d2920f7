"""Entry point of the `pipec` command; `pipec --version` answers before anything heavy is imported.

A pipec run is one short process, and the console command skips two costs made for long-lived ones:
- the cyclic garbage collector is paused: start-up builds tens of thousands of objects (pydantic, typer,
  jinja2), and collecting during it frees nothing. A compile is bounded by the input limits; the AWS commands,
  which may poll for many minutes, turn it back on (`pipec.aws.session`).
- the tear-down: once the command has finished and every other exit handler has run, the output is flushed
  and the process ends without freeing each module and object one by one.
Together they are about a quarter of a build's time. Code that calls the CLI in process (the tests, through
typer's runner) never goes through here.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

_status: list[int] = []  # set once the command has finished; empty means "exit the usual way"


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from pipec import __version__

        sys.stdout.write(f"pipec {__version__}\n")
        return
    # pipec loads no pydantic plugins; skipping the entry-point scan saves start-up time.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    gc.disable()
    atexit.register(_exit_now)  # registered first, so it runs after every other exit handler
    try:
        from pipec.cli.cli import run

        run()
    except SystemExit as stop:
        _status.append(_exit_status(stop.code))
        raise
    except KeyboardInterrupt:  # Ctrl-C while starting up, before the CLI's own handler is in place
        from pipec.diagnostics import ExitCode

        sys.stderr.write("\npipec: interrupted\n")
        _status.append(int(ExitCode.INTERRUPTED))
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None


def _exit_status(code: object) -> int:
    """The status the interpreter would exit with for `sys.exit(code)` (a text code is printed, status 1)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _exit_now() -> None:
    if not _status:  # something unexpected escaped: let the interpreter report it and exit as usual
        return
    status = _status[0]
    for stream in (sys.stdout, sys.stderr):
        if stream is None or stream.closed:
            continue
        try:
            stream.flush()
        except OSError:  # a full disk or a closed pipe: the interpreter itself exits 120 then
            status = status or 120
    os._exit(status)


if __name__ == "__main__":
    main()
