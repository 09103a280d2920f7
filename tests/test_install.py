"""PC222: what the workflows install to run pipec, judged as pip on a fresh runner takes it; and `pipec init`'s
pin, read from where pip says this pipec came from (PEP 610)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from pipec.cli.starter import installed_pin, text
from pipec.diagnostics import Severity
from pipec.load.load import load_bytes
from pipec.validate.install import problem
from pipec.validate.validate import validate

SHA = "0123456789abcdef" * 4
COMMIT = "0123456789abcdef0123456789abcdef01234567"
WHEEL = "https://github.com/o/pipec/releases/download/v0.1.0/pipec-0.1.0-py3-none-any.whl"


@pytest.mark.parametrize("requirement", [
    f"pipec @ {WHEEL}#sha256={SHA}",
    f"pipec@{WHEEL}#sha256={SHA}",
    f"{WHEEL}#sha256={SHA}",
    f"{WHEEL}#md5=00&sha256={SHA}",
    f"http://127.0.0.1:8000/pipec-0.1.0-py3-none-any.whl#sha256={SHA}",
    f"Pipec @ https://h/PIPEC-0.1.0-1-py3-none-any.whl#sha256={SHA}",  # a build tag; names compare canonically
    f"pipec @ git+https://github.com/o/pipec@{COMMIT}",
    f"git+https://github.com/o/pipec@{COMMIT}#egg=pipec",
    f"pipec @ git+https://github.com/o/pipec@{SHA}",  # a SHA-256 repository
])
def test_a_requirement_pinned_by_content_passes(requirement: str) -> None:
    assert problem(requirement, "0.1.0") is None


@pytest.mark.parametrize(("requirement", "says"), [
    ("pipec==0.1.0", "from PyPI, which has no pipec, and a version alone is not pinned"),
    ("pipec", "from PyPI, which has no pipec"),
    ("pipec[aws]>=0.1", "from PyPI, which has no pipec"),
    ("requests==2.0", "installs requests, not pipec"),
    (f"other @ {WHEEL}#sha256={SHA}", "installs other, not pipec"),
    (WHEEL, "has no #sha256= of the wheel"),
    (f"{WHEEL}#md5=00", "has no #sha256= of the wheel"),
    (f"{WHEEL}#sha256={SHA[:-1]}", "has no #sha256= of the wheel"),
    (f"{WHEEL}#sha256={SHA}0", "has no #sha256= of the wheel"),
    (f"https://h/pipec-0.2.0-py3-none-any.whl#sha256={SHA}", "is pipec 0.2.0, but this pipeline is built by "
     "pipec 0.1.0"),
    (f"https://h/requests-0.1.0-py3-none-any.whl#sha256={SHA}", "is a wheel of requests, not of pipec"),
    (f"https://h/pipec-0.1.0.tar.gz#sha256={SHA}", "is a source archive"),
    (f"https://h/download?file=pipec#sha256={SHA}", "does not end in a wheel's file name"),
    (f"file:///home/me/dist/pipec-0.1.0-py3-none-any.whl#sha256={SHA}", "a file on this machine"),
    (f"ftp://h/pipec-0.1.0-py3-none-any.whl#sha256={SHA}", "a ftp: URL, which pip does not download"),
    ("pipec @ git+https://github.com/o/pipec@v0.1.0", "names v0.1.0, which can be moved"),
    ("pipec @ git+https://github.com/o/pipec@main", "names main, which can be moved"),
    (f"pipec @ git+https://github.com/o/pipec@{COMMIT[:12]}", "can be moved"),  # a short hash can grow ambiguous
    ("pipec @ git+https://github.com/o/pipec", "names no revision"),
    ("pipec @ git+https://user@github.com/o/pipec", "names no revision"),  # the @ of the user is not a revision
    (f"pipec @ git+ssh://git@github.com/o/pipec@{COMMIT}", "clones over SSH"),
    (f"pipec @ hg+https://h/pipec@{COMMIT}", "is a hg URL"),
    ("services/tools/pipec.whl", "is not a URL or a name with versions"),
])
def test_a_requirement_a_runner_cannot_install_as_written_or_not_pinned_is_named(requirement: str,
                                                                                 says: str) -> None:
    found = problem(requirement, "0.1.0")
    assert found is not None and says in found and f"`{requirement}`" in found


def _spec(pipec: str | None) -> str:
    lines = text().splitlines(keepends=True)
    at = lines.index("github:\n") + 1
    if pipec is not None:
        lines.insert(at, f"  pipec: {json.dumps(pipec)}\n")
    return "".join(lines)


def test_the_warning_stands_at_the_setting_or_the_section_and_the_spec_stays_valid() -> None:
    unset = validate(load_bytes(_spec(None).encode(), "pipeline.yaml"))
    [warning] = unset.warnings
    assert (warning.code, warning.severity, warning.line, warning.column) == (
        "PC222", Severity.WARNING, _spec(None).splitlines().index("github:") + 1, 1)
    assert warning.message.startswith("github.pipec is not set, so the workflows install `pipec==0.1.0`")
    assert "pipec init" in (warning.hint or "")

    tag = "pipec @ git+https://github.com/o/pipec@v0.1.0"
    [warning] = validate(load_bytes(_spec(tag).encode(), "pipeline.yaml")).warnings
    assert (warning.code, warning.line, warning.column) == ("PC222", _spec(None).splitlines().index("github:") + 2,
                                                            10)
    assert validate(load_bytes(_spec(f"pipec @ {WHEEL}#sha256={SHA}").encode(), "pipeline.yaml")).warnings == ()


def test_a_requirement_is_one_line_of_pip_syntax() -> None:
    from pipec.diagnostics import PipecError

    for bad in ("pipec==0.1.0; rm -rf /", "pipec==0.1.0\n", "pipec  @ x", "-e .", "pipec==0.1.0 --index-url=x"):
        with pytest.raises(PipecError) as raised:
            validate(load_bytes(_spec(bad).encode(), "pipeline.yaml"))
        assert [d.code for d in raised.value.diagnostics] == ["PC104"], bad


class _Installed(metadata.Distribution):
    """A distribution whose direct_url.json is the one given, as pip writes it (PEP 610)."""

    def __init__(self, direct_url: object | None) -> None:
        self._direct_url = direct_url

    def read_text(self, filename: str) -> str | None:
        if filename != "direct_url.json" or self._direct_url is None:
            return None
        return self._direct_url if isinstance(self._direct_url, str) else json.dumps(self._direct_url)

    def locate_file(self, path: str | Path) -> Path:  # type: ignore[override]
        return Path(path)


@pytest.mark.parametrize(("direct_url", "pin"), [
    ({"url": WHEEL, "archive_info": {"hashes": {"sha256": SHA}, "hash": f"sha256={SHA}"}},
     f"pipec @ {WHEEL}#sha256={SHA}"),
    ({"url": WHEEL, "archive_info": {"hash": f"sha256={SHA}"}}, f"pipec @ {WHEEL}#sha256={SHA}"),  # pip < 22.3
    ({"url": "https://github.com/o/pipec", "vcs_info": {"vcs": "git", "commit_id": COMMIT,
                                                        "requested_revision": "v0.1.0"}},
     f"pipec @ git+https://github.com/o/pipec@{COMMIT}"),
    ({"url": WHEEL, "archive_info": {}}, None),  # no hash recorded: pip fetched whatever the URL served
    ({"url": WHEEL, "archive_info": {"hashes": {"md5": "00"}}}, None),
    ({"url": "https://h/pipec-0.1.0.tar.gz", "archive_info": {"hashes": {"sha256": SHA}}}, None),
    ({"url": "file:///home/me/pipec-0.1.0-py3-none-any.whl", "archive_info": {"hashes": {"sha256": SHA}}}, None),
    ({"url": "file:///home/me/pipec", "dir_info": {"editable": True}}, None),
    ({"url": "https://github.com/o/pipec", "vcs_info": {"vcs": "hg", "commit_id": COMMIT}}, None),
    ({"url": "https://github.com/o/pipec", "vcs_info": {"vcs": "git", "commit_id": "main"}}, None),
    (None, None),  # from an index: pip records nothing
    ("{not json", None),
])
def test_init_pins_the_pipec_that_runs_when_pip_recorded_its_content(direct_url: object | None,
                                                                     pin: str | None) -> None:
    assert installed_pin(_Installed(direct_url)) == pin
    if pin is not None:
        spec = text(pin)
        assert f"  pipec: {json.dumps(pin)}" in spec
        assert validate(load_bytes(spec.encode(), "pipeline.yaml")).warnings == ()
