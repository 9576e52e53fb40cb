"""Atomic writing of every output: a period's reports (`write_reports`: each registered format rendered
into a staging folder, then published as one set by `report_set`, so a failure or a kill leaves the
earlier set whole and files people put in the folder are never deleted), the correction documents of
a close (`write_new_files`: new files only) and single exports (`write_file`)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import OutputError
from ..rate.result import Chargeback
from .focus import FOCUS_VERSION, files_in_version
from .formats import Derivation, derived
from .report_set import publish
from .reports import previous_period, report_files


def write_reports(
    chargeback: Chargeback,
    out: Path,
    *,
    previous: Path | None = None,
    pdf: bool = False,
    chromium: str | None = None,
    render_files: Callable[[Chargeback], Mapping[str, str | bytes]] | None = None,
    focus_version: str = FOCUS_VERSION,
) -> list[Path]:
    """Render every report (and with `pdf` print each HTML to PDF) into a staging folder, then publish
    them in `out` as one set (`report_set`); returns the published paths, sorted. `previous`: directory
    of the previous period's reports; `focus_version`: the FOCUS version of focus.csv. On failure the previously
    published set stays as it was."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file: give a directory for the reports")
    if render_files is None:
        history = previous_period(chargeback, out, previous)

        def render_files(c: Chargeback) -> dict[str, str]:
            return report_files(c, history)

    files = files_in_version(dict(render_files(chargeback)), focus_version)

    def stage(staging: Path) -> list[str]:
        _write_all(staging, files)
        names = list(files)
        if pdf:
            names += _derive(staging, names, out, chargeback, chromium)
        return names

    return publish(out, stage)


def printed_files(
    files: Mapping[str, str | bytes],
    out: Path,
    chargeback: Chargeback,
    chromium: str | None = None,
    dated: dt.datetime | None = None,
) -> dict[str, bytes]:
    """The files the derived formats make of `files` (each HTML printed to PDF), as bytes: what a close issues
    and keeps in the ledger, so the PDFs it publishes are the ones it recorded. `out`: where `files` will be
    published (links in the PDFs point there); `dated`: the date they carry. Raises PdfError when Chromium
    cannot print."""
    with tempfile.TemporaryDirectory(prefix="chargeback-print-") as scratch:
        root = Path(scratch)
        _write_all(root, files)
        made = _derive(root, list(files), out, chargeback, chromium, dated)
        return {name: (root / name).read_bytes() for name in made}


def _derive(
    staging: Path,
    names: list[str],
    out: Path,
    chargeback: Chargeback,
    chromium: str | None,
    dated: dt.datetime | None = None,
) -> list[str]:
    made: list[str] = []
    for fmt in derived():
        assert fmt.derive is not None
        made += fmt.derive(Derivation(staging, [*names, *made], out, chargeback, chromium, dated))
    return made


def _write_all(root: Path, files: Mapping[str, str | bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")


def write_new_files(out: Path, files: Mapping[str, str | bytes]) -> list[Path]:
    """Write files that must not exist yet under `out` (correction documents never replace anything):
    staged next to `out`, then moved into place."""
    root = out.resolve()
    outside = sorted(name for name in files if not (root / name).resolve().is_relative_to(root))
    if outside:
        raise OutputError(f"{', '.join(outside[:3])} would be written outside {out}: refused")
    clashes = sorted(str(out / name) for name in files if (out / name).exists())
    if clashes:
        raise OutputError(f"{', '.join(clashes)} already exist: give --out a folder without them")
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise OutputError(f"cannot create {out}: {e.strerror}; check path and permissions") from e
    try:
        _write_all(staging, files)
        written = []
        for name in sorted(files):
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
            written.append(target)
        return written
    except OSError as e:
        raise OutputError(f"cannot write to {out}: {e}; check free space and permissions") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_file(path: Path, content: str) -> None:
    """Write `path` whole or not at all (temporary file beside it, then rename)."""
    if path.is_dir():
        raise OutputError(f"--out {path} is a directory: give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
        os.replace(temporary, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e}; check the folder and its permissions") from e
