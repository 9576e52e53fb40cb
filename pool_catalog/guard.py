"""The one error guard of every command line: `pool`, `chargeback` (`ledger …` included) and `python -m pool_demo`.

- a `UserError` (catalog, provisioning and chargeback errors) becomes its message on stderr and exit status 2;
  a catalog error prints each finding on its own line, as `pool validate` does;
- Ctrl-C becomes one line and exit status 130 (128 + SIGINT, what a shell reports); nothing is half-written
  because every file is written to a temporary name and renamed;
- anything else keeps its traceback: it is a bug, and hiding it would hide where it is.

Text is printed as given, never as Rich markup: names, paths and Prometheus errors may contain brackets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.text import Text

from .errors import CatalogError, Finding, Severity, UserError

EXIT_ERROR = 2
"""Exit status of bad input or an error the message explains."""

EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT)."""


def stderr() -> Console:
    """Console for messages; made per call so a test runner's swapped stderr (and its width) applies."""
    return Console(stderr=True, highlight=False, markup=False, emoji=False)


def styled(label: str, style: str, message: str = "") -> Text:
    """`label` in `style`, then `message` as plain text (never parsed as markup)."""
    return Text.assemble((label, style), " " if message else "", message)


def print_findings(findings: list[Finding]) -> None:
    """Catalog findings on stderr, one a line: errors in red, warnings in yellow."""
    console = stderr()
    for finding in findings:
        style = "red" if finding.severity is Severity.ERROR else "yellow"
        console.print(styled(finding.severity.value, style, str(finding)), soft_wrap=True)


def report(error: UserError) -> None:
    """Print `error` as the guard does: a catalog error finding by finding, any other as `error <message>`."""
    if isinstance(error, CatalogError) and error.findings:
        print_findings(error.findings)
    else:
        stderr().print(styled("error", "red", str(error)), soft_wrap=True)


@contextmanager
def guard(program: str, interrupted: str = "") -> Iterator[None]:
    """Run the body of a command of `program`: user errors → message and exit 2, Ctrl-C → one line and exit 130.

    `interrupted` replaces the default Ctrl-C line when a command has more to say (the demo stops Prometheus).
    Usable as a decorator too (`@guard("pool")`); exits the body raises itself (typer.Exit(1)) pass through.
    """
    try:
        yield
    except UserError as error:
        report(error)
        raise SystemExit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        line = (
            interrupted or f"{program}: interrupted; files are written whole or not at all, none was left half-written"
        )
        stderr().print(line, soft_wrap=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
