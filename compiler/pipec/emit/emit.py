"""Stage 5, emit: Outputs -> files on disk, atomically, with a manifest of what pipec owns; and `check`.

The generated/ tree is built beside the old one and swapped in with one rename, so a failed or killed build
leaves the old tree and a successful one the new tree. Files pipec does not own are carried over untouched.
Must not decide content.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple, TypeGuard

from pipec import __version__
from pipec.diagnostics import PipecError, fail
from pipec.plan.model import GENERATED
from pipec.render.output import HEADER, Output

MANIFEST = "manifest.json"
_TMP = ".pipec-tmp-"
_OLD = ".pipec-old-"
_LOCK_TIMEOUT = 60.0


class Layout(NamedTuple):
    """Where files go: the repository (the spec's folder) and the generated tree (generated/ by default)."""

    repository: Path
    output: Path
    preview: bool = False  # --output: the files that would go beside the tree go into it, under their own paths

    def tree_path(self, artifact_path: str) -> str:
        """Path of an in-tree output relative to the output folder."""
        return artifact_path[len(GENERATED) + 1:]


class Desired(NamedTuple):
    """The bytes a build wants: the tree (relative to output) and files outside it (relative to repository)."""

    tree: dict[str, bytes]
    external: dict[str, bytes]


@dataclass
class Written:
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def desired(outputs: list[Output], layout: Layout, spec_sha: str) -> Desired:
    """The bytes of every owned file, plus the manifest that lists them."""
    tree: dict[str, bytes] = {}
    external: dict[str, bytes] = {}
    for output in sorted(outputs, key=lambda o: o.path):
        _check_relative(output.path)
        data = output.text.encode("utf-8")
        if output.in_tree:
            tree[layout.tree_path(output.path)] = data
        elif layout.preview:  # a preview never writes beside the spec: .github/workflows/... inside the folder
            tree[output.path] = data
        else:
            external[output.path] = data
    manifest = {
        "comment": HEADER,
        "generator": f"pipec {__version__}",
        "spec": {"path": "pipeline.yaml", "sha256": spec_sha},
        "files": {path: sha256(data) for path, data in tree.items()},
        "external": {path: sha256(data) for path, data in external.items()},
    }
    tree[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return Desired(tree, external)


def _check_relative(path: str) -> None:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or str(pure) != path or not path:
        raise fail("PC501", f"the output path {path!r} would escape its folder",
                   hint="names in pipeline.yaml become file names; keep them plain")


# ---------------------------------------------------------------- reading what is on disk


class Owned(NamedTuple):
    """What the manifest on disk says pipec wrote last time."""

    tree: dict[str, str]
    external: dict[str, str]
    exists: bool


def read_owned(layout: Layout) -> Owned:
    path = layout.output / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Owned({}, {}, False)
    except (OSError, ValueError):
        return Owned({}, {}, True)
    files = manifest.get("files", {}) if isinstance(manifest, dict) else None
    external = manifest.get("external", {}) if isinstance(manifest, dict) else None
    if not (_listing(files) and _listing(external)):
        return Owned({}, {}, True)  # a broken manifest owns nothing but itself; the build rewrites it
    return Owned(dict(files), dict(external), True)


def _listing(value: object) -> TypeGuard[dict[str, str]]:
    """A manifest's list of files: path -> sha256, all text."""
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


# ---------------------------------------------------------------- writing


def write(outputs: list[Output], layout: Layout, spec_sha: str) -> Written:
    """Make the output match the outputs exactly; unchanged output writes nothing."""
    want = desired(outputs, layout, spec_sha)
    _refuse_symlinks(layout)
    _refuse_shared_output(layout)
    _refuse_escapes(want, layout)
    with _locked(layout.output):
        _recover(layout.output)
        _refuse_adopting(layout)
        owned = read_owned(layout)
        same = _unchanged(want, layout)
        _refuse_foreign_overwrites(want, owned, layout, same)
        result = Written()
        if _tree_changes(want, owned, layout, same, result):
            _swap_in(want, owned, layout, same)
        _write_external(want, owned, layout, result)
        return result


def _unchanged(want: Desired, layout: Layout) -> set[str]:
    """The tree files already on disk with exactly the wanted bytes."""
    if not layout.output.is_dir():
        return set()
    return {path for path, data in want.tree.items() if _read(layout.output / path) == data}


def _tree_changes(want: Desired, owned: Owned, layout: Layout, same: set[str], result: Written) -> bool:
    changed = False
    for path in want.tree:
        if path in same:
            result.unchanged += 1
        else:  # the manifest too: it is a file the build wrote
            changed = True
            result.changed.append(_shown(layout, "tree", path))
    for path in owned.tree:
        if path not in want.tree and (layout.output / path).exists():
            changed = True
            result.removed.append(_shown(layout, "tree", path))
    return changed


def _refuse_symlinks(layout: Layout) -> None:
    if layout.output.is_symlink():
        raise fail("PC502", f"{layout.output} is a symbolic link; pipec writes only to a real folder",
                   hint="replace the link with a folder, or pass --output")


def _refuse_shared_output(layout: Layout) -> None:
    """pipec replaces its output folder as a whole, so the folder must be one of its own: not a file, and not a
    folder that holds the spec (the repository itself, or one above it)."""
    output = layout.output
    if output.exists() and not output.is_dir():
        raise fail("PC502", f"{output} is a file; pipec writes the generated tree into a folder of its own",
                   hint="pass --output with a folder, such as generated")
    real, repository = output.resolve(), layout.repository.resolve()
    if real == repository or real in repository.parents:
        raise fail("PC502", f"{output} holds pipeline.yaml itself; pipec replaces its output folder as a whole",
                   hint="pass --output with a folder of its own, such as generated")


def _refuse_adopting(layout: Layout) -> None:
    """A folder that already holds files is pipec's only if a build left its manifest there."""
    output = layout.output
    if output.is_dir() and not (output / MANIFEST).exists() and any(output.iterdir()):
        raise fail("PC502", f"{output} already holds files, and no pipec build made it (it has no {MANIFEST})",
                   hint="pipec replaces its output folder as a whole: move those files away, or pass --output "
                        "with a new folder")


def _refuse_escapes(want: Desired, layout: Layout) -> None:
    """A file outside generated/ must stay inside the repository, even through symbolic links."""
    root = layout.repository.resolve()
    for path in want.external:
        real = (layout.repository / path).resolve()
        if root not in real.parents:
            raise fail("PC506", f"{path} would be written to {real}, outside the repository",
                       hint="a folder on the way is a symbolic link that leads out; replace it with a folder")


def _refuse_foreign_overwrites(want: Desired, owned: Owned, layout: Layout, same: set[str]) -> None:
    conflicts = [layout.output / p for p in want.tree if p != MANIFEST and p not in owned.tree
                 and p not in same and (layout.output / p).exists()]
    conflicts += [layout.repository / p for p in want.external if p not in owned.external
                  and (layout.repository / p).exists() and _read(layout.repository / p) != want.external[p]]
    if conflicts:
        shown = ", ".join(str(c) for c in conflicts[:3]) + (" ..." if len(conflicts) > 3 else "")
        raise fail("PC507", f"pipec would overwrite file(s) it did not write: {shown}",
                   hint="move or delete them; pipec never replaces a file its manifest does not list")


def _umask() -> int:
    """The process's umask: from /proc on Linux (reading it elsewhere means setting it for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _swap_in(want: Desired, owned: Owned, layout: Layout, same: set[str]) -> None:
    """Build the new tree beside the old one, then exchange them with one rename. Files that do not change are
    hard-linked from the old tree, so they keep their identity (and cost no writing)."""
    import shutil

    output = layout.output
    staging: Path | None = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}{_TMP}", dir=output.parent))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700: the folder is the user's generated/
        folders: set[Path] = set()
        for path, data in want.tree.items():
            target = staging / path
            if target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.add(target.parent)
            if path in same:
                os.link(output / path, target)
            else:
                target.write_bytes(data)
        if output.exists():
            _carry_foreign(output, staging, set(owned.tree) | {MANIFEST})
            _exchange(staging, output)
        else:
            os.rename(staging, output)
            return
    except OSError as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise _os_error(exc, output) from None
    shutil.rmtree(staging, ignore_errors=True)  # now holds the old tree


def _carry_foreign(old: Path, new: Path, owned: set[str]) -> None:
    """Hard-link every file pipec does not own into the new tree, so it survives untouched."""
    for path in sorted(old.rglob("*")):
        relative = path.relative_to(old).as_posix()
        if relative in owned or (path.is_dir() and not path.is_symlink()):
            if path.is_dir() and not any(path.iterdir()):
                (new / relative).mkdir(parents=True, exist_ok=True)
            continue
        target = new / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            os.symlink(os.readlink(path), target)
        else:
            os.link(path, target)


_RENAME_EXCHANGE = 2


def _exchange(new: Path, current: Path) -> None:
    """Atomically swap two folders (Linux renameat2); elsewhere, two renames with recovery."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(current), _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(current))
    old = current.parent / f".{current.name}{_OLD}{os.getpid()}"
    os.rename(current, old)
    os.rename(new, current)
    os.rename(old, new)


def _recover(output: Path) -> None:
    """Finish or undo what a killed build left: restore a moved-away tree, delete staging folders."""
    import shutil

    parent = output.parent
    if not parent.exists():
        return
    leftovers = sorted(parent.glob(f".{output.name}{_OLD}*"))
    if leftovers and not output.exists():
        os.rename(leftovers.pop(), output)
    for path in [*leftovers, *parent.glob(f".{output.name}{_TMP}*")]:
        shutil.rmtree(path, ignore_errors=True)


class _locked:  # noqa: N801 - used like a function: `with _locked(output):`
    """Hold an exclusive lock on the output's parent folder, so two builds never interleave. (A class, not a
    generator: mutation testing skips decorated functions.)"""

    def __init__(self, output: Path) -> None:
        self.parent = output.parent
        self.fd = -1

    def __enter__(self) -> None:
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.parent, os.O_RDONLY)
        except OSError as exc:
            raise _os_error(exc, self.parent) from None
        try:
            self._wait()
        except BaseException:
            os.close(self.fd)
            raise

    def _wait(self) -> None:
        deadline = time.monotonic() + _LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise fail("PC504", f"another pipec build has held {self.parent} for {_LOCK_TIMEOUT:.0f}s",
                               hint="wait for it to finish") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _write_external(want: Desired, owned: Owned, layout: Layout, result: Written) -> None:
    """Files outside generated/ (workflows in .github/workflows): each replaced atomically."""
    try:
        for path, data in want.external.items():
            target = layout.repository / path
            if _read(target) == data:
                result.unchanged += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{target.name}{_TMP}", dir=target.parent)
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it 0600: a workflow is an ordinary file
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, target)
            result.changed.append(path)
        for path, digest in owned.external.items():
            target = layout.repository / path
            on_disk = _read(target)
            # A file pipec no longer generates goes, unless someone edited it since (then it is theirs).
            if path not in want.external and on_disk is not None and sha256(on_disk) == digest:
                target.unlink()
                result.removed.append(path)
    except OSError as exc:
        raise _os_error(exc, layout.repository) from None


def _os_error(exc: OSError, where: Path) -> PipecError:
    if exc.errno == errno.ENOSPC:
        return fail("PC503", f"the disk is full while writing {where}; nothing was changed",
                    hint="free some space and run `pipec build` again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return fail("PC508", f"{exc.filename or where} cannot be written: {exc.strerror}",
                    hint="check the folder's permissions; nothing was changed")
    return fail("PC508", f"{exc.filename or where}: {exc.strerror or exc}; nothing was changed")


# ---------------------------------------------------------------- check


class Finding(NamedTuple):
    path: str
    status: str  # missing, stale, edited, extra
    diff: str = ""


class CheckOutcome(NamedTuple):
    findings: list[Finding]
    checked: int

    @property
    def ok(self) -> bool:
        return not self.findings

    def report(self) -> str:
        if self.ok:
            return f"pipec: {self.checked} generated files match pipeline.yaml\n"
        lines = [f"pipec: {len(self.findings)} generated file(s) do not match pipeline.yaml:"]
        for finding in self.findings:
            lines.append(f"  {finding.status:8} {finding.path}  ({_EXPLAIN[finding.status]})")
        for finding in self.findings:
            if finding.diff:
                lines.append("")
                lines.append(finding.diff.rstrip("\n"))
        lines += ["", "Edit pipeline.yaml (never the generated files) and run `pipec build`."]
        return "\n".join(lines) + "\n"


_EXPLAIN = {
    "missing": "pipec generates it, but it is not there",
    "stale": "pipeline.yaml changed since it was generated",
    "edited": "someone edited it by hand",
    "extra": "pipec no longer generates it",
}
_DIFF_LINES = 40


def check(outputs: list[Output], layout: Layout, spec_sha: str) -> CheckOutcome:
    """Compare what a build would write with what is on disk, without writing anything."""
    want = desired(outputs, layout, spec_sha)
    owned = read_owned(layout)
    findings: list[Finding] = []
    roots = {"tree": layout.output, "external": layout.repository}
    for kind, files, recorded in (("tree", want.tree, owned.tree), ("external", want.external, owned.external)):
        for path, data in files.items():
            if kind == "tree" and path == MANIFEST:
                continue
            on_disk = _read(roots[kind] / path)
            shown = _shown(layout, kind, path)
            if on_disk is None:
                findings.append(Finding(shown, "missing"))
            elif on_disk != data:
                status = "edited" if recorded.get(path) not in (None, sha256(on_disk)) else "stale"
                findings.append(Finding(shown, status, _diff(shown, on_disk, data)))
        for path in recorded:
            if path not in files and (roots[kind] / path).exists():
                findings.append(Finding(_shown(layout, kind, path), "extra"))
    manifest_on_disk = _read(layout.output / MANIFEST)
    if not findings and manifest_on_disk != want.tree[MANIFEST]:
        findings.append(Finding(_shown(layout, "tree", MANIFEST), "stale"))
    return CheckOutcome(findings, len(want.tree) + len(want.external))


def _shown(layout: Layout, kind: str, path: str) -> str:
    if kind == "external":
        return path
    try:
        return (layout.output / path).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return (layout.output / path).as_posix()


def _diff(path: str, old: bytes, new: bytes) -> str:
    import difflib

    old_lines = old.decode("utf-8", errors="replace").splitlines(keepends=True)
    new_lines = new.decode("utf-8", errors="replace").splitlines(keepends=True)
    lines = list(difflib.unified_diff(old_lines, new_lines, f"{path} (on disk)", f"{path} (from pipeline.yaml)",
                                      n=2))
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"... {len(lines) - _DIFF_LINES} more diff lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def read_tree(layout: Layout, outside: frozenset[str] = frozenset()) -> dict[str, str]:
    """The text of every file the manifest on disk owns, keyed like outputs (for `pipec diff`); `outside` are the
    outputs that a preview (--output) keeps in its folder under their own paths."""
    owned = read_owned(layout)
    outside = outside if layout.preview else frozenset()
    found = {(path if path in outside else f"{GENERATED}/{path}"): _read(layout.output / path) for path in owned.tree}
    found |= {path: _read(layout.repository / path) for path in owned.external}
    return {path: data.decode("utf-8", errors="replace") for path, data in found.items() if data is not None}
