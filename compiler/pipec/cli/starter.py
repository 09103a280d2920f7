"""`pipec init`: write the commented starter pipeline.yaml shipped in the package (validated by the tests), pinned
to the pipec that writes it when pip recorded where that came from."""

from __future__ import annotations

import json
import re
from importlib import metadata, resources
from pathlib import Path

from pipec.diagnostics import fail
from pipec.validate.install import COMMIT, SHA256_HEX

# The starter's commented `github.pipec` line, which `write` replaces by the pin it knows.
_PIN_LINE = re.compile(r"^  # pipec: .*$", re.MULTILINE)


def text(pin: str | None = None) -> str:
    """The starter spec; with `pin`, its `github.pipec` set to that requirement."""
    starter = resources.files("pipec.templates").joinpath("starter/pipeline.yaml").read_text(encoding="utf-8")
    if pin is None:
        return starter
    return _PIN_LINE.sub(lambda _: f"  pipec: {json.dumps(pin)}  # the pipec that wrote this file", starter, count=1)


def installed_pin(distribution: metadata.Distribution | None = None) -> str | None:
    """The requirement that installs exactly this pipec again, from where pip says it came (PEP 610's
    direct_url.json): a wheel URL with its sha256, or a git URL at its commit. None when pip recorded neither
    (an index, a local file or folder, an editable checkout): nothing a runner could fetch by content."""
    try:
        record = json.loads((distribution or metadata.distribution("pipec")).read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        return None
    url = record.get("url", "")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return None
    vcs = record.get("vcs_info") or {}
    if vcs.get("vcs") == "git" and COMMIT.fullmatch(vcs.get("commit_id", "")):
        return f"pipec @ git+{url}@{vcs['commit_id']}"
    archive = record.get("archive_info") or {}
    sha256 = (archive.get("hashes") or {}).get("sha256") or archive.get("hash", "").partition("sha256=")[2]
    if SHA256_HEX.fullmatch(sha256 or "") and url.endswith(".whl"):
        return f"pipec @ {url}#sha256={sha256}"
    return None


def write(path: Path, *, force: bool = False, pin: str | None = None) -> None:
    """Write the starter spec (with `github.pipec` set to `pin`, if given); never overwrite an existing file
    unless forced."""
    if path.exists() and not force:
        raise fail("PC409", f"{path} already exists", hint="pass --force to overwrite it", file=str(path))
    try:
        path.write_text(text(pin), encoding="utf-8")
    except OSError as exc:
        raise fail("PC410", f"{path} cannot be written: {exc.strerror or exc}", file=str(path)) from None
