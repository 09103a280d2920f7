"""Entry point of the `pipec` command; `pipec --version` answers before anything heavy is imported."""

from __future__ import annotations

import os
import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from pipec import __version__

        sys.stdout.write(f"pipec {__version__}\n")
        return
    # pipec loads no pydantic plugins; skipping the entry-point scan saves start-up time.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from pipec.cli import run

    run()


if __name__ == "__main__":
    main()
