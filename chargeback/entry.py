"""The `chargeback` command's entry point: only the standard library is imported before the guard, so
Ctrl-C while pandas, numpy and the rest load is a message and exit status 2, not a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .cli import app
    except KeyboardInterrupt:
        sys.stderr.write("chargeback: interrupted while starting; nothing was done\n")
        raise SystemExit(2) from None
    app()


if __name__ == "__main__":
    main()
