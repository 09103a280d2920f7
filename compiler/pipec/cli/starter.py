"""`pipec init`: write the commented starter pipeline.yaml shipped in the package (validated by the tests)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pipec.diagnostics import fail


def text() -> str:
    return resources.files("pipec.templates").joinpath("starter/pipeline.yaml").read_text(encoding="utf-8")


def write(path: Path, *, force: bool = False) -> None:
    """Write the starter spec; never overwrite an existing file unless forced."""
    if path.exists() and not force:
        raise fail("PC409", f"{path} already exists", hint="pass --force to overwrite it", file=str(path))
    try:
        path.write_text(text(), encoding="utf-8")
    except OSError as exc:
        raise fail("PC410", f"{path} cannot be written: {exc.strerror or exc}", file=str(path)) from None
