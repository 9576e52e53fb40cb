"""Publish a period's report files as one unit: readers see the whole previous set or the whole new one.

The layout follows Kubernetes' AtomicWriter (kubernetes/pkg/volume/util/atomic_writer.go, the writer of
ConfigMap and Secret volumes): every run is staged in its own hidden folder, and one rename of a symlink
switches the set. In the output directory:

    .reports/<run-id>/…            the files of one run, with its manifest.json (name → sha256)
    .reports/current -> <run-id>   the published run: one os.replace switches it
    usage.csv -> .reports/current/usage.csv
    invoices/<unit>.html -> ../.reports/current/invoices/<unit>.html

`out` and `out/invoices` stay real directories, so files people put there (a signed PDF, an approval,
a cover letter) are never touched: a run deletes only files listed in its own manifests, and only links
that point into `.reports/current/`. A run killed at any point leaves the previous set (or the new one,
once switched) whole; the next run removes its staging folder and repairs the links. SIGINT and SIGTERM
are held back while links and the pointer change, and a lock keeps two runs from writing one folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from ..errors import OutputError

STATE_DIR = ".reports"
CURRENT = "current"
MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"
LOCK_FILE = "lock"
MANIFEST_FORMAT = 1


def link_target(name: str) -> str:
    """The relative link a published file `name` (posix, relative to out) is: into .reports/current."""
    depth = name.count("/")
    return "../" * depth + f"{STATE_DIR}/{CURRENT}/{name}"


def manifest_files(out: Path) -> list[str] | None:
    """Names (relative, posix) of the published report set in `out`, or None if `out` holds no set
    published this way (an older layout or no run yet). Readers use this instead of globbing, so files
    people added to the folder are never mistaken for reports."""
    manifest = Path(out) / STATE_DIR / CURRENT / MANIFEST
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise OutputError(f"{manifest} cannot be read ({e}): rerun the period to republish its reports") from e
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, dict):
        raise OutputError(f"{manifest} lists no files: rerun the period to republish its reports")
    return sorted(files)


def publish(out: Path, stage: Callable[[Path], list[str]]) -> list[Path]:
    """Stage a new report set with `stage(folder)` (it writes files into the folder and returns their
    relative names), then switch it in; returns the published paths in `out`, sorted.

    On any failure the previous set stays published and the staging folder is removed."""
    with _folder_lock(out, for_run=False):
        recover(out)
        return _publish(Path(out), Path(out) / STATE_DIR, stage)


_reserved: set[Path] = set()
"""Report folders whose lock a run of this process holds and its one publish may use."""
_reserved_guard = threading.Lock()


def run_lock(out: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the run lock of the report folder `out` (created if need be) for a whole run; a second run on the
    folder is refused at once. Taken when a run starts, before Prometheus is asked, so two runs never both work
    for minutes and one of them fails only when it publishes. The run's publish uses the lock it holds."""
    return _folder_lock(out, for_run=True)


@contextlib.contextmanager
def _folder_lock(out: Path, *, for_run: bool) -> Iterator[None]:
    """The folder's lock; a publish inside a run's lock uses it (once), anything else takes its own. A folder
    this created and nothing was published into is removed again."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file: give a directory for the reports")
    key = out.resolve()
    with _reserved_guard:
        inside_run = not for_run and key in _reserved
        _reserved.discard(key)
    if inside_run:
        try:
            yield
        finally:
            with _reserved_guard:
                _reserved.add(key)
        return
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        state = out / STATE_DIR
        state.mkdir(exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {out}: {e.strerror}; check the path and its permissions") from e
    try:
        with _locked(state, out):
            if for_run:
                with _reserved_guard:
                    _reserved.add(key)
            try:
                yield
            finally:
                if for_run:
                    with _reserved_guard:
                        _reserved.discard(key)
    except BaseException:
        if created:
            _remove_if_unused(out)
        raise
    if created and for_run:
        _remove_if_unused(out)


def _publish(out: Path, state: Path, stage: Callable[[Path], list[str]]) -> list[Path]:
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
    staging = state / f"{STAGING_PREFIX}{run_id}"
    run_dir = state / run_id
    try:
        staging.mkdir()
        names = sorted(stage(staging))
        for name in names:
            _check_name(name)
        manifest = {"format": MANIFEST_FORMAT, "files": {name: _sha256(staging / name) for name in names}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _sync_tree(staging)
        os.rename(staging, run_dir)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"cannot stage the reports in {staging}: {e}; check free space and permissions") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = manifest_files(out)
    try:
        replace_legacy = _check_targets(out, names, legacy=previous is None)
        with _signals_held():
            for name in names:
                path = out / name
                if not path.is_symlink() and name not in replace_legacy:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(link_target(name), path)  # dangles until the switch below
            old_run = _current_run(state)
            _switch(state, run_id)
            for name in sorted(replace_legacy):
                _replace_with_link(out / name, link_target(name))
            for name in sorted(set(previous or ()) - set(names)):
                _unlink_ours(out / name, name)
            _fsync_dir(out)
    except OSError as e:
        _undo(out, state, run_id)
        raise OutputError(f"cannot publish the reports in {out}: {e}; check free space and permissions") from e
    except BaseException:
        _undo(out, state, run_id)
        raise
    if old_run is not None and old_run != run_id:
        _discard_run(state, old_run)
    return [out / name for name in names]


def _undo(out: Path, state: Path, run_id: str) -> None:
    """After a failure during the switch: if the new set was not switched in, drop it and its links."""
    with contextlib.suppress(OSError):
        if _current_run(state) != run_id:
            recover(out)


def recover(out: Path) -> None:
    """Finish or undo what a killed run left: staging folders, runs that are not current, a stray
    pointer, links missing from or left over from the current set."""
    state = out / STATE_DIR
    current = _current_run(state)
    for entry in sorted(state.iterdir()):
        if entry.name in (CURRENT, LOCK_FILE) or entry.name == current:
            continue
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_symlink():
            entry.unlink()  # a pointer made but never renamed onto `current`
        elif entry.is_dir():
            _discard_run(state, entry.name)
    names = set(manifest_files(out) or ())
    for path in _our_links(out):
        name = path.relative_to(out).as_posix()
        if name not in names:
            path.unlink()
    for name in sorted(names):
        path = out / name
        if not path.is_symlink() and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link_target(name), path)


# ------------------------------------------------------------------ pieces


def _check_name(name: str) -> None:
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts or parts[0] in (STATE_DIR, MANIFEST):
        raise OutputError(f"report name {name!r} would leave the report folder")


def _check_targets(out: Path, names: list[str], *, legacy: bool) -> set[str]:
    """Names whose place in `out` holds a real file to be replaced by a link (reports of an earlier
    layout: only when no set was ever published here). Anything else in the way is an error."""
    replace = set()
    for name in names:
        path = out / name
        if path.is_symlink():
            if os.readlink(path) == link_target(name):
                continue
            raise OutputError(
                f"{path} is a link this tool did not make: move it away, then rerun (the reports are unchanged)"
            )
        if not path.exists() and not _parent_blocked(out, name):
            continue
        if legacy and path.is_file():
            replace.add(name)
            continue
        raise OutputError(
            f"{path} is in the way of a report and was not written by an earlier run: "
            "move it away, then rerun (the reports are unchanged)"
        )
    return replace


def _parent_blocked(out: Path, name: str) -> bool:
    parent = (out / name).parent
    while parent != out:
        if parent.exists() and not parent.is_dir():
            return True
        parent = parent.parent
    return False


def _current_run(state: Path) -> str | None:
    try:
        return os.readlink(state / CURRENT)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.EINVAL:  # `current` is not a link: not ours
            raise OutputError(f"{state / CURRENT} is not a link: remove {state} and rerun") from e
        raise


def _switch(state: Path, run_id: str) -> None:
    pointer = state / f"{CURRENT}.{run_id}"
    os.symlink(run_id, pointer)
    os.replace(pointer, state / CURRENT)
    _fsync_dir(state)


def _replace_with_link(path: Path, target: str) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.link")
    os.symlink(target, temporary)
    os.replace(temporary, path)


def _unlink_ours(path: Path, name: str) -> None:
    """Remove a link of an earlier set, only if it still is the link a run made."""
    if path.is_symlink() and os.readlink(path) == link_target(name):
        path.unlink()


def _our_links(out: Path) -> Iterator[Path]:
    """Links in `out` (outside .reports) that point into .reports/current/ the way runs make them."""
    for directory, dirnames, filenames in os.walk(out):
        base = Path(directory)
        if base == out and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        for name in [*filenames, *dirnames]:
            path = base / name
            if path.is_symlink():
                relative = path.relative_to(out).as_posix()
                if os.readlink(path) == link_target(relative):
                    yield path


def _discard_run(state: Path, run_id: str) -> None:
    """Delete the files a run's manifest lists (and the manifest), then its folders if empty."""
    run_dir = state / run_id
    try:
        document = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        names = list(document["files"])
    except (OSError, ValueError, KeyError, TypeError):
        names = []
    for name in names:
        with contextlib.suppress(FileNotFoundError, ValueError):
            _check_name(name)
            (run_dir / name).unlink()
    with contextlib.suppress(FileNotFoundError):
        (run_dir / MANIFEST).unlink()
    for directory, _, _ in sorted(os.walk(run_dir), key=lambda item: -len(item[0])):
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _remove_if_unused(out: Path) -> None:
    """Undo creating `out` when nothing was published into it."""
    state = out / STATE_DIR
    with contextlib.suppress(OSError):
        if _current_run(state) is None:
            (state / LOCK_FILE).unlink(missing_ok=True)
            os.rmdir(state)
            os.rmdir(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sync_tree(root: Path) -> None:
    """fsync every file and folder under `root`, so a crash after the switch finds whole files."""
    for directory, _, filenames in os.walk(root):
        for name in filenames:
            descriptor = os.open(Path(directory) / name, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _fsync_dir(Path(directory))


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _locked(state: Path, out: Path) -> Iterator[None]:
    try:
        handle = (state / LOCK_FILE).open("a")
    except OSError as e:
        raise OutputError(f"cannot write in {state}: {e.strerror}; check the permissions of {out}") from e
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise OutputError(
                f"another chargeback run is writing to {out}: wait for it to finish, or give another --out"
            ) from e
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (delivered afterwards) while the set is switched."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
