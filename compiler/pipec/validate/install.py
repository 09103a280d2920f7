"""What the workflows install to run pipec, judged as pip on a fresh GitHub runner would take it (PC222).

pipec is not published on PyPI, so a requirement by name and version (`pipec==0.1.0`, the default) cannot be
installed on a runner as written; and the jobs that install it go on to assume AWS roles, so what they install
must be pinned by content: a wheel URL with its sha256 (pip checks a `#sha256=` fragment and refuses other
bytes) or a git URL at a full commit (git names the tree by its hash). A tag or a branch can be moved, a URL
without a hash serves whatever it holds when the job runs, and a source archive is built on the runner with
whatever build tools pip fetches then.
"""

from __future__ import annotations

import re

# PEP 508's `name @ url` (spaces optional), or a URL alone.
_DIRECT = re.compile(r"(?:(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*) ?@ ?)?(?P<url>[a-z][a-z0-9+.-]*://[^#]+)(?:#(?P<fragment>.*))?")
_BY_NAME = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?(?P<versions>[=<>!~][^@]*)?")
COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 object names, in full
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# A wheel's file name: name-version(-build)?-python-abi-platform.whl (PEP 427).
_WHEEL = re.compile(r"(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl")
_SOURCE = (".tar.gz", ".zip", ".tar.bz2", ".tgz")

PINNED_FORMS = ("pin it by content: the wheel by sha256, "
                "`pipec @ https://HOST/pipec-VERSION-py3-none-any.whl#sha256=<64 hex>`, or a git commit, "
                "`pipec @ git+https://github.com/OWNER/pipec@<40-hex commit>`; `pipec init` writes the one this "
                "pipec was installed from")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def problem(requirement: str, version: str, *, default: bool = False) -> str | None:
    """What stops the workflows installing exactly this pipec as `requirement` says, or None.

    `version` is the running pipec's: generated files are made by it, and the pull-request check reruns the
    installed one over them."""
    direct = _DIRECT.fullmatch(requirement)
    if direct is None:
        return _by_name(requirement, version, default=default)
    name, url, fragment = direct["name"], direct["url"], direct["fragment"] or ""
    if name is not None and _canonical(name) != "pipec":
        return f"`{requirement}` installs {name}, not pipec"
    scheme = url.split("://", 1)[0]
    if scheme.startswith("git+"):
        return _git(requirement, url, scheme)
    if "+" in scheme:
        return f"`{requirement}` is a {scheme.split('+')[0]} URL: pipec cannot tell whether it names one revision"
    if scheme == "file":
        return f"`{requirement}` is a file on this machine, which a GitHub runner does not have"
    if scheme not in ("http", "https"):
        return f"`{requirement}` is a {scheme}: URL, which pip does not download"
    filename = url.rstrip("/").rsplit("/", 1)[-1]
    if filename.endswith(_SOURCE):
        return (f"`{requirement}` is a source archive: every runner would build it with whatever build tools pip "
                "fetches at that moment")
    wheel = _WHEEL.fullmatch(filename)
    if wheel is None:
        return f"`{requirement}` does not end in a wheel's file name (pipec-VERSION-py3-none-any.whl)"
    if _canonical(wheel["name"]) != "pipec":
        return f"`{requirement}` is a wheel of {wheel['name']}, not of pipec"
    if not any(part.startswith("sha256=") and SHA256_HEX.fullmatch(part[7:]) for part in fragment.split("&")):
        return (f"`{requirement}` has no #sha256= of the wheel: every job installs whatever the URL serves when "
                "it runs, and then assumes an AWS role with it")
    return _other_version(requirement, wheel["version"], version)


def _git(requirement: str, url: str, scheme: str) -> str | None:
    if scheme == "git+ssh" or url.startswith("git+git@"):
        return f"`{requirement}` clones over SSH, and a GitHub runner has no SSH key"
    path = url.split("://", 1)[1]
    revision = path.rsplit("@", 1)[1] if "@" in path.split("/", 1)[-1] else None
    if revision is None:
        return f"`{requirement}` names no revision: every job installs whatever the default branch holds then"
    if not COMMIT.fullmatch(revision):
        return (f"`{requirement}` names {revision}, which can be moved to other code: every job installs what it "
                "points at when the job runs")
    return None


def _by_name(requirement: str, version: str, *, default: bool) -> str | None:
    found = _BY_NAME.fullmatch(requirement)
    if found is None:
        return f"`{requirement}` is not a URL or a name with versions that pip installs from an index"
    if _canonical(found["name"]) != "pipec":
        return f"`{requirement}` installs {found['name']}, not pipec"
    what = "github.pipec is not set, so the workflows install" if default else "the workflows install"
    return (f"{what} `{requirement}` from PyPI, which has no pipec, and a version alone is not pinned by content "
            "(the jobs then assume AWS roles)")


def _other_version(requirement: str, theirs: str, version: str) -> str | None:
    if theirs == version:
        return None
    return (f"`{requirement}` is pipec {theirs}, but this pipeline is built by pipec {version}: the pull-request "
            "check would compare files made by one version with what the other makes")
