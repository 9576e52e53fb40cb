"""Print HTML reports to PDF with headless Chromium (Debian's `chromium`), the way a reader's browser would.

Each file gets its own Chromium process and throwaway profile; a few run at once. The pages are
local files without external assets, and Chromium is started with every background service off
and a host resolver that resolves nothing, so printing never reaches the network.

Chromium stamps each PDF with the time it printed it (/CreationDate and /ModDate of the document
information); that is the only difference between two prints of one page, so both dates are
rewritten, in place and at the same length, to a time the caller fixes (the end of the period): the
same reports print to byte-identical PDFs with one Chromium. (/Creator names Chromium's version, so
another Chromium gives other bytes.)
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from html import escape
from pathlib import Path

from ..errors import PdfError
from .formats import Derivation, Format, register

PACKAGE_HINT = "install Debian's chromium package (apt-get install chromium fonts-wqy-microhei)"
TIMEOUT_SECONDS = 120
PARALLEL_PRINTS = 4
"""Chromiums printing at once: most of each one's time is start-up, which overlaps well even on 2 cores."""
OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
"""Flags of every headless Chromium the project starts: no sandbox user namespaces needed, no
background service, no name resolution (so no request can leave the machine)."""


def find_chromium(executable: str | None = None) -> str:
    """Path of the Chromium to use: `executable` if given, else `chromium` on PATH."""
    name = executable or "chromium"
    path = shutil.which(name)
    if path is None:
        raise PdfError(f"{name} not found on PATH, needed for PDFs: {PACKAGE_HINT}")
    return path


def print_pdf(chromium: str, html: Path, pdf: Path, base: str | None = None) -> None:
    """Print one local HTML file to `pdf` (A4 and margins come from the page's @page rule). `base`: the
    URL the page will be read at, so its links in the PDF point there (Chromium writes them absolute)
    rather than at the folder it was printed from."""
    with tempfile.TemporaryDirectory(prefix="chargeback-chromium-") as profile:
        if base is not None:
            source = html.read_text(encoding="utf-8")
            page = Path(profile) / "page.html"
            page.write_text(source.replace("<head>", f'<head>\n<base href="{escape(base)}">', 1), encoding="utf-8")
            html = page
        command = [
            chromium,
            *OFFLINE_FLAGS,
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired as e:
            raise PdfError(f"chromium took over {TIMEOUT_SECONDS} s to print {html.name}; try again") from e
        except OSError as e:
            raise PdfError(f"cannot start {chromium}: {e.strerror}; {PACKAGE_HINT}") from e
    if result.returncode != 0 or not pdf.is_file() or not pdf.read_bytes().startswith(b"%PDF-"):
        raise PdfError(
            f"chromium could not print {html.name} to PDF (exit status {result.returncode}): "
            f"{_last_error(result.stderr)}"
        )


def _last_error(stderr: str) -> str:
    """Chromium's last line worth reading (the D-Bus complaints of a desktop-less machine are not)."""
    lines = [line for line in stderr.splitlines() if line.strip() and "dbus" not in line.lower()]
    return lines[-1].strip() if lines else "no message"


def print_pdfs(
    pages: Sequence[tuple[Path, Path]],
    chromium: str | None = None,
    dated: dt.datetime | None = None,
    bases: Sequence[str] | None = None,
) -> None:
    """Print each (html, pdf) pair; raises PdfError on the first failure (in page order). `dated`: the
    creation and modification time written into every PDF (default: when Chromium printed it); `bases`:
    per page, the URL it is published at (for its links)."""
    if not pages:
        return
    executable = find_chromium(chromium)
    workers = min(len(pages), PARALLEL_PRINTS)
    urls = list(bases) if bases is not None else [None] * len(pages)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(print_pdf, executable, html, pdf, url) for (html, pdf), url in zip(pages, urls, strict=True)
        ]
        for future in futures:
            future.result()
    if dated is not None:
        for _, pdf in pages:
            set_dates(pdf, dated)


_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:\d{14}[^)]{0,8}\)")


def set_dates(pdf: Path, when: dt.datetime) -> None:
    """Rewrite the PDF's creation and modification dates to `when` (UTC), keeping every byte offset: the
    new value has the length of Chromium's (D:YYYYMMDDHHMMSS+00'00'), or the date is left as it is."""
    stamp = f"D:{when.astimezone(dt.UTC):%Y%m%d%H%M%S}+00'00'".encode()
    content = pdf.read_bytes()

    def fixed(match: re.Match[bytes]) -> bytes:
        replacement = b"/" + match.group(1) + b" (" + stamp + b")"
        return replacement if len(replacement) == len(match.group(0)) else match.group(0)

    pdf.write_bytes(_DATE.sub(fixed, content))


def pdf_name(html_name: str) -> str:
    return html_name.removesuffix(".html") + ".pdf"


REPORT_ROOT = "file:///__report__/"
"""Where Chromium is told the pages are: it writes their links absolute under this root, and `relative_links`
makes them relative to the PDF, so no PDF holds a local path and every folder prints the same bytes."""
_REPORT_LINK = re.compile(rb"/URI \(" + re.escape(REPORT_ROOT.encode()) + rb"([^()\\]*)\)")


def relative_links(pdf: Path, page: str) -> None:
    """Rewrite the PDF's links into the report set (`page`: its own name in the set) relative to it, in place
    and keeping every byte offset (the shorter link is padded with spaces, which PDF allows between tokens).
    PDF readers resolve a relative URI against the PDF's own location, as a browser does in the HTML."""
    content = pdf.read_bytes()
    here = posixpath.dirname(page) or "."

    def fixed(match: re.Match[bytes]) -> bytes:
        target, _, fragment = match.group(1).decode("latin-1").partition("#")
        link = posixpath.relpath(target, here) + (f"#{fragment}" if fragment else "")
        new = f"/URI ({link})".encode("latin-1")
        return new + b" " * (len(match.group(0)) - len(new)) if len(new) <= len(match.group(0)) else match.group(0)

    pdf.write_bytes(_REPORT_LINK.sub(fixed, content))


def _print_pages(job: Derivation) -> list[str]:
    """Each staged HTML printed to a PDF beside it; links in the PDFs lead, relative, to the other reports."""
    pages = [name for name in job.names if name.endswith(".html")]
    print_pdfs(
        [(job.staging / n, job.staging / pdf_name(n)) for n in pages],
        job.chromium,
        dated=job.dated or job.chargeback.period.end,
        bases=[REPORT_ROOT + n for n in pages],
    )
    for name in pages:
        relative_links(job.staging / pdf_name(name), pdf_name(name))
    return [pdf_name(n) for n in pages]


register(Format("pdf", "<each report>.pdf beside its HTML (--pdf)", ("chromium",), derive=_print_pages))
