"""Atomic writing of every output: a period's reports (`write_reports`: each registered format rendered
into a staging folder, then published as one set by `report_set`, so a failure or a kill leaves the
earlier set whole and files people put in the folder are never deleted), the correction documents of
a close (`write_new_files`: new files only) and single exports (`write_file`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import OutputError
from ..rate.result import Chargeback
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
    render_files: Callable[[Chargeback], dict[str, str]] | None = None,
) -> list[Path]:
    """Render every report (and with `pdf` print each HTML to PDF) into a staging folder, then publish
    them in `out` as one set (`report_set`); returns the published paths, sorted. `previous`: directory
    of the previous period's reports. On failure the previously published set stays as it was."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file: give a directory for the reports")
    if render_files is None:
        history = previous_period(chargeback, out, previous)

        def render_files(c: Chargeback) -> dict[str, str]:
            return report_files(c, history)

    files = render_files(chargeback)

    def stage(staging: Path) -> list[str]:
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8", newline="")
        names = list(files)
        for fmt in derived() if pdf else ():
            assert fmt.derive is not None
            names += fmt.derive(Derivation(staging, list(names), out, chargeback, chromium))
        return names

    return publish(out, stage)


def write_new_files(out: Path, files: dict[str, str]) -> list[Path]:
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
        for name, content in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8", newline="")
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
